document.getElementById("script-status").textContent =
  "The script beside this page ran too.";
