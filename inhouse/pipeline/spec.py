"""The pipeline file: declarative steps, read into typed dataclasses, every mistake named by its line.

    name: contact-center-daily          # the run's name (runs of one name are compared to skip steps)
    dataset: tickets                    # the dataset every step works on (created by ingest)
    steps:
      - ingest: {path: "inbox/*.csv", text_col: text, time_col: created_at, id_col: ticket_id}
      - classify: {model: intents@production}
      - summarize: {by: prediction}
      - discover: {within: prediction}
      - trends: {by: prediction, every: day}
      - report: {out: report.html}
    drift: {abstain_rate: 0.10, confidence: 0.05, mix: {distance: js, threshold: 0.10}}  # optional

A file with a classify step also runs ``candidates`` (what the model turned
away, grouped into candidate new categories) before its report, unless it
names the step itself (``- candidates: {enabled: false}`` turns it off).
``drift`` (optional; these are the defaults, ``drift: false`` turns it off):
when a run that classifies is flagged for drift, see :mod:`inhouse.analysis.drift`.
Paths are relative to the file's folder. :func:`load_spec` checks everything
it can before any work: unknown steps and keys, wrong types, a glob that
matches nothing; the runner then checks model references.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> spec = load_spec("examples/contact-center-daily.yaml")
    >>> [s.kind for s in spec.steps]
    ['ingest', 'classify', 'embed', 'summarize', 'discover', 'trends', 'candidates', 'report']
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.drift import DriftThresholds, thresholds_from
from ..errors import InputError, MissingDependency, UsageError

# step -> {key: (type, default)}; a default of ... marks a required key
STEPS: dict[str, dict[str, tuple[type | tuple, Any]]] = {
    "ingest": {"path": (str, ...), "text_col": (str, "text"), "time_col": (str, None), "id_col": (str, None),
               "label_col": (str, None), "split_col": (str, None), "redact_pii": (bool, False),
               "encoding": (str, "utf-8")},
    "classify": {"model": (str, ...), "top_k": (int, 3), "engine": (str, "local"), "ray_address": (str, None),
                 "workers": (int, 2), "chunk_rows": (int, 16_384), "output": (str, "predictions.parquet"),
                 "cascade": (bool, True)},
    "embed": {"model": (str, "minilm-l6")},
    "summarize": {"by": (str, "prediction"), "n_docs": (int, 5), "llm": (str, None)},
    "discover": {"within": (str, "prediction"), "min_topic_size": (int, 10), "seed": (int, 0),
                 "n_topics": (int, None), "llm": (str, None), "model": (str, "minilm-l6")},
    "trends": {"by": (str, "prediction"), "every": (str, "week"), "recent": (int, None), "alpha": ((int, float), 0.05),
               "min_ratio": ((int, float), 1.25), "recent_from": (str, None), "until": (str, None)},
    "report": {"out": (str, "report.html"), "title": (str, None)},
    # what the model turned away, grouped into candidate new categories; added after classify when not given
    "candidates": {"enabled": (bool, True), "min_topic_size": (int, 10), "seed": (int, 0), "n_topics": (int, None),
                   "llm": (str, None), "model": (str, "minilm-l6"), "every": (str, None),
                   "output": (str, "candidates.parquet"), "merge": ((int, float), 0.75)},
}
IMPLIED = {"candidates": "classify"}  # a step every file with the other one runs (before report), unless it names it
TOP_KEYS = {"name", "dataset", "steps", "description", "drift"}
BUILTIN_STEPS = tuple(STEPS)  # run by inhouse.pipeline.steps.step_<kind>
_RUNNERS: dict[str, Callable] = {}  # registered steps beyond the built-ins


def register_step(kind: str, options: dict[str, tuple[type | tuple, Any]]):
    """Decorator: a pipeline step ``kind`` whose options are ``{key: (type, default)}`` (``...``: required),
    run as ``fn(run, step, meter) -> (result dict, rows processed, output paths)`` like the built-ins.

    >>> @register_step("count", {"limit": (int, 10)})
    ... def count(run, step, meter):
    ...     return {"limit": step.options["limit"]}, 0, []
    >>> "count" in step_kinds()
    True
    >>> unregister_step("count")
    """
    if kind in STEPS:
        raise UsageError(f"pipeline step {kind!r} is already registered.")

    def add(fn: Callable) -> Callable:
        STEPS[kind] = dict(options)
        _RUNNERS[kind] = fn
        return fn

    return add


def unregister_step(kind: str) -> None:
    if kind in _RUNNERS:
        del _RUNNERS[kind], STEPS[kind]


def step_kinds() -> list[str]:
    return list(STEPS)


def step_runner(kind: str, builtins) -> Callable:
    """What runs a step of ``kind``: its registered function, or ``builtins.step_<kind>``."""
    return _RUNNERS.get(kind) or getattr(builtins, f"step_{kind}")


@dataclass
class Step:
    """One step: its kind, its options (defaults filled in) and the line it starts on."""

    kind: str
    options: dict[str, Any]
    line: int
    index: int

    @property
    def name(self) -> str:
        return self.kind if self.index == 0 else f"{self.kind}"

    def where(self, spec: "PipelineSpec") -> str:
        return f"{spec.path.name}:{self.line}"


@dataclass
class PipelineSpec:
    name: str
    dataset: str
    steps: list[Step]
    path: Path
    folder: Path
    lines: dict[str, int] = field(default_factory=dict)
    text: str = ""
    drift: DriftThresholds = field(default_factory=DriftThresholds)

    def resolve(self, p: str) -> Path:
        """A path of the file, relative to the file's folder."""
        q = Path(p).expanduser()
        return q if q.is_absolute() else self.folder / q

    def find(self, kind: str) -> Step | None:
        return next((s for s in self.steps if s.kind == kind), None)


def _fail(path: Path, line: int, msg: str, fix: str | None = None, cls=UsageError):
    raise cls(f"{path.name}:{line}: {msg}", fix=fix)


def _scalar(node):
    import yaml

    if isinstance(node, yaml.ScalarNode):
        return yaml.safe_load(yaml.serialize(node)) if node.tag != "tag:yaml.org,2002:str" else node.value
    return yaml.safe_load(yaml.serialize(node))


def load_spec(path: str | Path, *, folder: str | Path | None = None, require_files: bool = True) -> PipelineSpec:
    """Read and check a pipeline file; every error names the file and line.

    ``folder``: where its relative paths resolve (default: the file's folder; a schedule's copy of a file
    resolves in the original's). ``require_files=False``: an ingest glob matching nothing yet is no error
    (an inbox a schedule watches may be empty when it is scheduled).
    """
    try:
        import yaml
    except ImportError as e:  # pragma: no cover - PyYAML comes with the default install
        raise MissingDependency("yaml", "pipeline", "Reading a pipeline file") from e
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such pipeline file.", fix="Check the path, e.g. examples/contact-center-daily.yaml")
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        _fail(path, (mark.line + 1) if mark else 1, f"not valid YAML: {getattr(e, 'problem', e)}")
    if root is None or not isinstance(root, yaml.MappingNode):
        _fail(path, 1, "expected a mapping with name, dataset and steps.")
    top: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for k, v in root.value:
        key = k.value
        if key not in TOP_KEYS:
            _fail(path, k.start_mark.line + 1, f"unknown key {key!r}; the file's keys are {sorted(TOP_KEYS)}.")
        top[key], lines[key] = v, k.start_mark.line + 1
    for key in ("name", "dataset", "steps"):
        if key not in top:
            _fail(path, 1, f"missing {key!r}.", fix="See examples/contact-center-daily.yaml")
    name, dataset = _scalar(top["name"]), _scalar(top["dataset"])
    for key, value in (("name", name), ("dataset", dataset)):
        if not isinstance(value, str) or not value.strip():
            _fail(path, lines[key], f"{key!r} must be a non-empty string, found {value!r}.")
    if not isinstance(top["steps"], yaml.SequenceNode) or not top["steps"].value:
        _fail(path, lines["steps"], "'steps' must be a list of steps.", fix="e.g. steps:\n  - classify: {model: intents}")
    base = Path(folder).resolve() if folder is not None else path.resolve().parent
    spec = PipelineSpec(name, dataset, [], path.resolve(), base, lines, text)
    for i, node in enumerate(top["steps"].value):
        spec.steps.append(_step(path, node, i))
    _imply(spec)
    if "drift" in top:
        try:
            spec.drift = thresholds_from(_scalar(top["drift"]))
        except UsageError as e:
            _fail(path, lines["drift"], e.message, fix=e.fix or "e.g. drift: {abstain_rate: 0.10, confidence: 0.05, "
                                                                  "mix: {distance: js, threshold: 0.10}}")
    _check(spec, require_files)
    return spec


def _step(path: Path, node, index: int) -> Step:
    import yaml

    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode) and node.value in STEPS:
        kind, opts_node = node.value, None
    elif isinstance(node, yaml.MappingNode) and len(node.value) == 1:
        k, opts_node = node.value[0]
        kind = k.value
    else:
        _fail(path, line, "each step is one mapping 'kind: {options}'.", fix="e.g. - classify: {model: intents}")
    if kind not in STEPS:
        _fail(path, line, f"unknown step {kind!r}; steps are {list(STEPS)}.")
    schema = STEPS[kind]
    given: dict[str, Any] = {}
    if opts_node is not None and not (isinstance(opts_node, yaml.ScalarNode) and opts_node.value in ("", "~", "null")):
        if not isinstance(opts_node, yaml.MappingNode):
            _fail(path, line, f"the options of {kind!r} must be a mapping, e.g. {{{next(iter(schema))}: ...}}.")
        for k, v in opts_node.value:
            kline = k.start_mark.line + 1
            if k.value not in schema:
                _fail(path, kline, f"unknown key {k.value!r} in step {kind!r}; its keys are {list(schema)}.")
            value = _scalar(v)
            typ = schema[k.value][0]
            if typ is str and isinstance(value, dt.date):  # recent_from: 2026-03-01 (YAML reads a date)
                value = value.isoformat()
            if value is not None and (not isinstance(value, typ) or (typ is int and isinstance(value, bool))):
                want = typ.__name__ if isinstance(typ, type) else "a number"
                _fail(path, kline, f"{kind}.{k.value} must be {want}, found {value!r}.")
            given[k.value] = value
    opts = {}
    for key, (_, default) in schema.items():
        if key in given:
            opts[key] = given[key]
        elif default is ...:
            _fail(path, line, f"step {kind!r} needs {key!r}.")
        else:
            opts[key] = default
    return Step(kind, opts, line, index)


def _imply(spec: PipelineSpec) -> None:
    """Add the steps a file's steps imply (a classify step implies candidates), before its report."""
    kinds = [s.kind for s in spec.steps]
    for kind, after in IMPLIED.items():
        if after in kinds and kind not in kinds:
            at = kinds.index("report") if "report" in kinds else len(kinds)
            line = spec.steps[kinds.index(after)].line
            spec.steps.insert(at, Step(kind, {k: d for k, (_, d) in STEPS[kind].items()}, line, at))
            kinds.insert(at, kind)
    for i, s in enumerate(spec.steps):
        s.index = i


def ingest_matches(spec: PipelineSpec, step: Step) -> list[Path]:
    """The files an ingest step's path matches now."""
    p = step.options["path"]
    matches = sorted(spec.folder.glob(p)) if not Path(p).is_absolute() else sorted(Path("/").glob(p.lstrip("/")))
    return [m for m in matches if m.is_file()]


def _check(spec: PipelineSpec, require_files: bool = True) -> None:
    kinds = [s.kind for s in spec.steps]
    for s in spec.steps:
        if kinds.count(s.kind) > 1:
            _fail(spec.path, s.line, f"step {s.kind!r} appears {kinds.count(s.kind)} times; give it once.")
        if s.kind == "ingest" and require_files:
            if not ingest_matches(spec, s):
                _fail(spec.path, s.line, f"ingest.path {s.options['path']!r} matches no file under {spec.folder}.",
                      fix="Paths are relative to the pipeline file's folder.", cls=InputError)
        if s.kind == "classify" and s.options["engine"] not in ("local", "ray"):
            _fail(spec.path, s.line, f"classify.engine must be 'local' or 'ray', found {s.options['engine']!r}.")
        if s.kind == "trends" and s.options["every"] not in ("day", "week", "month"):
            _fail(spec.path, s.line, f"trends.every must be day, week or month, found {s.options['every']!r}.")
        for key in ("recent_from", "until") if s.kind == "trends" else ():
            if s.options[key] is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", s.options[key]):
                _fail(spec.path, s.line, f"trends.{key} must be a date YYYY-MM-DD, found {s.options[key]!r}.")
        if s.kind in ("summarize", "discover", "trends"):
            col = s.options.get("by") or s.options.get("within")
            if col and col.split(":")[0] == "prediction" and ":" not in col and "classify" not in kinds[:s.index]:
                _fail(spec.path, s.line, f"{s.kind} uses 'prediction' but no classify step comes before it.",
                      fix="Add - classify: {model: NAME@ALIAS} before it, or name a version: prediction:NAME@N")
        if s.kind == "candidates" and "classify" not in kinds[:s.index]:
            _fail(spec.path, s.line, "candidates groups what classify turned away, but no classify step comes before it.",
                  fix="Add - classify: {model: NAME@ALIAS} before it.")
        if s.kind == "candidates" and s.options["every"] not in (None, "day", "week", "month"):
            _fail(spec.path, s.line, f"candidates.every must be day, week or month, found {s.options['every']!r}.")
        if s.kind == "candidates" and not s.options["output"].lower().endswith((".parquet", ".csv")):
            _fail(spec.path, s.line, f"candidates.output must end in .parquet or .csv, found {s.options['output']!r}.")
        if s.kind == "report" and not s.options["out"].lower().endswith((".html", ".htm")):
            _fail(spec.path, s.line, f"report.out must end in .html, found {s.options['out']!r}.")
