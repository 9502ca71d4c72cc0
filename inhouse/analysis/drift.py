"""Drift: is the production model still seeing what it was built for? One record per pipeline run.

For the documents a run of a pipeline brought in (its *window*: doc ids from
where the previous run of the same pipeline stopped), three numbers of the
pinned model version's answers are profiled:

- **abstain rate**: the share answered ``other`` (the version abstained);
- **mean confidence**: the mean best in-scope probability (``score``);
- **category mix**: the shares of the labels it answered (``other`` left out,
  the abstain rate covers it).

Each is compared against (a) the version's own evaluation (the newest recorded
``inhouse eval`` with a profile, preferring a test split of its training
dataset; else the validation profile in its manifest) and (b) the previous runs
of the same pipeline with the same version, pooled (the last ``history``). A
metric is flagged when it moved by at least its threshold **and** the move is
significant at ``alpha`` (two-proportion z-test for the abstain rate, Welch's
t-test for the mean confidence, chi-square test of homogeneity for the mix), so
a small run does not cry wolf; windows under ``min_documents`` are not judged.

Thresholds come from the pipeline file's ``drift:`` key (:class:`DriftThresholds`):

    drift: {abstain_rate: 0.10, confidence: 0.05, mix: {distance: js, threshold: 0.10}, alpha: 0.01}

    >>> a = Profile(n=400, abstained=20, conf_sum=0.8 * 400, conf_sumsq=0.65 * 400, counts={"x": 300, "y": 80})
    >>> b = Profile(n=400, abstained=200, conf_sum=0.5 * 400, conf_sumsq=0.3 * 400, counts={"x": 50, "y": 150})
    >>> c = compare(b, a, DriftThresholds())
    >>> c["flagged"], sorted(k for k, m in c["metrics"].items() if m["flagged"])
    (True, ['abstain_rate', 'confidence', 'mix'])
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

from ..errors import UsageError
from ..workspace.store import Workspace

EXIT_CODE = 10  # `inhouse pipeline run --fail-on-drift` exits with it when the run's drift is flagged
DISTANCES = ("js", "tv")
RECORD_VERSION = 1


@dataclass(frozen=True)
class DriftThresholds:
    """When a run's drift is flagged; the pipeline file's ``drift:`` key, defaults as here.

    ``abstain_rate`` and ``confidence`` are absolute changes (0.10 = ten points
    of share; 0.05 of mean probability); ``mix`` a distance between the
    category mixes: ``js`` the Jensen–Shannon divergence in bits, ``tv`` the
    total variation distance (both 0..1). ``alpha``: the significance level of
    each test. ``history``: how many previous runs (same pipeline and version)
    are pooled. ``enabled: false`` (or ``drift: false``) turns it off.
    """

    abstain_rate: float = 0.10
    confidence: float = 0.05
    mix: float = 0.10
    distance: str = "js"
    alpha: float = 0.01
    min_documents: int = 30
    history: int = 5
    enabled: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def thresholds_from(value, where: str = "drift") -> DriftThresholds:
    """The thresholds of a pipeline file's ``drift:`` value (a mapping, ``false``/``true`` or absent).

    ``mix`` may be a number (the threshold, distance ``js``) or ``{distance, threshold}``.

    >>> thresholds_from({"abstain_rate": 0.2, "mix": {"distance": "tv", "threshold": 0.15}}).distance
    'tv'
    >>> thresholds_from(False).enabled
    False
    """
    if value is None or value is True:
        return DriftThresholds()
    if value is False:
        return DriftThresholds(enabled=False)
    if not isinstance(value, dict):
        raise UsageError(f"{where} must be a mapping, e.g. {{abstain_rate: 0.10, confidence: 0.05, mix: 0.10}}, "
                         f"or false; found {value!r}.")
    value = dict(value)
    mix = value.get("mix")
    if isinstance(mix, dict):
        unknown = set(mix) - {"distance", "threshold"}
        if unknown:
            raise UsageError(f"{where}.mix has unknown key(s) {sorted(unknown)}; its keys are distance and threshold.")
        value["mix"] = mix.get("threshold", DriftThresholds.mix)
        value.setdefault("distance", mix.get("distance", "js"))
    known = {f.name: f.type for f in fields(DriftThresholds)}
    for k, v in value.items():
        if k not in known:
            raise UsageError(f"unknown key {k!r} in {where}; its keys are {list(known)}.")
        kind = {"distance": str, "enabled": bool, "min_documents": int, "history": int}.get(k, float)
        ok = isinstance(v, kind) if kind in (str, bool) else (isinstance(v, (int, float) if kind is float else int)
                                                             and not isinstance(v, bool))
        if not ok:
            raise UsageError(f"{where}.{k} must be {'a number' if kind is float else kind.__name__}, found {v!r}.")
    t = DriftThresholds(**value)
    if t.distance not in DISTANCES:
        raise UsageError(f"{where}.mix distance must be one of {list(DISTANCES)}, found {t.distance!r}.",
                         fix="js: Jensen–Shannon divergence (bits); tv: total variation distance.")
    for k in ("abstain_rate", "confidence", "mix"):
        if not 0 <= getattr(t, k) <= 1:
            raise UsageError(f"{where}.{k} must be between 0 and 1, found {getattr(t, k)!r}.")
    if not 0 < t.alpha < 1 or t.min_documents < 1 or t.history < 1:
        raise UsageError(f"{where}: alpha must be in (0, 1), min_documents and history at least 1.")
    return DriftThresholds(**{**t.to_dict(), **{k: float(getattr(t, k)) for k in ("abstain_rate", "confidence",
                                                                                   "mix", "alpha")}})


@dataclass
class Profile:
    """What a model answered on some documents, as sums (so profiles of several runs add up).

    ``counts``: answered labels (``other`` left out); ``conf_sum``/``conf_sumsq``
    of the best in-scope probability, None when unknown (an old evaluation).
    """

    n: int
    abstained: int
    conf_sum: float | None = None
    conf_sumsq: float | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def abstain_rate(self) -> float | None:
        return self.abstained / self.n if self.n else None

    @property
    def mean_confidence(self) -> float | None:
        return self.conf_sum / self.n if self.n and self.conf_sum is not None else None

    @property
    def confidence_sd(self) -> float | None:
        if self.n < 2 or self.conf_sum is None or self.conf_sumsq is None:
            return None
        return math.sqrt(max(self.conf_sumsq - self.conf_sum ** 2 / self.n, 0.0) / (self.n - 1))

    def mix(self) -> dict[str, float]:
        total = sum(self.counts.values())
        return {k: v / total for k, v in sorted(self.counts.items())} if total else {}

    def __add__(self, o: "Profile") -> "Profile":
        conf = None if self.conf_sum is None or o.conf_sum is None else self.conf_sum + o.conf_sum
        sq = None if self.conf_sumsq is None or o.conf_sumsq is None else self.conf_sumsq + o.conf_sumsq
        counts = dict(self.counts)
        for k, v in o.counts.items():
            counts[k] = counts.get(k, 0) + v
        return Profile(self.n + o.n, self.abstained + o.abstained, conf, sq, counts)

    def to_dict(self) -> dict:
        sd = self.confidence_sd
        return {**asdict(self), "abstain_rate": _r(self.abstain_rate), "mean_confidence": _r(self.mean_confidence),
                "confidence_sd": _r(sd), "mix": {k: _r(v) for k, v in self.mix().items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "Profile":
        return cls(int(d["n"]), int(d["abstained"]), d.get("conf_sum"), d.get("conf_sumsq"),
                   {str(k): int(v) for k, v in (d.get("counts") or {}).items()})

    @classmethod
    def of(cls, labels: list[str], abstained, confidence) -> "Profile":
        """From per-document answers: labels, abstained flags and best in-scope probabilities."""
        import numpy as np

        conf = np.asarray(confidence, dtype=np.float64)
        counts: dict[str, int] = {}
        for lab, ab in zip(labels, abstained):
            if not ab:
                counts[lab] = counts.get(lab, 0) + 1
        return cls(len(conf), int(np.sum(np.asarray(abstained, dtype=bool))), float(conf.sum()),
                   float((conf ** 2).sum()), counts)


def _r(v: float | None, digits: int = 4) -> float | None:
    return None if v is None else round(float(v), digits)


# ------------------------------------------------------------ statistics ----

def distance(p: dict[str, float], q: dict[str, float], kind: str = "js") -> float:
    """Jensen–Shannon divergence in bits (``js``) or total variation (``tv``) of two label mixes; 0..1.

    >>> distance({"a": 1.0}, {"b": 1.0}), distance({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}, "tv")
    (1.0, 0.0)
    """
    keys = sorted(set(p) | set(q))
    a, b = [p.get(k, 0.0) for k in keys], [q.get(k, 0.0) for k in keys]
    if kind == "tv":
        return round(0.5 * sum(abs(x - y) for x, y in zip(a, b)), 6)

    def kl(x, m):
        return sum(xi * math.log2(xi / mi) for xi, mi in zip(x, m) if xi > 0)

    m = [(x + y) / 2 for x, y in zip(a, b)]
    return round(min(max(0.5 * kl(a, m) + 0.5 * kl(b, m), 0.0), 1.0), 6)


def two_proportions(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of the two-proportion z-test (pooled)."""
    from scipy.stats import norm

    if not n1 or not n2:
        return 1.0
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    return float(2 * norm.sf(abs(k1 / n1 - k2 / n2) / se))


def welch(a: Profile, b: Profile) -> float:
    """Two-sided p-value of Welch's t-test on the mean confidences."""
    from scipy.stats import ttest_ind_from_stats

    sa, sb = a.confidence_sd, b.confidence_sd
    if sa is None or sb is None or (sa == 0 and sb == 0):
        return 1.0 if a.mean_confidence == b.mean_confidence else 0.0
    p = ttest_ind_from_stats(a.mean_confidence, sa, a.n, b.mean_confidence, sb, b.n, equal_var=False).pvalue
    return 1.0 if p != p else float(p)  # nan (degenerate) -> no evidence


def homogeneity(a: dict[str, int], b: dict[str, int]) -> float:
    """p-value of the chi-square test that two label counts come from one mix."""
    from scipy.stats import chi2_contingency

    keys = [k for k in sorted(set(a) | set(b)) if a.get(k, 0) + b.get(k, 0) > 0]
    if len(keys) < 2 or not sum(a.values()) or not sum(b.values()):
        return 1.0
    table = [[a.get(k, 0) for k in keys], [b.get(k, 0) for k in keys]]
    return float(chi2_contingency(table, correction=False)[1])


def compare(window: Profile, base: Profile, t: DriftThresholds) -> dict:
    """The three metrics of ``window`` against ``base``: values, change, p-value, threshold, flagged."""
    out: dict[str, dict] = {}
    d = window.abstain_rate - base.abstain_rate
    p = two_proportions(window.abstained, window.n, base.abstained, base.n)
    out["abstain_rate"] = {"value": _r(window.abstain_rate), "baseline": _r(base.abstain_rate), "change": _r(d),
                           "p_value": _p(p), "threshold": t.abstain_rate,
                           "flagged": abs(d) >= t.abstain_rate and p < t.alpha}
    if window.mean_confidence is not None and base.mean_confidence is not None:
        d = window.mean_confidence - base.mean_confidence
        p = welch(window, base)
        out["confidence"] = {"value": _r(window.mean_confidence), "baseline": _r(base.mean_confidence),
                             "change": _r(d), "p_value": _p(p), "threshold": t.confidence,
                             "flagged": abs(d) >= t.confidence and p < t.alpha}
    else:
        out["confidence"] = {"value": _r(window.mean_confidence), "baseline": None, "flagged": False,
                             "note": "the baseline recorded no confidences (evaluate the version again)"}
    wm, bm = window.mix(), base.mix()
    if wm and bm:
        dist, p = distance(wm, bm, t.distance), homogeneity(window.counts, base.counts)
        movers = sorted(set(wm) | set(bm), key=lambda k: -abs(wm.get(k, 0) - bm.get(k, 0)))[:3]
        out["mix"] = {"distance": t.distance, "value": dist, "p_value": _p(p), "threshold": t.mix,
                      "flagged": dist >= t.mix and p < t.alpha,
                      "movers": [{"label": k, "share": _r(wm.get(k, 0.0)), "baseline": _r(bm.get(k, 0.0))}
                                 for k in movers]}
    else:
        out["mix"] = {"distance": t.distance, "value": None, "flagged": False, "note": "no answered documents"}
    for m in out.values():
        m["flagged"] = bool(m["flagged"])
    return {"documents": base.n, "metrics": out, "flagged": any(m["flagged"] for m in out.values())}


def _p(p: float) -> float:
    return float(f"{p:.3g}")


def reasons(against: str, c: dict) -> list[str]:
    """One sentence per flagged metric, e.g. ``abstain rate 61.0% against 9.8% on the evaluation (...)``."""
    out = []
    for name, m in c["metrics"].items():
        if not m["flagged"]:
            continue
        if name == "mix":
            moved = ", ".join(f"{x['label']} {x['baseline']:.0%}→{x['share']:.0%}" for x in m["movers"])
            out.append(f"category mix moved from {against}: {m['distance']} distance {m['value']:.3f} "
                       f"(threshold {m['threshold']}, p={m['p_value']:.2g}; {moved})")
        else:
            what, f = ("abstain rate", "{:.1%}") if name == "abstain_rate" else ("mean confidence", "{:.3f}")
            out.append(f"{what} {f.format(m['value'])} against {f.format(m['baseline'])} on {against} "
                       f"({m['change']:+.3f}, threshold {m['threshold']}, p={m['p_value']:.2g})")
    return out


# ------------------------------------------------------------- profiles ----

def window_profile(ws: Workspace, dataset: str, model: str, model_sha256: str, start: int, end: int) -> Profile:
    """The profile of a version's stored predictions for the documents ``start <= doc_id < end``."""
    import duckdb

    from ..data.predictions import PredictionSet

    pset = PredictionSet.open(ws, dataset, model, model_sha256)
    if not pset.parts():
        return Profile(0, 0, 0.0, 0.0, {})
    con = duckdb.connect()
    try:
        where = "WHERE doc_id >= ? AND doc_id < ? AND error IS NULL"
        src = pset.sql_source()
        n, ab, s, sq = con.execute(f"SELECT count(*), count(*) FILTER (WHERE abstained), coalesce(sum(score), 0), "
                                   f"coalesce(sum(score * score), 0) FROM {src} {where}", [start, end]).fetchone()
        counts = dict(con.execute(f"SELECT label, count(*) FROM {src} {where} AND NOT coalesce(abstained, false) "
                                  "AND label IS NOT NULL GROUP BY label", [start, end]).fetchall())
    finally:
        con.close()
    return Profile(int(n), int(ab), float(s), float(sq), {str(k): int(v) for k, v in counts.items()})


def _from_old_evaluation(m: dict, other: str) -> Profile | None:
    """An evaluation recorded before profiles: abstain rate from its abstain block, mix from its confusion matrix."""
    cm, ab = m.get("confusion_matrix") or {}, m.get("abstain") or {}
    if not cm.get("labels") or not m.get("n"):
        return None
    cols = [sum(row[j] for row in cm["matrix"]) for j in range(len(cm["labels"]))]
    counts = {l: int(c) for l, c in zip(cm["labels"], cols) if l != other and c}
    n = int(m["n"])
    return Profile(n, int(round((ab.get("abstain_rate") or 0.0) * n)), None, None, counts)


def evaluation_baseline(ws: Workspace, version) -> tuple[Profile | None, dict]:
    """The version's own profile: its newest evaluation (a test split of its training dataset first, one with a
    recorded profile before one without), else the validation profile in its manifest."""
    from .. import registry

    m = version.manifest or {}
    other = str((m.get("abstain") or {}).get("label") or "other")
    home = (m.get("dataset") or {}).get("name")
    evals = sorted(registry.evaluations(ws, version), reverse=True,
                   key=lambda e: ("profile" in e["metrics"], e["dataset"] == home, e["split"] == "test",
                                  e["created_at"]))
    for e in evals:
        prof = e["metrics"].get("profile")
        p = Profile.from_dict(prof) if prof else _from_old_evaluation(e["metrics"], other)
        if p is not None and p.n:
            return p, {"kind": "evaluation", "dataset": e["dataset"], "split": e["split"] or None,
                       "evaluated_at": e["created_at"], "label": f"evaluation on {e['dataset']}"
                       + (f":{e['split']}" if e["split"] else "")}
    if m.get("val_profile"):
        return Profile.from_dict(m["val_profile"]), {"kind": "validation", "dataset": home,
                                                     "label": f"validation rows of {home}"}
    return None, {"kind": None, "label": None,
                  "note": f"no evaluation is recorded for {version.ref}: run inhouse eval {version.ref} "
                          "--dataset D --split test"}


# ---------------------------------------------------------------- history ----

def previous_records(ws: Workspace, name: str, dataset: str, *, limit: int = 200) -> list[dict]:
    """Drift records of earlier runs of a pipeline (its name and dataset), newest first, with run id and time."""
    rows = ws.db.execute(
        "SELECT id, started_at, json_extract(result, '$.drift') FROM runs WHERE kind = 'pipeline' AND status = 'done' "
        "AND json_extract(result, '$.name') = ? AND json_extract(result, '$.dataset') = ? "
        "AND json_extract(result, '$.drift') IS NOT NULL ORDER BY id DESC LIMIT ?", (name, dataset, int(limit)))
    out = []
    for run_id, started, rec in rows:
        r = json.loads(rec)
        if isinstance(r, dict):
            out.append({**r, "run_id": run_id, "started_at": started})
    return out


def history(ws: Workspace, name: str, dataset: str, *, limit: int = 30) -> list[dict]:
    """The drift of a pipeline's runs, oldest first: what a chart over runs draws."""
    out = []
    for r in reversed(previous_records(ws, name, dataset, limit=limit)):
        p = r.get("profile") or {}
        ev = ((r.get("against") or {}).get("evaluation") or {}).get("metrics") or {}
        out.append({"run_id": r["run_id"], "started_at": r["started_at"], "model": r.get("model"),
                    "status": r.get("status"), "flagged": bool(r.get("flagged")),
                    "documents": (r.get("window") or {}).get("documents"),
                    "abstain_rate": p.get("abstain_rate"), "mean_confidence": p.get("mean_confidence"),
                    "mix_distance": (ev.get("mix") or {}).get("value"),
                    "evaluation_abstain_rate": (ev.get("abstain_rate") or {}).get("baseline"),
                    "evaluation_confidence": (ev.get("confidence") or {}).get("baseline")})
    return out


# ----------------------------------------------------------------- record ----

def run_drift(ws: Workspace, name: str, dataset: str, version, thresholds: DriftThresholds) -> dict:
    """The drift record of a pipeline run that classified ``dataset`` with ``version`` (already stored).

    Its window starts where the previous run of the pipeline stopped (the first
    run: every document) and ends at the dataset's next doc id.
    """
    m = version.manifest or {}
    base = {"version": RECORD_VERSION, "model": version.ref, "model_sha256": version.sha256,
            "thresholds": thresholds.to_dict(), "flagged": False, "reasons": []}
    if not thresholds.enabled:
        return {**base, "status": "off", "note": "drift is turned off in the pipeline file (drift: false)"}
    if m.get("multi_label"):
        return {**base, "status": "not_applicable", "note": "multi-label versions do not abstain; drift covers "
                                                            "single-label classifiers"}
    earlier = previous_records(ws, name, dataset)
    start = next((int(r["window"]["to_doc_id"]) for r in earlier if (r.get("window") or {}).get("to_doc_id")
                  is not None), 0)
    end = int(ws.dataset(dataset).next_doc_id)
    window = window_profile(ws, dataset, version.ref, version.sha256, start, end)
    rec = {**base, "window": {"from_doc_id": start, "to_doc_id": end, "documents": window.n,
                              "since_run": earlier[0]["run_id"] if earlier else None},
           "profile": window.to_dict(), "against": {}}
    if window.n == 0:
        return {**rec, "status": "no_new_documents", "note": "no new documents since the previous run"}
    if window.n < thresholds.min_documents:
        return {**rec, "status": "too_few", "note": f"{window.n} new documents, under min_documents "
                                                   f"({thresholds.min_documents}): not judged"}
    ev, source = evaluation_baseline(ws, version)
    if ev is not None:
        rec["against"]["evaluation"] = {**source, **compare(window, ev, thresholds)}
        rec["reasons"] += reasons(f"the {source['label']}", rec["against"]["evaluation"])
    else:
        rec["against"]["evaluation"] = source
    same = [r for r in earlier if r.get("model_sha256") == version.sha256 and r.get("profile")
            and (r["profile"].get("n") or 0) >= thresholds.min_documents][:thresholds.history]
    if same:
        pooled = Profile.from_dict(same[0]["profile"])
        for r in same[1:]:
            pooled = pooled + Profile.from_dict(r["profile"])
        ids = [r["run_id"] for r in same]
        label = f"previous run{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))}"
        rec["against"]["runs"] = {"kind": "runs", "runs": ids, "label": label, **compare(window, pooled, thresholds)}
        rec["reasons"] += reasons(label, rec["against"]["runs"])
    rec["flagged"] = any(a.get("flagged") for a in rec["against"].values())
    rec["status"] = "flagged" if rec["flagged"] else "ok"
    return rec
