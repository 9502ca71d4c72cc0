"""``--engine ray``: classify as a Ray Data job, for when one machine is not enough.

The driver streams the input exactly as the local engine does and writes each
chunk's distinct texts to a staged Parquet file; each staged table is put in
Ray's object store, Ray Data runs ``map_batches`` on an actor pool (each actor
loads the version's ONNX graph once), and the results stream back to the
driver, which writes them and keeps each chunk exactly as the local engine
would, so the outputs are identical.

What is shipped to the workers, all through Ray itself (a worker on another
machine sees none of the driver's files): the bytes of the version's ONNX graph
folder (``model.onnx``, tokenizer files), keyed and checked by sha256 on
arrival; the staged texts, one Arrow table per chunk in the object store; and,
when joining a cluster, the ``inhouse`` package the driver runs (``py_modules``),
so the nodes need neither inhouse installed nor the same version of it. Never
the workspace, its database or its documents beyond the staged texts. The
results come back to the driver the same way and are written there.

Without ``--ray-address`` a local Ray is started (bound to 127.0.0.1, no
dashboard, no usage stats) and stopped at the end; with it, the job joins that
cluster. Start a cluster's nodes with ``node_env()`` in their environment.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

from .. import netguard
from ..errors import MissingDependency, UsageError
from ..workspace.files import atomic_path

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1", "RAY_DEDUP_LOGS": "0",
           "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
# A local Ray's head processes inherit the environment at ray.init. Even with usage stats off, Ray 2.60's
# dashboard process (started with include_dashboard=False too, for its UsageStatsHead module) asks the cloud
# metadata services (169.254.169.254, a DNS look-up of metadata.google.internal) with `requests`; found by
# tests/test_egress.py. Every plain HTTP request of those processes therefore goes to a closed loopback port
# (Ray's own gRPC ignores these variables: grpc.enable_http_proxy is 0 unless RAY_grpc_enable_http_proxy).
_NO_HTTP = "http://127.0.0.1:9"  # the discard port: refused at once, or swallowed locally
RAY_HEAD_ENV = {"http_proxy": _NO_HTTP, "https_proxy": _NO_HTTP, "HTTP_PROXY": _NO_HTTP, "HTTPS_PROXY": _NO_HTTP,
                "no_proxy": "127.0.0.1,localhost,::1", "NO_PROXY": "127.0.0.1,localhost,::1"}


def node_env() -> dict[str, str]:
    """The variables to start a Ray node with (``ray start``), as a local Ray's processes get them: telemetry and
    usage stats off, the Hub offline, and the plain HTTP of Ray's dashboard/agent processes (cloud metadata
    probes) sent to a closed loopback port."""
    return {**netguard.worker_env(), **RAY_ENV, **RAY_HEAD_ENV}


AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
NO_CLUSTER_FIX = ("Start the cluster first (ray start --head --port 6379 on the head machine, with the variables of "
                  "inhouse.pipeline.rayengine.node_env()) and pass the address it prints, or leave --ray-address out "
                  "to run on a local Ray.")


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse at once (instead of Ray's minutes of retries) an address where no Ray head listens."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto":  # Ray reads the address of a cluster started on this machine
        return
    if not host or not port.isdigit():
        raise UsageError(f"--ray-address {address!r}: expected HOST:PORT of a Ray cluster's head node (e.g. "
                         "10.0.0.5:6379, as ray start --head prints it).", fix=NO_CLUSTER_FIX)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        why = f"no answer within {timeout:g} s" if isinstance(e, TimeoutError) else (e.strerror or str(e)).lower()
        raise UsageError(f"--ray-address {address}: nothing answers there ({why}); expected "
                         "the GCS port of a running Ray head node.", fix=NO_CLUSTER_FIX) from None


def auth_hint(address: str, env: dict | None = None, home: Path | None = None) -> tuple[str, str]:
    """(message, fix) for a cluster that answered but would not let this process join: what its token
    authentication expects, what this process has, and how to give it the cluster's token."""
    env = os.environ if env is None else env
    default = (home or Path.home()) / ".ray" / "auth_token"
    have = ", ".join(f"{k}={'(set)' if k == 'RAY_AUTH_TOKEN' else env[k]}" for k in AUTH_VARS if env.get(k)) or \
        "none of " + ", ".join(AUTH_VARS)
    mode = env.get("RAY_AUTH_MODE", "")
    found = f"this process has {have}; {default} {'exists' if default.is_file() else 'does not exist'}"
    if mode != "token":
        return (f"--ray-address {address} answers, but Ray could not join a cluster there. Ray 2.60 clusters "
                f"authenticate with a token (ray start --head turns it on when {default} exists) and this process "
                f"sends none ({found}); or the port is not a Ray head's GCS port.",
                "Give inhouse the cluster's token: export RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH=FILE (the token "
                f"file the head was started with; default {default}), or RAY_AUTH_TOKEN=TOKEN.")
    return (f"the Ray cluster at {address} refused inhouse's auth token ({found}): it expects the token the head "
            "node was started with.",
            "Point RAY_AUTH_TOKEN_PATH at the head node's token file (or set RAY_AUTH_TOKEN to its content); "
            f"without either, Ray reads {default}.")


def join_cluster(address: str, **init_kwargs) -> None:
    """``ray.init(address=...)``, with errors that say what was expected, what was found and how to fix it."""
    import ray

    check_reachable(address)
    try:
        ray.init(address=address, **init_kwargs)
    except ConnectionError as e:  # Ray says only "Failed to connect"; its log says Unauthenticated when it is that
        message, fix = auth_hint(address)
        raise UsageError(f"{message} (Ray: {e})", fix=fix) from e


@contextlib.contextmanager
def _local_ray_env():
    """The variables a local Ray's processes start with, set only while they are started (this process keeps its
    own environment)."""
    saved = {k: os.environ.get(k) for k in RAY_HEAD_ENV}
    os.environ.update(RAY_HEAD_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def require_ray(local: bool = True):
    """Import Ray (or say how to install it); a local Ray binds to loopback only, with no usage stats."""
    for k, val in RAY_ENV.items():
        os.environ.setdefault(k, val)
    if local:  # read when ray is imported: the node address is then 127.0.0.1, never a public interface
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError as e:
        raise MissingDependency("ray", "ray", "--engine ray") from e


def _tolerate_missing_aiohttp() -> None:
    """Ray Data asks fsspec whether a path is HTTP; without aiohttp that import raises ImportError
    (not ModuleNotFoundError, which Ray expects). Local paths are never HTTP: answer False then."""
    try:
        from fsspec.implementations.http import HTTPFileSystem  # noqa: F401
    except ImportError:
        from ray.data.datasource import path_util

        original = path_util._is_http_filesystem

        def is_http(fs):
            try:
                return original(fs)
            except ImportError:
                return False

        path_util._is_http_filesystem = is_http


def _code_env() -> dict:
    """The runtime_env that ships the running ``inhouse`` package to a cluster's workers (they import it to run
    GraphActor): the nodes then run the driver's code, whatever they have installed."""
    package = Path(__file__).resolve().parents[1]
    return {"py_modules": [str(package)], "excludes": ["__pycache__", "*.pyc"]}


class GraphActor:
    """A Ray actor: materialises the shipped graph folder once (checked by sha256), then predicts blocks."""

    def __init__(self, files_ref, hashes: dict, manifest: dict, version: dict, top_k: int, threads: int):
        import ray

        from .. import registry
        from .engine import EngineOptions, OnnxPredictor

        files = ray.get(files_ref) if not isinstance(files_ref, dict) else files_ref
        key = hashlib.sha256(repr(sorted(hashes.items())).encode()).hexdigest()[:16]
        folder = Path(tempfile.gettempdir()) / "inhouse-ray-graphs" / key
        if not folder.is_dir():
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".graph.", dir=folder.parent))
            for name, data in files.items():
                if hashlib.sha256(data).hexdigest() != hashes[name]:
                    raise ValueError(f"shipped file {name} does not match its sha256")
                (tmp / name).write_bytes(data)
            try:
                os.replace(tmp, folder)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
        v = registry.Version(version["name"], version["version"], version["sha256"], folder, version["manifest"])
        self.predictor = OnnxPredictor(v, folder, max_length=int(manifest.get("max_length") or 256),
                                       precision=manifest.get("precision", "fp32"),
                                       options=EngineOptions(threads=threads), manifest=manifest)
        self.top_k = top_k
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, table):
        import numpy as np
        import pyarrow as pa

        from .engine import predict_unique

        chunks = table.column("chunk").to_numpy()
        out = []
        for c in np.unique(chunks):
            part = table.filter(pa.compute.equal(table.column("chunk"), c))
            order = np.argsort(part.column("pos").to_numpy(), kind="stable")
            part = part.take(order)
            c0 = time.process_time()
            cols, tokens = predict_unique(self.predictor, part.column("text").to_pylist(), top_k=self.top_k)
            data = {"chunk": part.column("chunk"), "pos": part.column("pos"), **cols,
                    "node": [self.node] * part.num_rows, "tokens": [tokens] + [0] * (part.num_rows - 1),
                    "cpu": [time.process_time() - c0] + [0.0] * (part.num_rows - 1)}
            out.append(pa.table(data))
        return pa.concat_tables(out) if out else table.select([]).slice(0, 0)


class RayRunner:
    """Stages chunks, runs them as one Ray Data job, then keeps them in input order."""

    def __init__(self, ws, version, make_predictor: Callable, opts, meter, scratch: Path):
        require_ray(local=not opts.ray_address)
        self.ws, self.version, self.make_predictor, self.opts, self.meter = ws, version, make_predictor, opts, meter
        self.scratch = Path(scratch)
        self.predictor = None
        self.cascade = None  # a CascadePredictor: it answers on the driver, the workers run the rest
        self.nodes: set[str] = set()
        self.cluster_nodes = 0

    def info(self) -> dict:
        p = self.cascade or self.predictor
        base = p.info() if p else {"backend": "none (nothing to compute)"}
        return {**base, "ray_workers": self.opts.workers, "ray_address": self.opts.ray_address or "local",
                "ray_nodes": self.cluster_nodes, "ray_nodes_used": len(self.nodes)}

    def run(self, chunks: Iterator, keep: Callable, progress) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        shutil.rmtree(self.scratch, ignore_errors=True)
        stage, meta = self.scratch / "stage", self.scratch / "meta"
        stage.mkdir(parents=True)
        meta.mkdir(parents=True)
        staged, todo = [], []
        for c in chunks:
            if self.predictor is None:
                self.predictor = self.make_predictor(c.unique)
                if hasattr(self.predictor, "cascade"):  # the cascade answers here, the graph on the workers
                    self.cascade, self.predictor = self.predictor, self.predictor.inner
                if not hasattr(self.predictor, "folder"):
                    raise UsageError(f"--engine ray runs the version's ONNX graph; {self.version.ref} has none "
                                     f"({self.predictor.info().get('fallback')}).", fix="Use --engine local.")
            pos = self._cascade_part(c, self.scratch / "results") if self.cascade else list(range(len(c.unique)))
            if pos:
                todo.append(stage / f"chunk-{c.index:08d}.parquet")
                with atomic_path(todo[-1]) as tmp:
                    pq.write_table(pa.table({"chunk": pa.array([c.index] * len(pos), pa.int64()),
                                             "pos": pa.array(pos, pa.int64()),
                                             "text": pa.array([c.unique[i] for i in pos], pa.string())}), tmp)
            with atomic_path(meta / f"chunk-{c.index:08d}.parquet") as tmp:
                pq.write_table(pa.table({**{k: pa.array(v) for k, v in c.keys.items()},
                                         "error": pa.array(c.errors, pa.string()),
                                         "inverse": pa.array(c.inverse, pa.int64())}), tmp)
            staged.append((c.index, bool(c.unique)))
        if not staged:
            return
        results = self.scratch / "results"
        if todo:
            self._job(todo, results)
        self._keep(staged, meta, results, keep, progress)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def _cascade_part(self, c, results: Path) -> list[int]:
        """Answer the chunk's texts the cascade is sure of here (a results part, as the workers write them);
        the positions left for the workers."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        from .engine import decide

        cas = self.cascade
        probs, sure = cas.sure(c.unique)
        pos = np.flatnonzero(sure)
        if len(pos):
            # as CascadePredictor.scores: it answers only rows the version keeps, so a distance rule sees 0 there
            near = np.zeros(len(pos), np.float32) if cas.rule.needs_distance else None
            cols = decide(cas, probs[pos], self.opts.top_k, distance=near)
            n = len(pos)
            results.mkdir(parents=True, exist_ok=True)
            with atomic_path(results / f"cascade-{c.index:08d}.parquet") as tmp:
                pq.write_table(pa.table({"chunk": pa.array([c.index] * n, pa.int64()), "pos": pa.array(pos, pa.int64()),
                                         **cols, "node": ["driver"] * n, "tokens": pa.array([0] * n, pa.int64()),
                                         "cpu": pa.array([0.0] * n, pa.float64())}), tmp)
        return np.flatnonzero(~sure).tolist()

    def _job(self, files: list[Path], results: Path) -> None:
        import pyarrow.parquet as pq
        import ray

        for k, val in RAY_ENV.items():
            os.environ.setdefault(k, val)
        started_here = not ray.is_initialized()
        if started_here:
            # every Ray worker, on this machine or a cluster's, starts with telemetry off and the Hub offline
            env = {"env_vars": netguard.worker_env()}
            kw = dict(include_dashboard=False, configure_logging=False, log_to_driver=False, ignore_reinit_error=True)
            if self.opts.ray_address:
                join_cluster(self.opts.ray_address, runtime_env={**env, **_code_env()}, **kw)
            else:
                # one CPU per actor, plus one for Ray Data's own small tasks (listing files, writing)
                with _local_ray_env():
                    ray.init(num_cpus=self.opts.workers + 1, _node_ip_address="127.0.0.1", runtime_env=env, **kw)
        try:
            _tolerate_missing_aiohttp()
            self.cluster_nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False
            ctx.target_max_block_size = 1 << 30  # one staged chunk is one block: computed whole, as locally
            p = self.predictor
            files_bytes = {f.name: f.read_bytes() for f in sorted(p.folder.iterdir())
                           if f.is_file() and f.name != "model.fp32.onnx"}
            hashes = {n: hashlib.sha256(b).hexdigest() for n, b in files_bytes.items()}
            ref = ray.put(files_bytes)
            v = self.version
            # the texts travel in the object store: a worker on another machine cannot read the driver's files
            ds = ray.data.from_arrow_refs([ray.put(pq.read_table(f)) for f in files])
            ds = ds.map_batches(GraphActor, batch_size=None, batch_format="pyarrow", concurrency=self.opts.workers,
                                num_cpus=1, fn_constructor_kwargs={
                                    "files_ref": ref, "hashes": hashes, "manifest": p.manifest,
                                    "version": {"name": v.name, "version": v.version, "sha256": v.sha256,
                                                "manifest": v.manifest},
                                    "top_k": self.opts.top_k, "threads": 1})
            results.mkdir(parents=True, exist_ok=True)
            for i, batch in enumerate(ds.iter_batches(batch_size=None, batch_format="pyarrow")):
                self.nodes.update(batch.column("node").unique().to_pylist())
                with atomic_path(results / f"part-{i:08d}.parquet") as tmp:  # written here, on the driver
                    pq.write_table(batch, tmp)
        finally:
            if started_here:
                ray.shutdown()

    def _keep(self, staged, meta: Path, results: Path, keep: Callable, progress) -> None:
        import duckdb
        import pyarrow.parquet as pq

        from .chunks import Chunk

        con = duckdb.connect()
        try:
            # the sort of a 1M-row run's results spills to the scratch folder instead of growing the driver
            con.execute("SET memory_limit = '512MB'")
            con.execute("SET temp_directory = ?", [str(self.scratch / "duckdb")])
            files = sorted(str(p) for p in results.glob("*.parquet")) if results.exists() else []
            reader = iter(())
            if files:
                reader = con.sql("SELECT * FROM read_parquet(?) ORDER BY chunk, pos", params=[files]).to_arrow_reader(65_536)
            pending = None
            for index, has in staged:
                m = pq.read_table(meta / f"chunk-{index:08d}.parquet")
                keys = {n: m.column(n).to_pylist() for n in m.column_names if n not in ("error", "inverse")}
                c = Chunk(index, keys, m.column("error").to_pylist(), [], m.column("inverse").to_pylist())
                cols: dict = {}
                tokens, cpu = 0, 0.0
                if has:
                    rows = []
                    while True:
                        if pending is None:
                            try:
                                pending = next(reader).to_pylist()
                            except StopIteration:
                                break
                        take = [r for r in pending if r["chunk"] == index]
                        rest = [r for r in pending if r["chunk"] != index]
                        rows += take
                        if rest:
                            pending = rest
                            break
                        pending = None
                    for name in ("label", "score", "abstained", "best_label", "top_labels", "top_scores", "labels"):
                        if rows and name in rows[0]:
                            cols[name] = [r[name] for r in rows]
                    tokens = sum(r["tokens"] for r in rows)
                    cpu = sum(r["cpu"] for r in rows)
                    c.unique = [None] * len(rows)
                keep(c, cols)
                self.meter.add(documents=c.rows, tokens=tokens)
                self.meter.extra_cpu += cpu
                progress(c.rows, len(c.unique))
        finally:
            con.close()
