"""Helpers for the Ray tests: a real two-node Ray cluster on one machine (issue 19 §4).

``ray_cluster`` starts it as an operator would, with the ``ray`` CLI: ``ray start --head`` on loopback, then
``ray start --address`` for a second node, each with one CPU, no dashboard, no usage stats, its own ports and
temp folder, the environment ``rayengine.node_env()`` gives (telemetry off, the cloud-metadata probes of Ray's
own processes sent to a closed port), token authentication with a token of its own, no ``PYTHONPATH``, and
(``unshare``) a mount namespace in which the driver's files (the workspace, this checkout, an installed
inhouse) are empty folders, as on another machine: a job must bring its code and data through Ray. The cluster
is stopped by its process groups and by the processes that name its temp folder, never by ``ray stop`` (which
stops every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_args(temp: Path) -> list[str]:
    """Local-only settings, and ports of its own for each node (two nodes share one machine)."""
    return ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--object-store-memory", str(80 << 20),
            "--disable-usage-stats", "--temp-dir", str(temp), "--block",
            "--dashboard-agent-listen-port", str(_free_port()), "--dashboard-agent-grpc-port", str(_free_port()),
            "--runtime-env-agent-port", str(_free_port()), "--metrics-export-port", str(_free_port()),
            "--node-manager-port", str(_free_port()), "--object-manager-port", str(_free_port())]


def _processes_naming(text: str) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != os.getpid():
            with contextlib.suppress(OSError):
                if text.encode() in (p / "cmdline").read_bytes():
                    pids.append(int(p.name))
    return pids


def _stop(procs: list[subprocess.Popen], temp: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, sig)
        for pid in _processes_naming(str(temp)):  # a Ray process that left the group still names its session
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (any(p.poll() is None for p in procs) or _processes_naming(str(temp))):
            time.sleep(0.2)
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=5)


def _isolated(cmd: list[str], hide: list[Path]) -> list[str]:
    """``cmd`` in a mount namespace of its own where each folder of ``hide`` is an empty tmpfs: the node then
    sees none of the driver's files (the workspace, the inputs, this checkout), as a node on another machine."""
    mounts = " && ".join(f"mount -t tmpfs inhouse-hidden {shlex.quote(str(h))}" for h in hide)
    return ["unshare", *UNSHARE, "--propagation", "private", "sh", "-c", f'{mounts} && exec "$@"', "sh", *cmd]


def _unshare_flags() -> list[str] | None:
    """``-m`` as root, ``-rm`` (a user namespace) otherwise; None where neither is allowed."""
    for flags in (["-m"], ["-rm"]):
        with contextlib.suppress(OSError):
            if subprocess.run(["unshare", *flags, "true"], capture_output=True).returncode == 0:
                return flags
    return None


UNSHARE = _unshare_flags()


WAIT_FOR_NODES = """
import sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False)
deadline = time.monotonic() + 60
while sum(n["Alive"] for n in ray.nodes()) < int(sys.argv[2]):
    assert time.monotonic() < deadline, f"{sum(n['Alive'] for n in ray.nodes())} nodes alive after 60 s"
    time.sleep(0.3)
"""


def _wait_for_nodes(address: str, n: int, env: dict, procs: list[subprocess.Popen], temp: Path) -> None:
    r = subprocess.run([sys.executable, "-c", WAIT_FOR_NODES, address, str(n)], env=env, cwd=temp,
                       capture_output=True, text=True, timeout=90)
    alive = [p.poll() is None for p in procs]
    assert r.returncode == 0 and all(alive), (alive, r.stderr[-2000:], temp.with_suffix(".log").read_text()[-3000:])


@contextlib.contextmanager
def ray_cluster(env: dict, hide: list[Path]):
    """A head and a second node on 127.0.0.1; yields the head's address; stops exactly what it started."""
    from inhouse.pipeline.rayengine import node_env

    temp = Path(tempfile.mkdtemp(prefix="ihray-", dir="/tmp"))  # short: Ray's socket paths live under it
    port = _free_port()
    token = temp / "auth_token"  # token authentication, as Ray advises for any cluster, with a token of its own
    token.write_text(secrets.token_hex(32))
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    env = {**env, **node_env(), **auth}
    env.pop("PYTHONPATH", None)  # the nodes know nothing of this checkout: the driver must ship its code
    installed = subprocess.run([sys.executable, "-c", "import inhouse, os; print(os.path.dirname(inhouse.__file__))"],
                               env=env, cwd=temp, capture_output=True, text=True).stdout.strip()
    hide = [*hide, *([Path(installed)] if installed else [])]  # an installed inhouse too: the driver ships its own
    procs: list[subprocess.Popen] = []
    log = open(temp.with_suffix(".log"), "wb")
    how = dict(env=env, stdout=log, stderr=log, start_new_session=True, cwd=temp)
    try:
        head = [str(RAY), "start", "--head", "--port", str(port), "--include-dashboard=false", *_node_args(temp)]
        procs.append(subprocess.Popen(_isolated(head, hide), **how))
        deadline = time.monotonic() + 60
        while True:
            assert procs[0].poll() is None, temp.with_suffix(".log").read_text()[-3000:]
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert time.monotonic() < deadline, "the head node did not listen within 60 s"
            time.sleep(0.3)
        node = [str(RAY), "start", "--address", f"127.0.0.1:{port}", *_node_args(temp)]
        procs.append(subprocess.Popen(_isolated(node, hide), **how))
        _wait_for_nodes(f"127.0.0.1:{port}", 2, env, procs, temp)
        yield f"127.0.0.1:{port}", auth
    finally:
        _stop(procs, temp)
        log.close()
        assert not _processes_naming(str(temp)), "a process of the test's Ray cluster is still running"
        shutil.rmtree(temp, ignore_errors=True)
        temp.with_suffix(".log").unlink(missing_ok=True)
