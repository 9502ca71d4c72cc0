"""Docstring examples either run as written or say they are illustrative.

Every example in the package's docstrings is run with doctest, unless its
docstring says ``Illustrative`` (the examples that need a workspace with data,
such as ``ingest(ws, "banking77.csv", ...)``). An example that is not marked
and does not give the output it shows fails here, so the docs cannot drift
from the code.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import inhouse

MARK = "Illustrative"


def _doctests():
    finder = doctest.DocTestFinder(exclude_empty=True)
    seen: set[str] = set()
    for info in pkgutil.walk_packages(inhouse.__path__, "inhouse."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for test in finder.find(module, info.name, globs=dict(vars(module))):
            if test.examples and test.name not in seen:
                seen.add(test.name)
                yield test


TESTS = list(_doctests())
RUNNABLE = [t for t in TESTS if MARK not in (t.docstring or "")]


def test_most_docstring_examples_run():
    assert len(RUNNABLE) >= 20, f"only {len(RUNNABLE)} of {len(TESTS)} docstrings with examples run"


@pytest.mark.parametrize("test", RUNNABLE, ids=lambda t: t.name)
def test_docstring_example_runs_as_written(test, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    result = runner.run(test, out=report.append)
    assert result.failed == 0, (f"{test.name} ({test.filename}:{test.lineno}) shows output it does not give; "
                                f"fix the example, or mark the docstring '{MARK}' if it needs a workspace:\n"
                                + "".join(report))
