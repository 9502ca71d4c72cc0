"""No byte leaves, native code included (issue 16 §0): every process is traced by the kernel, not by Python.

``inhouse train`` + ``classify`` (ONNX), ``inhouse serve`` answering a classification and running a job in
its worker process, and a Ray job
(``classify --engine ray``) run under ``strace -f -e trace=connect,sendto``, which sees every process they
start and every native thread (ONNX Runtime's telemetry, Ray's raylet and workers). The test fails on any
connect or sendto to a non-loopback address and on any DNS query (anything sent to port 53, loopback
resolvers included). ONNX Runtime starts its telemetry about 9 s after the first inference, so every
traced process stays alive for more than 12 s after its last inference.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from inhouse import netguard
from inhouse.demo.data import generate

REPO = Path(__file__).resolve().parents[1]
STRACE = shutil.which("strace") or "/usr/bin/strace"
LINGER_S = 13  # > ONNX Runtime's ~9 s before its first telemetry attempt

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.access(STRACE, os.X_OK), reason="strace is missing (.ci/run installs it)")]

_CALL = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s*(connect|sendto)\((.*)$")
_FAMILY = re.compile(r"sa_family=(AF_[A-Z0-9]+)")
_PORT = re.compile(r"sin6?_port=htons\((\d+)\)")
_ADDR4 = re.compile(r'sin_addr=inet_addr\("([^"]+)"\)')
_ADDR6 = re.compile(r'inet_pton\(AF_INET6, "([^"]+)"')


def _local(host: str) -> bool:
    ip = ipaddress.ip_address(host)
    mapped = getattr(ip, "ipv4_mapped", None)
    ip = mapped or ip
    return ip.is_loopback or ip.is_unspecified  # connect() to 0.0.0.0 / :: reaches this machine


def egress(trace: str) -> list[str]:
    """The lines of an ``strace -f -e trace=connect,sendto`` log that reach out or ask DNS."""
    bad = []
    for line in trace.splitlines():
        m = _CALL.match(line.strip())
        if not m:
            continue
        family = _FAMILY.search(line)
        if family is None or family.group(1) not in ("AF_INET", "AF_INET6"):
            continue  # AF_UNIX, AF_NETLINK (interface lists), a connected socket's plain send, AF_UNSPEC
        port = _PORT.search(line)
        addr = (_ADDR4 if family.group(1) == "AF_INET" else _ADDR6).search(line)
        if (port and port.group(1) == "53") or addr is None or not _local(addr.group(1)):
            bad.append(line.strip())
    return bad


def test_the_trace_parser_catches_what_it_must():
    trace = "\n".join([
        '123 connect(5, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0',
        '[pid 124] connect(7, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), '
        'inet_pton(AF_INET6, "2a01:111:f100::1", &sin6_addr), sin6_scope_id=0}, 28) = -1 ENETUNREACH',
        '125 sendto(3, "\\1\\2", 33, MSG_NOSIGNAL, {sa_family=AF_INET, sin_port=htons(53), '
        'sin_addr=inet_addr("127.0.0.53")}, 16) = 33',
        '126 connect(9, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("13.69.239.72")}, 16) = 0',
        # allowed: loopback, Unix sockets, netlink, a connected socket's send, 0.0.0.0
        '127 connect(4, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
        '127 connect(4, {sa_family=AF_INET6, sin6_port=htons(6379), sin6_flowinfo=htonl(0), '
        'inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 0',
        '128 connect(3, {sa_family=AF_UNIX, sun_path="/tmp/ray/session/sockets/raylet"}, 110) = 0',
        '129 sendto(3, [{nlmsg_len=20, nlmsg_type=RTM_GETLINK}], 20, 0, {sa_family=AF_NETLINK, nl_pid=0}, 12) = 20',
        '130 sendto(8, "GET / HTTP/1.1", 14, 0, NULL, 0) = 14',
        '131 connect(6, {sa_family=AF_INET, sin_port=htons(5000), sin_addr=inet_addr("0.0.0.0")}, 16) = 0',
    ])
    assert [line.split()[0] for line in egress(trace)] == ["123", "[pid", "125", "126"]


def _env(home: Path) -> dict:
    # as a user's shell starts it: none of the variables inhouse sets (so the test fails if inhouse stops setting them)
    ours = {*netguard.TELEMETRY_ENV, *netguard.OFFLINE_ENV}
    env = {k: v for k, v in os.environ.items() if k not in ours and not k.startswith(("ORT_", "RAY_"))}
    return {**env, "PYTHONPATH": str(REPO), "INHOUSE_HOME": str(home)}


def _traced(home: Path, name: str, argv: list[str]) -> subprocess.Popen:
    log = home / f"{name}.strace"
    return subprocess.Popen([STRACE, "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect,sendto", "-o", str(log),
                             *argv], env=_env(home), cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


# the real CLI (inhouse.cli.main, what the console script calls), several commands in one process, which then
# stays alive while any native thread they started could still reach out
CLI = """\
import sys, time
from inhouse.cli import main
for command in sys.argv[1].split(" ;; "):
    try:
        main(command.split())
    except SystemExit as e:
        if e.code:
            sys.exit(f"{command}: exit {e.code}")
time.sleep(%d)
""" % LINGER_S


def _run_cli(home: Path, name: str, *commands: str, timeout: float = 400) -> str:
    proc = _traced(home, name, [sys.executable, "-c", CLI, " ;; ".join(commands)])
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return (home / f"{name}.strace").read_text()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("egress")
    df = pd.DataFrame(generate(n=600, seed=5))
    df[df["intent"] != ""].to_csv(home / "train.csv", index=False)
    df[["message_id", "text"]].head(200).to_csv(home / "new.csv", index=False)
    return home


def test_train_and_classify_on_onnx_reach_nothing_but_loopback(home):
    trace = _run_cli(home, "cli",
                     "ingest train.csv --dataset t --label-col intent --id-col message_id",
                     "train --dataset t --name intents --method head --split all",
                     "classify intents --input new.csv --id-col message_id --output preds.csv --backend onnx")
    assert len(pd.read_csv(home / "preds.csv")) == 200
    assert egress(trace) == []


def test_serve_answering_a_classification_and_running_a_job_reaches_nothing_but_loopback(home):
    import httpx

    if not (home / "preds.csv").exists():
        pytest.skip("needs the model of the test above")
    token = subprocess.run([sys.executable, "-m", "inhouse", "tokens", "create", "probe", "--role", "admin"],
                           env=_env(home), capture_output=True, text=True, timeout=120).stdout.strip().splitlines()[-1]
    from serverkit import free_port

    port = free_port()
    proc = _traced(home, "serve", [sys.executable, "-m", "inhouse", "serve", "--port", str(port)])
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()[-3000:]
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        auth = {"Authorization": f"Bearer {token}"}
        r = httpx.post(url + "/classify", json={"model": "intents", "text": "my card has not arrived yet"},
                       headers=auth, timeout=120)
        assert r.status_code == 200, r.text
        # a job: its worker process is traced too
        job = httpx.post(url + "/classify/jobs", json={"model": "intents", "dataset": "t"}, headers=auth).json()
        while (state := httpx.get(f"{url}/jobs/{job['job_id']}", headers=auth).json())["status"] in ("queued",
                                                                                                     "running"):
            assert time.monotonic() < deadline + 300, state
            time.sleep(1)
        assert state["status"] == "done", state
        time.sleep(LINGER_S)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=60)
    trace = (home / "serve.strace").read_text()
    assert 'sendto(' in trace and '"HTTP/1.1 200' in trace  # the trace saw the server answer
    assert egress(trace) == []


def test_a_ray_job_reaches_nothing_but_loopback(home):
    pytest.importorskip("ray")
    if not (home / "preds.csv").exists():
        pytest.skip("needs the model of the first test")
    trace = _run_cli(home, "ray", "classify intents --input new.csv --id-col message_id --output ray.csv "
                                  "--engine ray --workers 1")
    assert len(pd.read_csv(home / "ray.csv")) == 200
    assert egress(trace) == []
