"""OpenAI-compatible routes under ``/v1``: switch a tool to your own models by changing its base URL.

- ``GET /v1/models``: every trained version (``intents@2``) and alias
  (``intents@production``), plus the base encoders and generators
- ``POST /v1/embeddings``: any registered embedding model; ``input`` a string
  or a list; ``encoding_format`` ``float`` or ``base64`` (little-endian float32)
- ``POST /v1/chat/completions``: a registered GGUF model through llama.cpp,
  ``stream: true`` as server-sent events, ``max_tokens``, ``temperature``, ``stop``
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
from typing import Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from .. import registry
from ..errors import InputError, UsageError
from ..models import catalog as models_api
from .auth import role
from .common import Body, ws_of
from .errors import from_exception
from .routes_classify import check_batch

router = APIRouter(prefix="/v1")
CHAT_MAX_TOKENS = 2048


@router.get("/models", tags=["openai"], summary="Models, OpenAI-style", **role("viewer"))
def models(request: Request) -> dict:
    ws = ws_of(request)
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
    return {"object": "list", "data": data}


# ------------------------------------------------------------- embeddings ----

class EmbeddingsRequest(Body):
    model: str = Field(..., max_length=300)
    input: str | list[str] = Field(..., description="A string or a list of strings (token arrays are not supported).")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, le=65536, description="Accepted only when equal to the model's size.")
    user: str | None = Field(None, max_length=256)


@router.post("/embeddings", tags=["openai"], summary="Embeddings, OpenAI-style", **role("viewer"))
async def embeddings(request: Request, body: EmbeddingsRequest) -> dict:
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if not texts:
        raise InputError("input is an empty list.", fix="Send a string or a non-empty list of strings.")
    check_batch(request, len(texts))
    online = request.app.state.ctx.models
    enc, batcher, _ = await online.aencoder(body.model)
    from .batching import cut

    texts, chars_cut = cut(texts)
    rows = await batcher.run(texts)
    dim = len(rows[0][0])
    if body.dimensions is not None and body.dimensions != dim:
        raise InputError(f"{body.model} makes {dim}-dimensional vectors; dimensions={body.dimensions} was asked.",
                         fix=f"Leave dimensions out, or set it to {dim}.")
    data = []
    for i, ((vec, over), c) in enumerate(zip(rows, chars_cut)):
        v = np.asarray(vec, dtype="<f4")
        emb = base64.b64encode(v.tobytes()).decode("ascii") if body.encoding_format == "base64" else v.tolist()
        data.append({"object": "embedding", "index": i, "embedding": emb, "truncated": bool(over or c)})
    n_tokens = sum(len(t.split()) for t in texts)
    return {"object": "list", "data": data, "model": body.model,
            "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}}


# ------------------------------------------------------------------- chat ----

class ChatMessage(Body):
    role: Literal["system", "user", "assistant"]
    content: str = Field(..., max_length=1_000_000)
    name: str | None = Field(None, max_length=256)


class ChatRequest(Body):
    model: str = Field(..., max_length=300)
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=1000)
    max_tokens: int | None = Field(None, ge=1, le=CHAT_MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=CHAT_MAX_TOKENS)
    temperature: float = Field(0.0, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = Field(None, description="Up to 4 sequences")
    stream: bool = False
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    n: int = Field(1, ge=1, le=1, description="Only 1 is supported")
    user: str | None = Field(None, max_length=256)


def _fit(gen, messages: list[dict], max_tokens: int) -> tuple[list[dict], bool]:
    """Cut the longest messages from the front (keeping their ends) until the prompt fits the context."""
    budget = gen.context_length - max_tokens - 16 * len(messages) - 32
    if budget < 64:
        raise InputError(f"max_tokens={max_tokens} leaves no room for the prompt in {gen.name}'s "
                         f"{gen.context_length}-token context.", fix="Ask for fewer max_tokens.")
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


@router.post("/chat/completions", tags=["openai"], summary="Chat completions, OpenAI-style (llama.cpp)",
             **role("viewer"), responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}})
async def chat(request: Request, body: ChatRequest):
    from ..models.generators import load_generator

    ws = ws_of(request)
    model = models_api.get_model(ws, body.model)
    if model.kind != "gguf":
        raise UsageError(f"model {body.model!r} is a {model.kind} model, not a generative one.",
                         fix="Use a GGUF model, e.g. smollm2-135m (GET /v1/models lists kind=generator).")
    gen = await run_in_threadpool(load_generator, ws, body.model)
    stops = [body.stop] if isinstance(body.stop, str) else (body.stop or [])
    if len(stops) > 4:
        raise InputError(f"{len(stops)} stop sequences; at most 4.")
    max_tokens = body.max_completion_tokens or body.max_tokens or 256
    messages, truncated = await run_in_threadpool(_fit, gen, [m.model_dump(exclude={"name"}) for m in body.messages],
                                                  max_tokens)
    opts = dict(max_tokens=max_tokens, temperature=body.temperature, seed=body.seed or 0, stop=stops)
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    headers = {"X-Inhouse-Truncated": "true"} if truncated else {}
    if not body.stream:
        out = await run_in_threadpool(lambda: gen.chat(messages, **opts))
        out.update(id=cid, model=body.model)
        out["inhouse"] = {"sha256": gen.sha256, "truncated": truncated}
        return _json(out, headers)

    stream = gen.chat(messages, stream=True, **opts)

    def events():
        try:
            for chunk in stream:
                chunk.update(id=cid, model=body.model)
                yield f"data: {json.dumps(chunk)}\n\n"
        except Exception as e:  # the status line is gone: say it in the stream
            yield f"data: {json.dumps({'error': from_exception(e)[1]})}\n\n"
        finally:
            stream.close()
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", **headers})


def _json(obj: dict, headers: dict):
    from fastapi.responses import JSONResponse

    return JSONResponse(obj, headers=headers)


# -------------------------------------------------------- classifications ----

class ClassificationsRequest(Body):
    model: str = Field(..., max_length=300, description="A trained version: NAME, NAME@N or NAME@ALIAS")
    input: str | list[str]
    top_k: int = Field(3, ge=1, le=100)


@router.post("/classifications", tags=["openai"], summary="Labels and scores from a fine-tuned version",
             **role("viewer"))
async def classifications(request: Request, body: ClassificationsRequest) -> dict:
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if not texts:
        raise InputError("input is an empty list.", fix="Send a string or a non-empty list of strings.")
    check_batch(request, len(texts))
    s = await request.app.state.ctx.models.aclassifier(body.model)
    rows = await s.aclassify(texts, body.top_k)
    d = s.describe()
    return {"object": "list", "model": d["model"], "sha256": d["sha256"], "runtime": d["runtime"],
            "served_by": d["served_by"], "data": [{"object": "classification", "index": i, **r} for i, r in enumerate(rows)]}
