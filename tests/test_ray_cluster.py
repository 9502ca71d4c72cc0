"""``--engine ray`` against a real two-node Ray cluster (issue 19 §4).

The test starts the cluster as an operator would, with the ``ray`` CLI: ``ray start --head`` on loopback, then
``ray start --address`` for a second node, each with one CPU, no dashboard, no usage stats, its own temp folder
and the environment ``rayengine.node_env()`` gives (telemetry off, the cloud-metadata probes of Ray's own
processes sent to a closed port). ``inhouse classify --engine ray --ray-address`` and a pipeline with
``engine: ray`` then run against it, from a driver process whose ``PYTHONPATH`` the cluster never saw (the
nodes start without it), and must equal the local engine. The cluster is stopped by its process groups and by
the processes that name its temp folder, never by ``ray stop`` (which stops every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")
pytestmark = pytest.mark.slow


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


def _cli(home: Path, *args) -> list[str]:
    return [sys.executable, "-m", "inhouse", "--home", str(home), *map(str, args)]


def _run(env, home, *args) -> dict:
    r = subprocess.run(_cli(home, *args, "--json"), env=env, capture_output=True, text=True, cwd=home.parent)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout)


def test_classify_and_a_pipeline_on_a_two_node_cluster_equal_the_local_engine(shared_data, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed: pip install 'inhouse[ray]' (CI installs it)")
    if not RAY.exists():
        pytest.skip(f"the ray CLI is not at {RAY}")
    if UNSHARE is None:
        pytest.skip("unshare -m / -rm is not allowed here: the nodes could not be kept from the driver's files")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    trec = pd.read_csv(shared_data / "trec6" / "trec6.csv")
    train = trec[trec["split"] == "train"].groupby("label").head(120)
    train[["text", "label"]].to_csv(tmp_path / "train.csv", index=False)
    test = trec[trec["split"] == "test"].head(300).reset_index(drop=True)
    test = test.assign(qid=[f"q{i}" for i in range(len(test))])[["qid", "text"]]
    test.to_csv(tmp_path / "questions.csv", index=False)
    home = tmp_path / "ws"
    t0 = time.monotonic()
    _run(env, home, "ingest", tmp_path / "train.csv", "--dataset", "trec", "--label-col", "label")
    _run(env, home, "train", "--dataset", "trec", "--name", "qtype", "--method", "head", "--split", "all")
    common = ["classify", "qtype@1", "--input", tmp_path / "questions.csv", "--id-col", "qid", "--chunk-rows", 100,
              "--workers", 2]
    local = _run(env, home, *common, "--output", tmp_path / "local.parquet", "--engine", "local")
    (tmp_path / "inbox").mkdir()
    shutil.copy(tmp_path / "questions.csv", tmp_path / "inbox" / "questions.csv")
    started = time.monotonic()
    print(f"ingest, train, local classify: {time.monotonic() - t0:.1f}s")
    with ray_cluster(env, hide=[tmp_path, REPO / "inhouse"]) as (address, auth):
        env = {**env, **auth}
        ray = _run(env, home, *common, "--output", tmp_path / "ray.parquet", "--engine", "ray",
                   "--ray-address", address)
        (tmp_path / "daily.yaml").write_text(
            "name: daily\ndataset: questions\nsteps:\n"
            "  - ingest: {path: \"inbox/*.csv\", text_col: text, id_col: qid}\n"
            f"  - classify: {{model: qtype@1, engine: ray, ray_address: \"{address}\", workers: 2, chunk_rows: 100}}\n")
        print(f"cluster started, classify through it: {time.monotonic() - started:.1f}s")
        pipe = _run(env, home, "pipeline", "run", tmp_path / "daily.yaml")
    print(f"two-node cluster up, classify and pipeline through it, stopped: {time.monotonic() - started:.1f}s")
    assert local["engine"] == "local" and ray["engine"] == "ray" and ray["rows"] == 300
    assert ray["ray_address"] == address and ray["ray_nodes_used"] == 2  # the actors ran on both nodes
    want = pd.read_parquet(tmp_path / "local.parquet")
    pd.testing.assert_frame_equal(want, pd.read_parquet(tmp_path / "ray.parquet"))
    step = next(s for s in pipe["steps"] if s["name"] == "classify")
    assert step["status"] == "done" and step["rows"] == 300, step
    got = pd.read_parquet(Path(pipe["out_dir"]) / "predictions.parquet")
    got = got.set_index(got["qid"].astype(str)).loc[want["qid"]]
    assert got["label"].tolist() == want["label"].tolist()
    assert got["score"].round(5).tolist() == want["score"].round(5).tolist()
