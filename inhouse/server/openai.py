"""OpenAI-compatible routes under ``/v1``: switch a tool to your own models by changing its base URL.

- ``GET /v1/models``: every trained version (``intents@2``) and alias
  (``intents@production``), plus the base encoders and generators
- ``POST /v1/embeddings``: any registered embedding model; ``input`` a string
  or a list; ``encoding_format`` ``float`` or ``base64`` (little-endian float32)
- ``GET /v1/models/{id}``: one of them
- ``POST /v1/chat/completions``: a registered GGUF model through llama.cpp,
  ``stream: true`` as server-sent events (``stream_options.include_usage``
  adds the usage chunk), ``max_tokens``/``max_completion_tokens``,
  ``temperature``, ``top_p``, ``stop``, ``seed``, penalties; ``usage`` counts
- ``POST /v1/completions``: OpenAI's legacy text completion, same model and options

OpenAI's current request schema is accepted; what a local model cannot honour
is a 400 naming the parameter, and every error is OpenAI's ``{"error": {...}}``
(see :mod:`inhouse.server.openai_schema`).
- ``POST /v1/classifications`` (ours): a fine-tuned version's labels and
  scores, with the exact version and sha256 that made them

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> from openai import OpenAI
    >>> client = OpenAI(base_url="http://127.0.0.1:8080/v1", api_key=TOKEN)
    >>> client.embeddings.create(model="minilm-l6", input="hello").data[0].embedding[:2]
"""

from __future__ import annotations

import base64
import json
import time
import uuid

import numpy as np
from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from .. import registry
from ..errors import InputError, NotFound
from ..models import catalog as models_api
from .auth import role
from .common import Body, ws_of
from .errors import from_exception
from .openai_schema import (ChatRequest, CompletionRequest, EmbeddingsRequest, OpenAIError, OpenAIErrors,  # noqa: F401
                            OpenAIRoute, error_body, unsupported)
from .routes_classify import check_batch

router = APIRouter(prefix="/v1", route_class=OpenAIRoute)


def _model_list(ws) -> list[dict]:
    data = []
    for v in registry.versions(ws):
        created = int(time.mktime(time.strptime(v.manifest["created_at"], "%Y-%m-%dT%H:%M:%SZ"))) \
            if v.manifest.get("created_at") else 0
        extra = {"kind": "classifier", "sha256": v.sha256, "format": v.manifest.get("format", "safetensors")}
        data.append({"id": v.ref, "object": "model", "created": created, "owned_by": "inhouse", **extra})
        for alias in registry.aliases_of(ws, v):
            data.append({"id": f"{v.name}@{alias}", "object": "model", "created": created, "owned_by": "inhouse",
                         **extra, "alias_of": v.ref})
    for m in models_api.list_models(ws):
        kind = "generator" if m.kind == "gguf" else "encoder" if m.kind in models_api.EMBEDDING_KINDS else m.kind
        data.append({"id": m.name, "object": "model", "created": 0, "owned_by": m.source, "kind": kind,
                     "sha256": m.sha256})
    return data


@router.get("/models", tags=["openai"], summary="Models, OpenAI-style", **role("viewer"))
def models(request: Request) -> dict:
    return {"object": "list", "data": _model_list(ws_of(request))}


@router.get("/models/{model_id}", tags=["openai"], summary="One model, OpenAI-style", **role("viewer"))
def model(request: Request, model_id: str = PathParam(..., max_length=300)) -> dict:
    data = _model_list(ws_of(request))
    for m in data:
        if m["id"] == model_id:
            return m
    raise _no_model(model_id, data)


def _no_model(name: str, data: list[dict] | None = None, kind: str = "") -> OpenAIError:
    ids = [m["id"] for m in data or [] if not kind or m.get("kind") == kind]
    known = f" Known{' ' + kind + 's' if kind else ''}: {', '.join(ids[:12])}." if ids else ""
    return OpenAIError(404, f"The model '{name}' does not exist here.{known}",
                       fix="GET /v1/models lists them; register more with inhouse models add.",
                       param="model", code="model_not_found")


def _get_model(ws, name: str, kind: str):
    try:
        return models_api.get_model(ws, name)
    except NotFound:
        raise _no_model(name, _model_list(ws), kind) from None


# ------------------------------------------------------------- embeddings ----

@router.post("/embeddings", tags=["openai"], summary="Embeddings, OpenAI-style", **role("viewer"))
async def embeddings(request: Request, body: EmbeddingsRequest) -> dict:
    body.refuse_unsupported()
    texts = body.texts()
    check_batch(request, len(texts))
    online = request.app.state.ctx.models
    try:
        enc, batcher, _ = await online.aencoder(body.model)
    except NotFound:
        raise _no_model(body.model, await run_in_threadpool(_model_list, ws_of(request)), "encoder") from None
    from .batching import cut

    texts, chars_cut = cut(texts)
    rows = await batcher.run(texts)
    dim = len(rows[0][0])
    if body.dimensions is not None and body.dimensions != dim:
        raise OpenAIError(400, f"{body.model} makes {dim}-dimensional vectors; dimensions={body.dimensions} was asked.",
                          fix=f"Leave dimensions out, or set it to {dim}.", param="dimensions", code="invalid_value")
    data = []
    for i, ((vec, over), c) in enumerate(zip(rows, chars_cut)):
        v = np.asarray(vec, dtype="<f4")
        emb = base64.b64encode(v.tobytes()).decode("ascii") if body.encoding_format == "base64" else v.tolist()
        data.append({"object": "embedding", "index": i, "embedding": emb, "truncated": bool(over or c)})
    n_tokens = await run_in_threadpool(_count_tokens, enc, texts)
    return {"object": "list", "data": data, "model": body.model,
            "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}}


def _count_tokens(enc, texts: list[str]) -> int:
    """Tokens the encoder read (its own tokenizer where it has one, else words)."""
    tok = getattr(enc, "tokenizer", None) or getattr(getattr(enc, "st", None), "tokenizer", None)
    if tok is not None and callable(getattr(tok, "__call__", None)):
        try:
            return int(sum(len(ids) for ids in tok(texts)["input_ids"]))
        except Exception:  # noqa: BLE001 - a tokenizer of another shape: fall back to words
            pass
    return sum(len(t.split()) for t in texts)


# ------------------------------------------------------------------- chat ----

def _fit(gen, messages: list[dict], max_tokens: int) -> tuple[list[dict], bool]:
    """Cut the longest messages from the front (keeping their ends) until the prompt fits the context."""
    budget = gen.context_length - max_tokens - 16 * len(messages) - 32
    if budget < 64:
        raise OpenAIError(400, f"max_tokens={max_tokens} leaves no room for the prompt in {gen.name}'s "
                          f"{gen.context_length}-token context.", fix="Ask for fewer max_tokens.", param="max_tokens",
                          code="context_length_exceeded")
    counts = [gen.count_tokens(m["content"]) for m in messages]
    truncated = False
    while sum(counts) > budget:
        i = int(np.argmax(counts))
        keep = max(counts[i] - (sum(counts) - budget) - 8, 0)
        text = messages[i]["content"]
        chars = int(len(text) * keep / max(counts[i], 1))
        messages[i] = {**messages[i], "content": text[len(text) - chars:] if chars else ""}
        counts[i] = gen.count_tokens(messages[i]["content"])
        truncated = True
        if counts[i] and keep == 0:
            counts[i] = 0
            messages[i]["content"] = ""
    return messages, truncated


async def _generator(request: Request, name: str):
    from ..models.generators import load_generator

    ws = ws_of(request)
    model = await run_in_threadpool(_get_model, ws, name, "generator")
    if model.kind != "gguf":
        raise OpenAIError(400, f"model {name!r} is a {model.kind} model, not a generative one.",
                          fix="Use a GGUF model, e.g. smollm2-135m (GET /v1/models lists kind=generator).",
                          param="model", code="model_not_supported")
    return await run_in_threadpool(load_generator, ws, name)


async def _start(request: Request, body, max_tokens: int):
    """Refuse what cannot be honoured, load the generator: (generator, its options with ``max_tokens``)."""
    body.refuse_unsupported()
    opts = body.sampling()
    opts.update(max_tokens=max_tokens)
    return await _generator(request, body.model), opts


@router.post("/chat/completions", tags=["openai"], summary="Chat completions, OpenAI-style (llama.cpp)",
             **role("viewer"), responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}})
async def chat(request: Request, body: ChatRequest):
    messages = body.plain_messages()
    gen, opts = await _start(request, body, body.max_completion_tokens or body.max_tokens or 256)
    messages, truncated = await run_in_threadpool(_fit, gen, messages, opts["max_tokens"])
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    headers = {"X-Inhouse-Truncated": "true"} if truncated else {}
    if not body.stream:
        out = await run_in_threadpool(lambda: gen.chat(messages, **opts))
        out.update(id=cid, model=body.model)
        out["inhouse"] = {"sha256": gen.sha256, "truncated": truncated}
        return JSONResponse(out, headers=headers)
    return _sse(gen.chat(messages, stream=True, **opts), cid, body, headers)


def _sse(stream, cid: str, body, headers: dict) -> StreamingResponse:
    """Server-sent events of a generator's chunks; ``stream_options.include_usage`` adds OpenAI's usage chunk."""
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def events():
        usage, last = None, None
        try:
            for chunk in stream:
                chunk.update(id=cid, model=body.model)
                usage = chunk.pop("usage", None) or usage
                if include_usage:
                    chunk["usage"] = None
                last = chunk
                yield f"data: {json.dumps(chunk)}\n\n"
            if include_usage and last is not None:
                yield f"data: {json.dumps({**last, 'choices': [], 'usage': usage})}\n\n"
        except Exception as e:  # the status line is gone: say it in the stream
            status, b = from_exception(e)
            message = f"{b['message']} {b['fix']}" if b.get("fix") else b["message"]
            yield f"data: {json.dumps(error_body(status, message))}\n\n"
        finally:
            stream.close()
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", **headers})


# ------------------------------------------------------------ completions ----

@router.post("/completions", tags=["openai"], summary="Text completions, OpenAI's legacy route (llama.cpp)",
             **role("viewer"), responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}})
async def completions(request: Request, body: CompletionRequest):
    prompt = body.text()
    gen, opts = await _start(request, body, body.max_tokens or 16)
    max_tokens = opts["max_tokens"]
    n_prompt = await run_in_threadpool(gen.count_tokens, prompt)
    if n_prompt + max_tokens > gen.context_length:
        raise OpenAIError(400, f"the prompt ({n_prompt} tokens) and max_tokens={max_tokens} exceed {gen.name}'s "
                          f"{gen.context_length}-token context.", fix="Send a shorter prompt or fewer max_tokens.",
                          param="prompt", code="context_length_exceeded")
    cid = f"cmpl-{uuid.uuid4().hex[:24]}"
    if not body.stream:
        out = await run_in_threadpool(lambda: gen.complete(prompt, **opts))
        if body.echo:
            out["choices"][0]["text"] = prompt + out["choices"][0]["text"]
        out.update(id=cid, model=body.model)
        return JSONResponse(out)
    if body.echo:
        raise unsupported("echo", "not with stream: true.", "Leave echo out, or do not stream.")
    return _sse(gen.complete(prompt, stream=True, **opts), cid, body, {})


# -------------------------------------------------------- classifications ----

class ClassificationsRequest(Body):
    model: str = Field(..., max_length=300, description="A trained version: NAME, NAME@N or NAME@ALIAS")
    input: str | list[str]
    top_k: int = Field(3, ge=1, le=100)


@router.post("/classifications", tags=["openai"], summary="Labels and scores from a fine-tuned version",
             response_model=None, **role("viewer", no_paths=True))
async def classifications(request: Request, body: ClassificationsRequest) -> JSONResponse:
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if not texts:
        raise InputError("input is an empty list.", fix="Send a string or a non-empty list of strings.")
    check_batch(request, len(texts))
    s = await request.app.state.ctx.models.aclassifier(body.model)
    rows = await s.aclassify(texts, body.top_k)
    d = s.describe()
    # a JSONResponse as it is: the rows are plain JSON already, FastAPI need not validate and re-encode them
    return JSONResponse({"object": "list", "model": d["model"], "sha256": d["sha256"], "runtime": d["runtime"],
                         "served_by": d["served_by"],
                         "data": [{"object": "classification", "index": i, **r} for i, r in enumerate(rows)]})
