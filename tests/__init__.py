"""Test suite for tornado_spdy (a package so helpers import as ``tests.*``)."""
