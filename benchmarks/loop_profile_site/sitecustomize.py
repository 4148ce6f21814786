"""Installs `benchmarks/loop_profile.py` in every Python process started with
this directory on ``PYTHONPATH`` and ``LOOP_PROFILE`` set (see that file).
It takes the place of any other ``sitecustomize`` meanwhile."""

import os

if os.environ.get("LOOP_PROFILE"):
    import importlib.util

    _path = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "loop_profile.py"
    )
    _spec = importlib.util.spec_from_file_location("loop_profile", _path)
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    _module.install(os.environ["LOOP_PROFILE"])
