"""The FastAPI application: limits, offline docs, the job dispatcher, every resource's routes.

    >>> app = create_app(Settings(home="/srv/inhouse"))
    >>> # uvicorn.run(app, host="127.0.0.1", port=8080)

``inhouse serve`` builds the settings from its options (and, for several
uvicorn worker processes, from ``$INHOUSE_SERVER_SETTINGS``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from .. import netguard
from ..version import __version__
from ..workspace.store import Workspace
from . import errors
from .auth import ApiHeaders, AuthMiddleware, RouteTable, TokenCache
from .batching import OnlineModels
from .jobs import Dispatcher

log = logging.getLogger("inhouse.server")
SETTINGS_ENV = "INHOUSE_SERVER_SETTINGS"
# the model thread drops the GIL around every tensor op and must get it back quickly while the event loop is busy
# with other clients; at Python's default 5 ms a 100-op forward pass can wait whole seconds for it
SWITCH_INTERVAL = 0.0005
PUBLIC = ("/health", "/docs", "/openapi.json", "/docs-static/", "/session")  # no token: liveness, the API's
# description, and sign-in (which checks the token it is given)


@dataclass
class Settings:
    """Everything ``inhouse serve`` can set."""

    home: str | None = None
    max_body_bytes: int = 8 << 20  # JSON bodies
    max_upload_bytes: int = 1 << 30  # multipart dataset uploads and NDJSON streams
    max_batch_texts: int = 256  # texts per /classify/batch or /v1 request
    batch_window_ms: float = 0.0  # extra wait for more texts before a model call (0: none; texts that arrive
    # while a call runs always share the next one)
    batching: bool = True  # False: one request per model call, one at a time
    max_model_batch: int = 128  # texts per model call
    max_request_tokens: int | None = 16384  # texts x tokens one online classify request may ask for; None: no bound
    job_workers: int = 1  # worker processes running jobs at once
    worker_threads: int | None = None  # torch threads per worker process
    prefer_onnx: bool = True
    model_threads: int | None = 1  # torch threads for online models (None: torch's default, one per core)
    jobs: bool = True  # run the dispatcher in this process
    trusted_proxies: list[str] | None = None  # addresses whose X-Forwarded-Proto/-For are believed (TLS proxies)

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(**json.loads(os.environ.get(SETTINGS_ENV, "{}")))


class ServerContext:
    """What every route needs: the workspace, the loaded models, the settings."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.ws = Workspace.open(settings.home)
        self.models = OnlineModels(self.ws, window=settings.batch_window_ms / 1000, max_batch=settings.max_model_batch,
                                   prefer_onnx=settings.prefer_onnx, model_threads=settings.model_threads,
                                   max_request_tokens=settings.max_request_tokens, batching=settings.batching)
        self.dispatcher = Dispatcher(self.ws.home, settings.job_workers, worker_threads=settings.worker_threads) \
            if settings.jobs else None


def context(request: Request) -> ServerContext:
    return request.app.state.ctx


def _swagger_static() -> Path | None:
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.origin:
        return None
    static = Path(spec.origin).parent / "static"
    return static if (static / "swagger-ui-bundle.js").is_file() else None


def create_app(settings: Settings | None = None, *, public: tuple[str, ...] = ()) -> FastAPI:
    """The API; ``public``: more paths (exact, or prefixes ending in /) that need no token, e.g. a UI's files."""
    netguard.install()  # the server's door (also each uvicorn worker process): nothing but loopback leaves
    if settings is None:  # a uvicorn worker process of inhouse serve --workers N: as the one-process server does
        import sys

        sys.setswitchinterval(SWITCH_INTERVAL)
    settings = settings or Settings.from_env()
    ctx = ServerContext(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        from .routes_data import clean_stale_uploads

        for name in clean_stale_uploads(ctx.ws):  # raw uploads a crash left behind
            log.warning("removed %s: an upload a stopped server left in tmp/", name)
        if ctx.dispatcher:
            ctx.dispatcher.start()
        yield
        if ctx.dispatcher:
            ctx.dispatcher.stop()
        ctx.models.close()

    app = FastAPI(title="inhouse", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Own your language models, offline: datasets, topics, labels, training, versions, "
                              "aliases, classification, jobs, and OpenAI-compatible routes under /v1. Every route "
                              "but GET /health needs `Authorization: Bearer TOKEN` (inhouse tokens create).",
                  responses=errors.ERROR_RESPONSES)
    app.state.ctx = ctx
    errors.install(app)

    static = _swagger_static()
    if static is not None:
        app.mount("/docs-static", StaticFiles(directory=str(static)), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if static is None:
            return HTMLResponse("<h1>inhouse API</h1><p>The interactive docs need the package fastapi-offline; "
                                "the API is described at <a href='/openapi.json'>/openapi.json</a>.</p>")
        return get_swagger_ui_html(openapi_url="/openapi.json", title="inhouse API",
                                   swagger_js_url="/docs-static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-static/swagger-ui.css",
                                   swagger_favicon_url="/docs-static/favicon.png")

    @app.get("/health", tags=["server"], summary="Liveness; needs no token")
    def health() -> dict:
        return {"status": "ok", "version": __version__, "schema_version": ctx.ws.schema_version()}

    from . import (openai, routes_classify, routes_data, routes_documents, routes_downloads, routes_jobs, routes_label,
                   routes_models, routes_pipelines, routes_session)

    # online classification first: the router tries routes in order, and these are the ones called per text
    modules = (routes_classify, openai, routes_data, routes_documents, routes_label, routes_models,
               routes_pipelines, routes_jobs, routes_session, routes_downloads)
    for module in modules:
        app.include_router(module.router)
    table = RouteTable([m.router for m in modules], public=PUBLIC + tuple(public))
    app.state.token_cache = TokenCache(ctx.ws)
    app.add_middleware(AuthMiddleware, table=table, ws=ctx.ws, max_body=settings.max_body_bytes,
                       max_upload=settings.max_upload_bytes, cache=app.state.token_cache)
    app.add_middleware(openai.OpenAIErrors)  # outside auth: /v1's 401s, 404s and 413s in OpenAI's shape too
    if settings.trusted_proxies:  # opt-in: only these addresses may say the client's scheme (https) and address
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
    app.add_middleware(ApiHeaders, skip=("/docs", "/docs-static/") + tuple(public))  # the UI's files set their own
    return app
