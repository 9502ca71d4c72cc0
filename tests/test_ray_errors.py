"""--ray-address errors say what was expected, what was found and how to fix it (issue 19): an address where
nothing listens is refused at once instead of after Ray's minutes of retries, and a cluster that wants a token
names the variables that give it one. (Joining a real token-authenticated cluster: tests/test_pipeline.py with tests/raykit.py.)"""

from __future__ import annotations

import socket
import time

import pytest

from inhouse.errors import UsageError
from inhouse.pipeline.rayengine import auth_hint, join_cluster


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_an_address_where_nothing_listens_is_refused_at_once_with_the_fix():
    pytest.importorskip("ray")
    address = f"127.0.0.1:{_closed_port()}"
    t0 = time.monotonic()
    with pytest.raises(UsageError) as e:
        join_cluster(address, include_dashboard=False)
    assert time.monotonic() - t0 < 30  # Ray itself retries for minutes
    assert address in str(e.value) and "nothing answers" in str(e.value) and "connection refused" in str(e.value)
    assert "ray start --head" in e.value.fix and "leave --ray-address out" in e.value.fix


@pytest.mark.parametrize("address", ["nonsense", "10.0.0.5", "host:port"])
def test_an_address_that_is_not_host_and_port_says_so(address):
    pytest.importorskip("ray")
    with pytest.raises(UsageError, match="expected HOST:PORT"):
        join_cluster(address)


def test_the_auth_hint_names_what_the_cluster_expects_what_this_process_has_and_the_variables(tmp_path):
    (tmp_path / ".ray").mkdir()
    message, fix = auth_hint("10.0.0.5:6379", env={}, home=tmp_path)
    assert "10.0.0.5:6379" in message and "token" in message and "sends none" in message
    assert f"{tmp_path}/.ray/auth_token does not exist" in message
    assert "RAY_AUTH_MODE=token" in fix and "RAY_AUTH_TOKEN_PATH" in fix and "RAY_AUTH_TOKEN=" in fix
    (tmp_path / ".ray" / "auth_token").write_text("x")
    message, fix = auth_hint("10.0.0.5:6379", env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "secret"},
                             home=tmp_path)
    assert "refused inhouse's auth token" in message and "RAY_AUTH_TOKEN=(set)" in message
    assert "secret" not in message and "exists" in message
    assert "RAY_AUTH_TOKEN_PATH" in fix
