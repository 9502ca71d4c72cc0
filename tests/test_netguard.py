"""The process never opens a network connection other than loopback."""

import socket
import subprocess
import sys
import threading
import urllib.request

import pytest

import inhouse
from inhouse.errors import NetworkBlocked


def test_outbound_tcp_is_refused_with_the_guards_error():
    with pytest.raises(NetworkBlocked, match="refused an outbound connection to 203.0.113.5:443"):
        socket.create_connection(("203.0.113.5", 443), timeout=2)


def test_outbound_by_name_and_udp_are_refused():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(NetworkBlocked):
            s.connect(("8.8.8.8", 53))
        with pytest.raises(NetworkBlocked):
            s.connect_ex(("1.1.1.1", 53))
    finally:
        s.close()
    with pytest.raises((NetworkBlocked, OSError)):
        urllib.request.urlopen("http://huggingface.co/api/models", timeout=2)


def test_ipv6_outbound_is_refused():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        with pytest.raises(NetworkBlocked):
            s.connect(("2001:db8::1", 80, 0, 0))
    finally:
        s.close()


def test_loopback_still_works():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    got = []

    def accept():
        conn, _ = server.accept()
        got.append(conn.recv(5))
        conn.close()

    t = threading.Thread(target=accept)
    t.start()
    with socket.create_connection(("localhost", port), timeout=5) as c:
        c.sendall(b"hello")
    t.join(5)
    server.close()
    assert got == [b"hello"]


def test_offline_variables_are_set_for_hugging_face():
    import os

    assert inhouse._netguard.installed()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_a_fresh_process_that_imports_inhouse_is_guarded():
    code = ("import socket, inhouse\n"
            "try:\n    socket.create_connection(('198.51.100.7', 80), timeout=2)\n"
            "except inhouse.NetworkBlocked as e:\n    print('blocked:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("blocked: inhouse refused an outbound connection to 198.51.100.7:80")
