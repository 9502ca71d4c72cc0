"""The public API: every name in __all__ exists, and importing stays light."""

import subprocess
import sys

import inhouse


def test_every_public_name_resolves():
    missing = [n for n in inhouse.__all__ if getattr(inhouse, n, None) is None]
    assert missing == []


def test_import_does_not_load_torch():
    code = "import sys, inhouse; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_cli_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "inhouse", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    for cmd in ("init", "ingest", "datasets", "models", "embed", "demo"):
        assert cmd in out.stdout


def test_stage_names_mean_the_module_before_and_after_import():
    import importlib

    first = inhouse.ingest
    importlib.import_module("inhouse.data.ingest")
    assert first is inhouse.ingest and callable(inhouse.ingest.ingest)
