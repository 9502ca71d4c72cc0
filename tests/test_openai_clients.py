"""/v1 checked with clients nobody here wrote: the ``openai`` package and simonw's ``llm`` CLI, against a live server.

One module-scoped ``inhouse serve`` on a fresh workspace (the catalog's
minilm-l6 and smollm2-135m, nothing trained) and a viewer's token.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from serverkit import Server, create_token

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    home = tmp_path_factory.mktemp("openai-ws")
    token = create_token(home, "client-user", "viewer")
    server = Server(home)
    try:
        yield server, token
    finally:
        server.stop()


def test_openai_package_models_embeddings_chat_completions_and_errors(live):
    import openai
    from openai import OpenAI

    server, token = live
    client = OpenAI(base_url=server.url + "/v1", api_key=token, max_retries=0, timeout=120)
    assert {"minilm-l6", "smollm2-135m"} <= {m.id for m in client.models.list().data}
    assert client.models.retrieve("smollm2-135m").id == "smollm2-135m"
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("no-such-model")
    assert "does not exist here" in e.value.message and "GET /v1/models" in e.value.message
    assert e.value.code == "model_not_found"

    emb = client.embeddings.create(model="minilm-l6", input=["where is my card", "exchange rate"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 384
    assert emb.usage.prompt_tokens >= 10  # the encoder's tokens (6 words)

    chat = client.chat.completions.create(model="smollm2-135m", max_completion_tokens=12, seed=3, user="u1",
                                          stop=["\n\n"], n=1, messages=[{"role": "system", "content": "Be brief."},
                                                                        {"role": "user", "content": "Say hello."}])
    assert chat.choices[0].message.content.strip() and chat.usage.completion_tokens <= 12
    assert chat.usage.prompt_tokens > 5 and chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens

    chunks = list(client.chat.completions.create(
        model="smollm2-135m", max_tokens=10, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
                  {"role": "user", "content": "Count to three."}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    assert all(c.usage is None for c in chunks[:-1])
    final = chunks[-1]
    assert final.choices == [] and 0 < final.usage.completion_tokens <= 10 and final.usage.prompt_tokens > 5

    done = client.completions.create(model="smollm2-135m", prompt="The capital of France is", max_tokens=6)
    assert done.choices[0].text.strip() and done.usage.completion_tokens <= 6 and done.usage.prompt_tokens == 5
    streamed = list(client.completions.create(model="smollm2-135m", prompt="One, two,", max_tokens=5, stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices).strip()

    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert "The model 'nope' does not exist here" in e.value.message and "smollm2-135m" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:  # a valid OpenAI request we cannot honour: 400 naming it
        client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "hi"}],
                                       tools=[{"type": "function", "function": {"name": "f"}}])
    assert e.value.body["param"] == "tools" and "tools" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "hi"}], n=2)
    assert e.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError) as e:  # not in OpenAI's schema at all: its own words
        client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"bogus": 1})
    assert "Unrecognized request argument supplied: bogus" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="minilm-l6", input=[[1, 2, 3]])
    assert e.value.body["param"] == "input"
    with pytest.raises(openai.AuthenticationError) as e:
        OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0).models.list()
    assert "unknown or revoked" in e.value.message and e.value.code == "invalid_api_key"


def test_every_v1_error_is_openais_object(live):
    server, token = live
    with server.client(token) as c:
        for r in (c.get("/v1/no-such-route"), c.post("/v1/chat/completions", content=b"{not json"),
                  c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}),
                  c.post("/v1/embeddings", json={"model": "minilm-l6", "input": "x", "dimensions": 3}),
                  server.client().get("/v1/models")):
            err = r.json()["error"]
            assert r.status_code in (400, 401, 404) and set(err) == {"message", "type", "param", "code"}, r.text
            assert err["message"] and err["type"], r.text
        assert c.post("/v1/chat/completions", json={"messages": []}).status_code == 400  # never a 422
        assert c.get("/health").json()["status"] == "ok"  # outside /v1 nothing changed:
        assert c.get("/no-such-route").json()["error"] == "not_found"


def test_llm_cli_streams_a_chat_answer_from_inhouse_serve(live, tmp_path):
    server, token = live
    exe = shutil.which("llm", path=str(Path(sys.executable).parent))
    assert exe, "the llm CLI is in requirements-dev.txt"
    (tmp_path / "extra-openai-models.yaml").write_text(
        f"- model_id: inhouse-smol\n  model_name: smollm2-135m\n  api_base: {server.url}/v1\n"
        "  api_key_name: inhouse\n")
    (tmp_path / "keys.json").write_text(json.dumps({"inhouse": token}))
    env = dict(os.environ, LLM_USER_PATH=str(tmp_path))
    r = subprocess.run([exe, "-m", "inhouse-smol", "-o", "max_tokens", "16", "Say hi"], env=env,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), r.stderr
    logged = subprocess.run([exe, "logs", "-n", "1", "--json"], env=env, capture_output=True, text=True, timeout=60)
    entry = json.loads(logged.stdout)[0]
    assert entry["response"].strip() == r.stdout.strip() and entry["input_tokens"] > 0 and entry["output_tokens"] > 0
    raw = entry["response_json"] if isinstance(entry["response_json"], dict) else json.loads(entry["response_json"])
    assert "choices" not in raw and raw["content"], raw  # llm's record of a streamed answer (chunks combined)


def test_a_stalled_stream_reader_does_not_block_other_chats(live):
    server, token = live
    body = json.dumps({"model": "smollm2-135m", "stream": True, "max_tokens": 300, "temperature": 1.0, "seed": 1,
                       "messages": [{"role": "user", "content": "Write a long story about a dragon."}]}).encode()
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # fills at once: the server's send must wait
    stalled.connect(("127.0.0.1", server.port))
    stalled.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    try:
        time.sleep(1.0)  # it streams; we read nothing
        start = time.monotonic()
        with server.client(token, timeout=90) as c:
            r = c.post("/v1/chat/completions", json={"model": "smollm2-135m", "max_tokens": 8,
                                                     "messages": [{"role": "user", "content": "Say hi."}]})
        took = time.monotonic() - start
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"].strip()
        assert took < 60, f"a second chat waited {took:.1f}s behind a stalled reader"
    finally:
        stalled.close()


def test_generator_stream_frees_the_model_while_its_reader_waits(ws):
    from inhouse.models.generators import load_generator

    gen = load_generator(ws, "smollm2-135m")
    stream = gen.chat([{"role": "user", "content": "Tell me a story."}], max_tokens=48, stream=True)
    first = next(stream)  # the reader takes one chunk, then stalls
    assert first["choices"]
    result: list = []
    t = threading.Thread(target=lambda: result.append(gen.chat([{"role": "user", "content": "Hi"}], max_tokens=4)))
    t.start()
    t.join(60)
    assert result and result[0]["choices"][0]["message"]["content"] is not None, "the stalled stream held the model"
    rest = list(stream)  # what the worker made meanwhile is still there, with usage on the last chunk
    assert rest and rest[-1]["usage"]["completion_tokens"] > 0
    stream.close()
