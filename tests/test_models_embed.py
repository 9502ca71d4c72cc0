"""Catalog models load from their installed packages and embed real text."""

import numpy as np
import pytest

from inhouse.errors import InputError, NotFound, UsageError
from inhouse.models.embeddings import EmbeddingCache, embed_texts
from inhouse.models.encoders import load_encoder
from inhouse.models.generators import load_generator
from inhouse.models import catalog as models

TEXTS = ["I lost my card yesterday", "my card was stolen", "how do I change my address", "I lost my card yesterday"]


def test_catalog_lists_the_three_offline_models(ws):
    found = {m.name: m for m in models.list_models(ws)}
    assert {"minilm-l6", "wordllama", "smollm2-135m"} <= set(found)
    assert found["minilm-l6"].kind == "sentence-transformers"
    assert found["smollm2-135m"].path.endswith(".gguf")
    for m in found.values():
        assert len(m.sha256) == 64 and m.size > 1_000_000


@pytest.mark.parametrize("name,dim", [("minilm-l6", 384), ("wordllama", 256)])
def test_catalog_encoders_embed_real_text_and_cache(ws, name, dim):
    enc = load_encoder(ws, name)
    stats = {}
    vecs = embed_texts(ws, enc, TEXTS, stats=stats)
    assert vecs.shape == (4, dim)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert stats == {"computed": 3, "reused": 0}
    sims = vecs @ vecs.T
    assert sims[0, 1] > sims[0, 2]  # lost card is nearer to stolen card than to an address change
    assert np.allclose(vecs[0], vecs[3])
    again = {}
    assert np.allclose(embed_texts(ws, enc, TEXTS[:2], stats=again), vecs[:2], atol=1e-6)
    assert again == {"computed": 0, "reused": 2}
    assert len(EmbeddingCache(ws, enc.sha256).parts()) == 1


def test_smollm2_generates_text_locally(ws):
    gen = load_generator(ws, "smollm2-135m")
    out = gen.generate("Say hello in one word.", max_tokens=8)
    assert isinstance(out, str) and out.strip()
    assert gen.generate("Say hello in one word.", max_tokens=8) == out  # greedy: deterministic


def test_user_model_folder_is_registered_by_hash(ws, tmp_path):
    src = models.get_model(ws, "minilm-l6")
    m = models.add_model(ws, "my-minilm", src.path, license="Apache-2.0")
    assert m.kind == "sentence-transformers" and m.sha256 == src.sha256
    enc = load_encoder(ws, "my-minilm")
    assert enc.encode(["hello"]).shape == (1, 384)
    assert "my-minilm" in [x.name for x in models.list_models(ws)]


def test_bad_model_paths_and_names_are_explained(ws, tmp_path):
    junk = tmp_path / "weights.bin"
    junk.write_bytes(b"x")
    with pytest.raises(InputError, match="expected a .gguf or .onnx file"):
        models.add_model(ws, "junk", junk)
    with pytest.raises(InputError, match="not a model folder"):
        models.add_model(ws, "empty", tmp_path)
    with pytest.raises(UsageError, match="built-in"):
        models.add_model(ws, "minilm-l6", tmp_path)
    with pytest.raises(NotFound, match="models add"):
        models.get_model(ws, "nope")
    with pytest.raises(UsageError, match="cannot embed text"):
        load_encoder(ws, "smollm2-135m")
