"""OpenAI's request schema and error shape for the ``/v1`` routes.

Requests follow OpenAI's current ``chat.completions``, ``completions`` and
``embeddings`` parameters: what a local model can honour is honoured, what it
cannot (tools, logprobs, audio, ``n`` > 1, ...) is a 400 naming the parameter,
and an unknown parameter is OpenAI's "Unrecognized request argument" 400 —
never a 422. Every ``/v1`` error, auth and unknown routes included, is
OpenAI's object, with our fix inside the message::

    {"error": {"message": "model 'x' is not registered. Register it ...", "type": "invalid_request_error",
               "param": "model", "code": "model_not_found"}}
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar, Literal

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import ApiError, from_exception

log = logging.getLogger("inhouse.server")
PREFIX = "/v1"
CHAT_MAX_TOKENS = 2048
CODES = {401: "invalid_api_key", 403: "insufficient_permissions", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 413: "request_too_large", 429: "rate_limit_exceeded"}


# ----------------------------------------------------------------- errors ----

def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> dict:
    """OpenAI's error object: ``{"error": {"message", "type", "param", "code"}}``."""
    kind = "server_error" if status >= 500 else "rate_limit_error" if status == 429 else \
        "authentication_error" if status == 401 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": code or CODES.get(status)}}


class OpenAIError(ApiError):
    """An error of a ``/v1`` route that names the request parameter (``param``) it is about."""

    def __init__(self, status: int, message: str, *, fix: str | None = None, param: str | None = None,
                 code: str | None = None):
        super().__init__(status, message, fix=fix)
        self.param, self.code = param, code

    def response(self) -> JSONResponse:
        text = f"{self.message} {self.fix}" if self.fix else self.message
        return JSONResponse(error_body(self.status, text, param=self.param, code=self.code), status_code=self.status)


def unsupported(param: str, why: str, fix: str) -> OpenAIError:
    return OpenAIError(400, f"{param}: {why}", fix=fix, param=param, code="unsupported_parameter")


def _param(loc) -> str:
    out = ""
    for p in loc:
        if p in ("body",) and not out:
            continue
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def validation_error(errors: list[dict]) -> OpenAIError:
    """The first of pydantic's errors as OpenAI's 400 (an unknown field: "Unrecognized request argument")."""
    e = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    param = _param(e.get("loc", ())) or None
    if e.get("type") == "json_invalid":
        return OpenAIError(400, "We could not parse the JSON body of your request.",
                           fix="Send a JSON object (Content-Type: application/json).", code="invalid_json")
    if e.get("type") == "extra_forbidden":
        return OpenAIError(400, f"Unrecognized request argument supplied: {param}", param=param,
                           fix="Leave it out; GET /openapi.json lists the parameters of each /v1 route.")
    if e.get("type") == "missing":
        return OpenAIError(400, f"Missing required parameter: '{param}'.", param=param,
                           code="missing_required_parameter", fix="See the request schema at /docs.")
    return OpenAIError(400, f"Invalid value for '{param}': {e.get('msg', 'invalid')}.", param=param,
                       code="invalid_value", fix="See the request schema at /docs.")


class OpenAIRoute(APIRoute):
    """A ``/v1`` route: invalid requests and :class:`OpenAIError` answer in OpenAI's shape, a 400 not a 422."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request):
            try:
                return await handler(request)
            except RequestValidationError as e:
                return validation_error(list(e.errors())).response()
            except OpenAIError as e:
                return e.response()

        return route


class OpenAIErrors:
    """Rewrites every error under ``/v1`` (auth, limits, unknown routes, library errors, crashes) to OpenAI's shape.

    Added outside the auth middleware, so a 401 from a client's wrong key
    reaches it as ``{"error": {...}}`` too; bodies already in that shape pass.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == PREFIX or path.startswith(PREFIX + "/")):
            return await self.app(scope, receive, send)
        held: dict = {}
        parts: list[bytes] = []
        started = False

        async def rewriting_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                ctype = dict(message.get("headers") or []).get(b"content-type", b"")
                if message["status"] >= 400 and ctype.startswith(b"application/json"):
                    held.update(message)
                    return
            elif message["type"] == "http.response.body" and held:
                parts.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                status, raw = held["status"], b"".join(parts)
                new = _convert(status, raw)
                headers = [(k, v) for k, v in held.get("headers") or [] if k != b"content-length"]
                headers.append((b"content-length", str(len(new)).encode()))
                await send({**held, "headers": headers})
                await send({"type": "http.response.body", "body": new})
                return
            await send(message)

        try:
            await self.app(scope, receive, rewriting_send)
        except Exception as e:  # the app's own 500 handler sits outside every middleware
            if started:
                raise
            status, b = from_exception(e)
            await JSONResponse(error_body(status, _text(b)), status_code=status)(scope, receive, send)


def _text(b: dict) -> str:
    return f"{b.get('message', '')} {b['fix']}".strip() if b.get("fix") else str(b.get("message", ""))


def _convert(status: int, raw: bytes) -> bytes:
    try:
        b = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(b, dict) or isinstance(b.get("error"), dict):
        return raw
    code = "model_not_found" if status == 404 and "model" in str(b.get("message", "")) else None
    return json.dumps(error_body(status, _text(b), code=code)).encode()


# --------------------------------------------------------------- requests ----

class OpenAIBody(BaseModel):
    """OpenAI's parameters, and only those: an unknown one is "Unrecognized request argument supplied"."""

    model_config = ConfigDict(extra="forbid")

    def refuse_unsupported(self) -> None:
        """A 400 naming the first parameter set to something a local model cannot do."""
        for name, (neutral, why, fix) in self.UNSUPPORTED.items():
            value = getattr(self, name, None)
            if value is not None and value not in neutral:
                raise unsupported(name, why, fix)

    UNSUPPORTED: ClassVar[dict] = {}


_NO_TOOLS = ("local models here do not call tools or functions.", "Leave it out, or call the tool yourself.")
_SAMPLING = dict(
    logit_bias=(({},), "biases are keyed by OpenAI's token ids, which mean nothing to a local model.",
                "Leave it out."),
    logprobs=((False, 0), "log probabilities are not returned.", "Leave it out or set it to false."),
    n=((1,), "one choice per request.", "Send n=1 (or leave it out) and repeat the request for more choices."),
)
CHAT_UNSUPPORTED = dict(
    _SAMPLING,
    top_logprobs=((0,), "log probabilities are not returned.", "Leave it out."),
    tools=(([],), *_NO_TOOLS), functions=(([],), *_NO_TOOLS),
    tool_choice=(("none", "auto"), *_NO_TOOLS), function_call=(("none", "auto"), *_NO_TOOLS),
    response_format=(({"type": "text"},), "only plain text replies (no JSON mode or schema).",
                     "Leave it out, or ask for JSON in the prompt."),
    modalities=((["text"],), "only text replies.", "Leave it out or send [\"text\"]."),
    audio=((), "only text replies.", "Leave it out."),
    store=((False,), "completions are not stored for later retrieval.", "Leave it out or set it to false."),
    reasoning_effort=((), "the local models here are not reasoning models.", "Leave it out."),
    verbosity=((), "the local models here have no verbosity setting.", "Leave it out."),
    web_search_options=((), "no web search: nothing leaves this machine.", "Leave it out."),
    moderation=((), "no moderation model runs here.", "Leave it out, or screen the texts yourself."),
    service_tier=(("auto", "default"), "one service tier here.", "Leave it out or send 'auto'."),
)

Stop = str | list[str] | None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool | None = Field(None, description="Send one more chunk, with `usage`, before [DONE].")
    include_obfuscation: bool | None = Field(None, description="Accepted; chunks carry no obfuscation padding.")


class _Generation(OpenAIBody):
    model: str = Field(..., max_length=300)
    temperature: float | None = Field(None, ge=0, le=2, description="Default 0 (deterministic), not OpenAI's 1.")
    top_p: float | None = Field(None, gt=0, le=1)
    stop: Stop = Field(None, description="Up to 4 sequences")
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    n: int | None = Field(None, ge=1, le=128, description="Only 1 is supported")
    user: str | None = Field(None, max_length=256)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None

    def stops(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        if len(stops) > 4:
            raise OpenAIError(400, f"{len(stops)} stop sequences; at most 4.", param="stop", code="invalid_value",
                              fix="Send up to 4.")
        return stops

    def sampling(self) -> dict:
        """The options the generator takes."""
        return dict(temperature=self.temperature or 0.0, seed=self.seed or 0, stop=self.stops(), top_p=self.top_p,
                    frequency_penalty=self.frequency_penalty or 0.0, presence_penalty=self.presence_penalty or 0.0)


class ChatRequest(_Generation):
    messages: list[dict[str, Any]] = Field(..., min_length=1, max_length=1000,
                                           description="OpenAI's messages: system, developer, user, assistant; "
                                                       "content a string or text parts.")
    max_tokens: int | None = Field(None, ge=1, le=CHAT_MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=CHAT_MAX_TOKENS)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = Field(None, description="Accepted; no tools are called.")
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = Field(None, description="Accepted; it changes no output.")
    store: bool | None = None
    metadata: dict[str, str] | None = Field(None, description="Accepted; nothing is stored.")
    reasoning_effort: str | None = None
    verbosity: str | None = None
    service_tier: str | None = None
    web_search_options: dict[str, Any] | None = None
    prompt_cache_key: str | None = Field(None, max_length=1024, description="Accepted.")
    prompt_cache_retention: str | None = Field(None, description="Accepted.")
    prompt_cache_options: dict[str, Any] | None = Field(None, description="Accepted.")
    moderation: dict[str, Any] | None = None
    safety_identifier: str | None = Field(None, max_length=256, description="Accepted.")

    UNSUPPORTED = CHAT_UNSUPPORTED

    def plain_messages(self) -> list[dict]:
        """``[{"role", "content"}]`` for the chat template: text parts joined, ``developer`` as ``system``."""
        out = []
        for i, m in enumerate(self.messages):
            out.append(_message(i, m))
        return out


def _message(i: int, m: dict) -> dict:
    where = f"messages[{i}]"
    role = m.get("role")
    if role not in ("system", "developer", "user", "assistant", "tool", "function"):
        raise OpenAIError(400, f"Invalid value for '{where}.role': {role!r}.", param=f"{where}.role",
                          code="invalid_value", fix="Use system, developer, user or assistant.")
    if role in ("tool", "function") or m.get("tool_calls") or m.get("function_call"):
        raise unsupported(f"{where}.role" if role in ("tool", "function") else f"{where}.tool_calls", *_NO_TOOLS)
    for key in m:
        if key not in ("role", "content", "name", "refusal", "tool_calls", "function_call"):
            if key == "audio" and m[key] is None:
                continue
            raise OpenAIError(400, f"Unrecognized request argument supplied: {where}.{key}", param=f"{where}.{key}",
                              fix="Leave it out.")
    content = m.get("content")
    if content is None:
        content = ""
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text" or not isinstance(part.get("text"), str):
                raise unsupported(f"{where}.content[{j}].type", f"{kind!r} parts are not understood; only text.",
                                  "Send text parts only (the local models here read text).")
            texts.append(part["text"])
        content = "\n".join(texts)
    if not isinstance(content, str):
        raise OpenAIError(400, f"Invalid value for '{where}.content': expected a string or a list of text parts.",
                          param=f"{where}.content", code="invalid_value", fix="Send the message's text as a string.")
    if len(content) > 1_000_000:
        raise OpenAIError(400, f"{where}.content is {len(content):,} characters; at most 1,000,000.",
                          param=f"{where}.content", code="string_above_max_length", fix="Send a shorter message.")
    return {"role": "system" if role == "developer" else role, "content": content}


class CompletionRequest(_Generation):
    prompt: str | list[str] | list[int] | list[list[int]] = Field(
        ..., description="A string (or a list of one string); token arrays are not supported.")
    max_tokens: int | None = Field(None, ge=1, le=CHAT_MAX_TOKENS, description="Default 16, as OpenAI's.")
    echo: bool | None = Field(None, description="Put the prompt before the completion.")
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1, le=20)
    logprobs: int | None = Field(None, ge=0, le=5)

    UNSUPPORTED = dict(
        _SAMPLING,
        suffix=((None, ""), "no insertion (suffix) mode.", "Leave it out."),
        best_of=((1,), "one candidate per request.", "Leave it out or send 1."),
    )

    def text(self) -> str:
        p = self.prompt
        if isinstance(p, list) and len(p) == 1 and isinstance(p[0], str):
            p = p[0]
        if not isinstance(p, str):
            raise unsupported("prompt", "one string per request; token arrays and lists of prompts are not "
                              "supported.", "Send the prompt as one string (repeat the request for more).")
        return p


class EmbeddingsRequest(OpenAIBody):
    model: str = Field(..., max_length=300)
    input: str | list[str] | list[int] | list[list[int]] = Field(
        ..., description="A string or a list of strings (token arrays are not supported).")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, le=65536, description="Accepted only when equal to the model's size.")
    user: str | None = Field(None, max_length=256)

    def texts(self) -> list[str]:
        texts = [self.input] if isinstance(self.input, str) else list(self.input)
        if not texts:
            raise OpenAIError(400, "input is an empty list.", param="input", code="invalid_value",
                              fix="Send a string or a non-empty list of strings.")
        if not all(isinstance(t, str) for t in texts):
            raise unsupported("input", "token arrays are not supported: each model here has its own tokenizer.",
                              "Send the texts as strings.")
        return texts
