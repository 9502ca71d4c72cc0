"""Inside the guard (the CLI, the server, the job workers, ``inhouse.offline()``) nothing but loopback is
reached; ``import inhouse`` alone leaves a host program's network as it was (issue 16 §8)."""

import json
import socket
import subprocess
import sys
import threading
import urllib.request

import pytest

import inhouse
from inhouse import netguard
from inhouse.errors import NetworkBlocked

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def guarded():
    with inhouse.offline():
        yield


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
    with pytest.raises(NetworkBlocked, match="DNS look-up of 'huggingface.co'"):
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

    assert netguard.installed()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"


def _python(code: str, **env) -> subprocess.CompletedProcess:
    import os

    base = {k: v for k, v in os.environ.items() if k not in netguard.OFFLINE_ENV}  # as a host program starts
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**base, "PYTHONPATH": str(REPO), **env})


HOST = """\
import os, socket, threading
before = (socket.socket.connect, socket.socket.sendto, socket.getaddrinfo, socket.gethostbyname)
env_before = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "WANDB_MODE")}
import inhouse
import inhouse.cli, inhouse.pipeline.classify  # the library's own modules, loaded as a host program would
after = (socket.socket.connect, socket.socket.sendto, socket.getaddrinfo, socket.gethostbyname)
print("same" if before == after else "patched")
print("env", {k: os.environ.get(k) for k in env_before} == env_before, os.environ["ORT_DISABLE_TELEMETRY"])
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(1)
threading.Thread(target=lambda: server.accept()[0].sendall(b"hi"), daemon=True).start()
with socket.create_connection(server.getsockname(), timeout=5) as c:
    print("local", c.recv(2).decode())
try:  # a documentation address: nothing answers, but the attempt is the host's own, not refused by us
    socket.create_connection(("203.0.113.9", 9), timeout=0.5)
except inhouse.NetworkBlocked as e:
    print("blocked", e)
except OSError as e:
    print("attempted", type(e).__name__)
else:
    print("attempted and connected")
with inhouse.offline():
    try:
        socket.create_connection(("203.0.113.9", 9), timeout=0.5)
    except inhouse.NetworkBlocked:
        print("offline: blocked", os.environ["HF_HUB_OFFLINE"])
print("restored" if (socket.socket.connect, socket.getaddrinfo) == before[::2] else "still patched",
      os.environ.get("HF_HUB_OFFLINE"))
"""


def test_a_host_process_keeps_its_network_after_import_and_gets_the_guard_only_inside_offline():
    out = _python(HOST)
    lines = out.stdout.splitlines()
    assert len(lines) == 6 and lines[3].startswith("attempted "), out.stdout + out.stderr
    assert lines[:3] + lines[4:] == ["same", "env True 1", "local hi", "offline: blocked 1", "restored None"]


def test_the_cli_still_cannot_reach_out():
    code = ("import click, socket\nfrom inhouse.cli import cli, main\n"
            "@cli.command('probe')\n@click.option('--json', is_flag=True)\ndef probe(json):\n"
            "    socket.create_connection(('198.51.100.7', 80), timeout=2)\n"
            "main(['probe', '--json'])\n")
    out = _python(code)
    assert out.returncode == NetworkBlocked.exit_code, out.stdout + out.stderr
    assert "refused an outbound connection to 198.51.100.7:80" in json.loads(out.stdout)["message"]


def test_offline_contexts_nest_and_install_keeps_the_guard_for_the_process():
    code = ("import socket, inhouse\nfrom inhouse import netguard\noriginal = socket.socket.connect\n"
            "with inhouse.offline():\n    with inhouse.offline():\n        pass\n"
            "    print(netguard.installed())\n"
            "print(netguard.installed(), socket.socket.connect is original)\n"
            "netguard.install()\nwith inhouse.offline():\n    pass\n"
            "print(netguard.installed(), socket.socket.connect is original)\n")
    assert _python(code).stdout.split() == ["True", "False", "True", "True", "False"]


def test_dns_lookups_of_outside_names_are_refused_loopback_names_are_not():
    for lookup in (lambda: socket.getaddrinfo("huggingface.co", 443), lambda: socket.gethostbyname("example.com"),
                   lambda: socket.gethostbyname_ex("pypi.org"), lambda: socket.getaddrinfo(b"example.org", None),
                   lambda: socket.gethostbyaddr("8.8.8.8")):
        with pytest.raises(NetworkBlocked, match="look-up"):
            lookup()
    assert socket.getaddrinfo("localhost", 80)
    assert socket.gethostbyname("127.0.0.1") == "127.0.0.1"
    assert socket.getaddrinfo("203.0.113.5", 443)  # a numeric address needs no DNS (connecting is refused)
    assert socket.getaddrinfo(None, 8080)
    assert socket.getfqdn("") and socket.getfqdn("example.com") == "example.com"  # http.server calls it on bind
    with pytest.raises(NetworkBlocked):
        socket.getaddrinfo("huggingface.co.localhost", 443)  # only the exact loopback names


def test_udp_datagrams_to_outside_addresses_are_refused():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(NetworkBlocked, match="refused a datagram to 8.8.8.8:53"):
            s.sendto(b"x", ("8.8.8.8", 53))
        with pytest.raises(NetworkBlocked):
            s.sendto(b"x", 0, ("1.1.1.1", 53))
        with pytest.raises(NetworkBlocked):
            s.sendmsg([b"x"], [], 0, ("9.9.9.9", 53))
        s.sendto(b"ping", receiver.getsockname())  # loopback still works
        assert receiver.recv(16) == b"ping"
        s.sendmsg([b"pong"], [], 0, receiver.getsockname())
        assert receiver.recv(16) == b"pong"
    finally:
        s.close()
        receiver.close()


def test_offline_variables_are_forced_even_when_the_environment_says_otherwise():
    import os

    code = ("import huggingface_hub.constants as c, os, inhouse\nwith inhouse.offline():\n"
            "    print(os.environ['HF_HUB_OFFLINE'], os.environ['TRANSFORMERS_OFFLINE'], os.environ['HF_DATASETS_OFFLINE'], "
            "c.HF_HUB_OFFLINE, os.environ['ORT_DISABLE_TELEMETRY'])\n"
            "print(os.environ['HF_HUB_OFFLINE'], c.HF_HUB_OFFLINE, os.environ['ORT_DISABLE_TELEMETRY'])\n")
    env = {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "HF_DATASETS_OFFLINE": "false",
           "ORT_DISABLE_TELEMETRY": "0"}
    out = _python(code, **env)
    # forced inside, the user's own values back after it
    assert out.stdout.split() == ["1", "1", "1", "True", "1", "0", "False", "0"], out.stderr


def test_a_loopback_http_server_still_binds_and_answers():
    import http.server

    for host in ("127.0.0.1", "localhost"):
        server = http.server.HTTPServer((host, 0), http.server.SimpleHTTPRequestHandler)
        t = threading.Thread(target=server.handle_request)
        t.start()
        with urllib.request.urlopen(f"http://{host}:{server.server_address[1]}/", timeout=5) as r:
            assert r.status == 200
        t.join(5)
        server.server_close()
