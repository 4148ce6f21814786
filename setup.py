"""Packaging for tornado_spdy.

The real metadata lives here; ``pyproject.toml`` only names the build backend and
holds tool configuration.
"""

import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version() -> str:
    """Read ``version = "..."`` from tornado_spdy/__init__.py without importing it."""
    path = os.path.join(HERE, "tornado_spdy", "__init__.py")
    with open(path, encoding="utf-8") as f:
        match = re.search(r"""^version\s*=\s*["']([^"']+)["']""", f.read(), re.M)
    if match is None:
        raise RuntimeError(f"no version = '...' line in {path}")
    return match.group(1)


def read_long_description() -> str:
    path = os.path.join(HERE, "README.rst")
    if not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8") as f:
        return f.read()


setup(
    name="tornado_spdy",
    version=read_version(),
    description=(
        "SPDY/2, SPDY/3, SPDY/3.1 and HTTP/2 (with server push) for Tornado "
        "applications and clients"
    ),
    long_description=read_long_description(),
    long_description_content_type="text/x-rst",
    packages=find_packages(include=["tornado_spdy", "tornado_spdy.*"]),
    package_data={
        "tornado_spdy": ["py.typed"],
        "tornado_spdy.demo": ["index.html", "static/*"],
    },
    include_package_data=False,
    zip_safe=False,
    python_requires=">=3.11",
    install_requires=[
        # The server/client framework we extend: IOStream, HTTPServer,
        # HTTPConnection delegates, RequestHandler, AsyncHTTPClient.
        "tornado>=6.5",
        # HTTP/2 protocol core (sans-I/O); we never write our own HTTP/2.
        "h2>=4.1,<5",
        # CA bundle for the client's TLS certificate verification.
        "certifi",
        # Makes the development certificate for `python -m tornado_spdy serve`.
        # Not pyOpenSSL: TLS and ALPN come from the stdlib ssl module through
        # Tornado, pyOpenSSL has no NPN either, and its certificate and key
        # generation is deprecated in favour of cryptography, on which it rests.
        "cryptography>=41",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            # Every network test is bounded (pyproject.toml sets the limit).
            "pytest-timeout",
            # Property tests of the SPDY core.
            "hypothesis",
            # tests/test_docs.py builds the docs with -W and reads docstrings.
            "sphinx",
        ],
        "lint": ["ruff"],
        "types": ["mypy"],
        "docs": ["sphinx"],
    },
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Framework :: Tornado",
        "Intended Audience :: Developers",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.11",
        "Topic :: Internet :: WWW/HTTP :: HTTP Servers",
        "Typing :: Typed",
    ],
)
