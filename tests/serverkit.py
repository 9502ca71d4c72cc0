"""Helpers for the server tests: a real ``inhouse serve`` in a subprocess on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
LABELS = ["card_arrival", "lost_or_stolen_card", "exchange_rate", "top_up_failed", "pin_blocked"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m inhouse --home HOME serve --port P ...``; ``.url``, ``.client(token)``, ``.kill()``."""

    def __init__(self, home: Path, *args: str, port: int | None = None, timeout: float = 90):
        self.home, self.args = Path(home), list(args)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   INHOUSE_HOME=str(home))
        self.log = open(self.home / f"server-{self.port}.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "inhouse", "--home", str(home), "serve", "--port",
                                      str(self.port), "--log-level", "warning", *self.args],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.read_log()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    time.sleep(0.1)
                    if self.proc.poll() is not None:  # another process answered on this port; ours failed to bind
                        raise RuntimeError(f"server exited with {self.proc.returncode} while port {self.port} "
                                           f"answered for another process: {self.read_log()[-3000:]}")
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start in {timeout}s: {self.read_log()[-3000:]}")

    def read_log(self) -> str:
        return (self.home / f"server-{self.port}.log").read_text(errors="replace")

    def client(self, token: str | None = None, timeout: float = 120) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def banking_slice(shared_data: Path, folder: Path, per_label_train: int = 12, per_label_test: int = 8) -> Path:
    """A 5-intent banking77 CSV (text, label, split) small enough for seconds of training."""
    df = pd.read_csv(shared_data / "banking77" / "banking77.csv")
    df = df[df["label"].isin(LABELS)]
    df = pd.concat([df[df["split"] == "train"].groupby("label").head(per_label_train),
                    df[df["split"] == "test"].groupby("label").head(per_label_test)])
    df = df.assign(created=pd.date_range("2026-01-01", periods=len(df), freq="h", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"))
    path = folder / "b5.csv"
    df.to_csv(path, index=False)
    return path


def create_token(home: Path, name: str, role: str) -> str:
    """The real ``inhouse tokens create``; returns the one line it printed on stdout (the token, alone)."""
    from conftest import invoke_cli

    r = invoke_cli("--home", home, "tokens", "create", name, "--role", role)
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ih_"), r.stdout
    return lines[0]


def wait_job(c: httpx.Client, job_id: int, timeout: float = 180) -> dict:
    """Poll ``GET /jobs/{job_id}`` until it ends; the finished job (asserted ``done``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            assert job["status"] == "done", job
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s")


class LiveApp:
    """``create_app(settings)`` served by a real uvicorn on a free loopback port, in a thread of this process
    (so a test can reach the server's objects); ``.url``, ``.ctx``, ``.client(token)``, ``.stop()``."""

    def __init__(self, settings, *, app=None, **uvicorn_options):
        import threading

        import uvicorn

        from inhouse.server.app import create_app

        self.app = app or create_app(settings)
        self.ctx = self.app.state.ctx
        self.port = free_port()
        scheme = "https" if uvicorn_options.get("ssl_certfile") else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    **uvicorn_options))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the in-process server did not start")
            time.sleep(0.05)

    def client(self, token: str | None = None, timeout: float = 120, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout, **kw)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
