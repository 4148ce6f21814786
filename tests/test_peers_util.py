"""The peer helpers skip on a developer's machine and fail where peers are required."""

import pytest

from tests import peers_util
from tests.peers_util import peers_required, require_node_package, require_peer

MISSING = "tornado-spdy-no-such-peer-program"


@pytest.fixture
def no_ci_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(peers_util.REQUIRE_ENV, raising=False)
    monkeypatch.delenv("CI", raising=False)
    return monkeypatch


def test_missing_peer_skips_when_not_required(no_ci_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(pytest.skip.Exception):
        require_peer(MISSING)


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_missing_peer_fails_when_required(
    no_ci_env: pytest.MonkeyPatch, value: str
) -> None:
    no_ci_env.setenv(peers_util.REQUIRE_ENV, value)
    with pytest.raises(pytest.fail.Exception, match="missing and required in CI"):
        require_peer(MISSING)


def test_missing_peer_fails_in_ci(no_ci_env: pytest.MonkeyPatch) -> None:
    no_ci_env.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"peer {MISSING} missing"):
        require_peer(MISSING)


@pytest.mark.parametrize("value", ["", "0", "false"])
def test_falsy_require_env_still_skips(
    no_ci_env: pytest.MonkeyPatch, value: str
) -> None:
    no_ci_env.setenv(peers_util.REQUIRE_ENV, value)
    no_ci_env.setenv("CI", "false")
    assert not peers_required()
    with pytest.raises(pytest.skip.Exception):
        require_peer(MISSING)


def test_present_peer_returns_path(no_ci_env: pytest.MonkeyPatch, tmp_path) -> None:
    exe = tmp_path / MISSING
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    no_ci_env.setenv("PATH", str(tmp_path))
    assert require_peer(MISSING) == str(exe)


def _fake_node(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Put an executable called ``node`` on PATH, and point NODE_MODULES at tmp."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    node = bindir / "node"
    node.write_text("#!/bin/sh\nexit 0\n")
    node.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setattr(peers_util, "NODE_MODULES", str(tmp_path / "node_modules"))


def test_node_package_missing(no_ci_env: pytest.MonkeyPatch, tmp_path) -> None:
    _fake_node(no_ci_env, tmp_path)
    with pytest.raises(pytest.skip.Exception):
        require_node_package("spdy-transport")
    no_ci_env.setenv(peers_util.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="peer spdy-transport missing"):
        require_node_package("spdy-transport")


def test_node_package_present(no_ci_env: pytest.MonkeyPatch, tmp_path) -> None:
    _fake_node(no_ci_env, tmp_path)
    pkg = tmp_path / "node_modules" / "spdy-transport"
    pkg.mkdir(parents=True)
    assert require_node_package("spdy-transport") == str(pkg)
    assert require_peer("node:spdy-transport") == str(pkg)


def test_node_package_needs_node(no_ci_env: pytest.MonkeyPatch, tmp_path) -> None:
    no_ci_env.setenv("PATH", str(tmp_path))  # no node here
    with pytest.raises(pytest.skip.Exception, match="peer node missing"):
        require_node_package("spdy-transport")
