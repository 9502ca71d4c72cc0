"""``inhouse serve``: the REST API, OpenAI-compatible routes and background jobs over HTTP."""

from __future__ import annotations

import os
import sys

import click

from ..errors import MissingDependency, UsageError
from ..netguard import is_local
from . import cli, emit_json, json_option, pass_ctx


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs at least one token (inhouse tokens create).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="uvicorn worker processes (each loads its own models).")
@click.option("--job-workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Jobs (training, embedding, ...) run at once, each in its own process.")
@click.option("--batch-window-ms", default=0.0, show_default=True, type=click.FloatRange(0, 1000),
              help="Extra wait for more texts before each model call. With 0, a request that finds the model idle "
                   "runs at once, and those that arrive while a call runs share the next call.")
@click.option("--no-batching", is_flag=True, help="One request per model call, one at a time.")
@click.option("--max-body-mb", default=8, show_default=True, type=click.IntRange(1, 4096), help="JSON request bodies.")
@click.option("--max-upload-mb", default=1024, show_default=True, type=click.IntRange(1, 1 << 20),
              help="Dataset uploads and NDJSON streams.")
@click.option("--max-batch", default=256, show_default=True, type=click.IntRange(1, 100_000),
              help="Texts per /classify/batch or /v1 request.")
@click.option("--model-threads", default=1, show_default=True, type=click.IntRange(0, 1024),
              help="torch threads for online models (0: one per core); the event loop needs a core too.")
@click.option("--max-request-tokens", default=16384, show_default=True, type=click.IntRange(0, 1 << 30),
              help="Texts x tokens one online classify request may ask for (bigger: 413, use a classify job); 0: no bound.")
@click.option("--ssl-certfile", type=click.Path(exists=True, dir_okay=False),
              help="Serve HTTPS with this certificate (PEM), e.g. for a LAN bind; needs --ssl-keyfile.")
@click.option("--ssl-keyfile", type=click.Path(exists=True, dir_okay=False), help="The certificate's private key (PEM).")
@click.option("--trusted-proxy", "trusted_proxies", multiple=True, metavar="IP",
              help="A TLS-terminating reverse proxy whose X-Forwarded-Proto/-For headers are believed (session cookies "
                   "then get Secure); repeatable. Without it no forwarded header is believed.")
@click.option("--no-onnx", is_flag=True, help="Serve versions with PyTorch even when an ONNX export is registered.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@json_option
@pass_ctx
def serve_cmd(ctx, host, port, workers, job_workers, batch_window_ms, no_batching, max_body_mb, max_upload_mb, max_batch,
              model_threads, max_request_tokens, ssl_certfile, ssl_keyfile, trusted_proxies, no_onnx, log_level, as_json) -> None:
    """Serve the workspace over HTTP: the web UI at /, REST API, /v1 (OpenAI-compatible), jobs, docs at /docs.

    Every API route but GET /health needs 'Authorization: Bearer TOKEN' (the web UI signs in with a token
    and keeps it in an HttpOnly cookie).

    \b
    Example:
      $ inhouse tokens create ana --role editor
      $ inhouse serve --port 8080
      inhouse 0.1.0 serving /home/ana/.local/share/inhouse on http://127.0.0.1:8080 (web UI: /, API docs: /docs)
    """
    try:
        import uvicorn

        from ..server.app import SETTINGS_ENV, SWITCH_INTERVAL, Settings
        from ..ui.app import create_app
        from ..server.tokens import any_token
    except ImportError as e:
        raise MissingDependency(e.name or "fastapi", "server", "inhouse serve") from e
    ws = ctx.ws
    if not is_local((host, port)) and not any_token(ws):
        raise UsageError(f"refusing to serve on {host}, reachable from other machines, while no API token exists "
                         "(the API would be open to anyone who can reach it).",
                         fix="Create one first: inhouse tokens create NAME --role admin")
    if bool(ssl_certfile) != bool(ssl_keyfile):
        raise UsageError("--ssl-certfile and --ssl-keyfile go together.",
                         fix="Give both: the certificate and its private key, as PEM files.")
    settings = Settings(home=str(ws.home), max_body_bytes=max_body_mb << 20, max_upload_bytes=max_upload_mb << 20,
                        max_batch_texts=max_batch, batch_window_ms=batch_window_ms, batching=not no_batching,
                        job_workers=job_workers,
                        prefer_onnx=not no_onnx, model_threads=model_threads or None,
                        max_request_tokens=max_request_tokens or None, trusted_proxies=list(trusted_proxies) or None)
    scheme = "https" if ssl_certfile else "http"
    # forwarded headers are believed only from --trusted-proxy (the app applies them), never by uvicorn's default
    options = dict(host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10, timeout_keep_alive=30,
                   proxy_headers=False, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    from ..version import __version__

    sys.setswitchinterval(SWITCH_INTERVAL)  # see inhouse.server.app.SWITCH_INTERVAL (worker processes set it too)
    os.umask(0o077)  # what the server and its job workers write (uploads, parts, logs) is the owner's alone

    if as_json:  # one line a supervisor can read before the server's own log starts
        emit_json({"version": __version__, "home": str(ws.home), "url": f"{scheme}://{host}:{port}",
                   "docs": f"{scheme}://{host}:{port}/docs", "tokens": any_token(ws), "workers": workers})
        sys.stdout.flush()
    click.echo(f"inhouse {__version__} serving {ws.home} on {scheme}://{host}:{port} (web UI: /, API docs: /docs)", err=True)
    if not any_token(ws):
        click.echo("no API token exists yet: create one with: inhouse tokens create NAME --role admin", err=True)
    if workers > 1:
        os.environ[SETTINGS_ENV] = settings.to_env()
        # each worker process runs a dispatcher, but only the one holding the workspace's dispatcher lock
        # starts jobs: --job-workers in total, not per process
        uvicorn.run("inhouse.ui.app:create_app", factory=True, workers=workers, **options)
    else:
        uvicorn.run(create_app(settings), **options)
