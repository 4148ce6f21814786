console.log("pushed with the page");
