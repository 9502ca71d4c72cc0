"""Volume and share of each category over time, and which ones are emerging or declining.

:func:`trends` counts the documents of each category (a label, a discovered
topic or any column) per day, week (Monday to Sunday, UTC) or month, and
compares the most recent ``recent`` periods with all the periods before them
(the baseline). For each category the share in the recent window is tested
against the share in the baseline with a two-sided two-proportion z-test, or
Fisher's exact test when an expected count is under 5; the p-values of all
categories are corrected for multiple testing with Benjamini–Hochberg. A
category is *emerging* when its q-value is under ``alpha`` and its share grew
by at least ``min_ratio`` times (or it is new), *declining* when the q-value is
under ``alpha`` and its share fell by the same factor; every category reports
its effect sizes (share ratio, log odds ratio, absolute change) and p and q.

With ``within`` (the sub-topics of each label), each sub-topic's volume is
tested relative to the volume of the whole dataset, not to its parent's: a
sub-topic whose share of its parent fell only because a sibling grew is not
declining. Without ``within``, categories keep the share test (the share of
all documents).

The recent window is the last ``recent`` periods, or the dates from
``recent_from`` (to ``until``, inclusive): the baseline is then everything
before ``recent_from`` and documents after ``until`` are left out, so "what
emerged in March against January–February" is ``recent_from="2026-03-01",
until="2026-03-31"`` on data starting in January.

Periods start at midnight in ``tz`` (default UTC; stored times stay UTC). A
period with fewer than ``min_count`` documents (in the group) is *thin*: its
share is not drawn (one tweet is not a full bar) and a category is flagged
only when it has at least ``min_count`` documents in the recent window. Volume
(documents per period) is reported beside share: a spike in volume is news even
when shares stay flat.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> res = trends(ws, "airline", by="negative_reason", every="day", recent=2)
    >>> [(c.category, c.status, c.share_ratio) for c in res.flagged()]
    [('Lost Luggage', 'emerging', 1.3627)]
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError, UsageError
from ..workspace.documents import read_documents
from ..workspace.files import atomic_path
from ..workspace.store import Workspace

EVERY = {"day": "D", "week": "W-SUN", "month": "M"}


@dataclass
class CategoryTrend:
    """One category's counts per period and its recent-versus-baseline test."""

    category: str
    name: str
    parent: str | None
    total: int
    counts: list[int]
    shares: list[float]
    recent_count: int
    recent_total: int
    baseline_count: int
    baseline_total: int
    share_recent: float
    share_baseline: float
    share_ratio: float | None  # None when the category is new (no baseline documents)
    log_odds_ratio: float
    abs_change: float
    volume_ratio: float | None
    p_value: float
    q_value: float = 1.0
    test: str = "z"
    status: str = "stable"  # "emerging" | "declining" | "stable"
    thin: list[bool] = field(default_factory=list)  # periods with fewer than min_count documents in the group

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrendsResult:
    """Per-period counts and the flagged categories of one dataset."""

    dataset: str
    by: str
    every: str
    within: str | None
    periods: list[str]
    recent_periods: int
    alpha: float
    min_ratio: float
    documents: int
    without_time: int
    without_category: int
    totals: list[int]
    categories: list[CategoryTrend] = field(default_factory=list)
    seconds: float = 0.0
    tz: str = "UTC"
    min_count: int = 5
    where: str | None = None
    recent_from: str | None = None
    until: str | None = None
    basis: str = "dataset"  # shares are of all documents (sub-topics too: a sibling's growth is not a decline)

    def flagged(self) -> list[CategoryTrend]:
        """Emerging then declining categories, strongest evidence first."""
        out = [c for c in self.categories if c.status != "stable"]
        return sorted(out, key=lambda c: (c.status != "emerging", c.q_value, -abs(c.abs_change), c.category))

    def emerging(self) -> list[CategoryTrend]:
        return [c for c in self.flagged() if c.status == "emerging"]

    def declining(self) -> list[CategoryTrend]:
        return [c for c in self.flagged() if c.status == "declining"]

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "categories"}
        d["recent"] = self.periods[-self.recent_periods:]
        d["emerging"] = [c.category for c in self.emerging()]
        d["declining"] = [c.category for c in self.declining()]
        d["categories"] = [c.to_dict() for c in self.categories]
        return d


def window_label(d: dict) -> str:
    """The recent window in words, from a result's ``to_dict()`` (older records have no dates).

    >>> window_label({"recent_periods": 3, "every": "week"})
    'the last 3 weeks'
    >>> window_label({"recent_from": "2026-03-01", "until": "2026-03-31", "every": "week"})
    '2026-03-01 to 2026-03-31 (baseline: before 2026-03-01)'
    """
    if d.get("recent_from"):
        return (f"{d['recent_from']} to {d.get('until') or 'the end'} (baseline: before {d['recent_from']})")
    n = d.get("recent_periods", 1)
    return f"the last {n} {d.get('every', 'period')}{'s' if n != 1 else ''}"


def trends(ws: Workspace, dataset: str, by: str = "label", every: str = "week", *, within: str | None = None,
           recent: int | None = None, alpha: float = 0.05, min_ratio: float = 1.25, run: int | None = None,
           split: str | None = None, where: str | None = None, tz: str = "UTC", min_count: int = 5,
           recent_from: str | None = None, until: str | None = None) -> TrendsResult:
    """Counts and shares of ``by`` per period, and the emerging or declining categories.

    ``recent`` is how many of the latest periods form the recent window (default:
    a quarter of the periods, at least one); or ``recent_from`` (a date, in
    ``tz``) starts it, ``until`` (a date, inclusive) ends the analysis; ``run``
    picks a discovery run for ``by="topic"``.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> res = trends(ws, "airline", by="negative_reason", every="day", recent=2)
    >>> c = res.emerging()[0]
    >>> c.category, c.share_baseline, c.share_recent, f"{c.q_value:.1g}"
    ('Lost Luggage', 0.068966, 0.093982, '7e-05')
    """
    from ..topics.categories import category_values

    t0 = time.time()
    if every not in EVERY:
        raise UsageError(f"--every must be one of {list(EVERY)}, found {every!r}.")
    if min_ratio < 1 or not 0 < alpha < 1:
        raise UsageError("--min-ratio must be at least 1 and --alpha between 0 and 1.")
    if min_count < 1:
        raise UsageError(f"--min-count must be at least 1, found {min_count}.")
    _check_tz(tz)
    import pandas as pd

    df = read_documents(ws, dataset, columns=["doc_id", "time"], split=split, where=where)
    _check_times(ws, dataset, df)
    ids = df["doc_id"].to_numpy()
    cats, names = category_values(ws, dataset, by, ids, run=run)
    parents = category_values(ws, dataset, within, ids, run=run)[0] if within else [None] * len(ids)
    frame = pd.DataFrame({"time": df["time"], "cat": cats, "parent": parents})
    without_time = int(frame["time"].isna().sum())
    frame = frame[frame["time"].notna()]
    start, end = _date_bounds(recent_from, until, tz, recent)
    if end is not None:
        frame = frame[frame["time"] < end]
    every_doc = frame  # the whole dataset's volume: the denominator of a sub-topic's share
    without_cat = int(frame["cat"].isna().sum() + (frame["parent"].isna().sum() if within else 0))
    frame = frame[frame["cat"].notna() & (frame["parent"].notna() if within else True)]
    if frame.empty:
        raise InputError(f"dataset {dataset!r} has no document with both a time and a {by!r} value"
                         + (f" until {until}" if until else "") + ".",
                         fix=f"Check --by {by}" + (f" and --within {within}" if within else "")
                         + (" and --until" if until else "") + ".")
    if not within:
        every_doc = frame  # categories keep the share test: of the documents that have a category
    every_doc, full = _periods(every_doc, every, tz)
    if len(full) < 2:
        raise InputError(f"dataset {dataset!r} spans a single {every} ({full[0]}); trends need at least two periods.",
                         fix="Use a shorter period, e.g. --every day.")
    n_recent, every_doc = _recent_window(every_doc, full, recent, start, recent_from, every)
    frame = every_doc.loc[every_doc.index.isin(frame.index)]
    totals = np.bincount(every_doc["period"], minlength=len(full))
    result = TrendsResult(dataset, by, every, within, [str(p.start_time.date()) for p in full], n_recent, alpha,
                          min_ratio, len(df), without_time, without_cat, totals.tolist(), tz=tz, min_count=min_count,
                          where=where, recent_from=recent_from, until=until)
    spans = _spans(every_doc, full, n_recent, start)
    window = (int(every_doc["recent"].sum()), int((~every_doc["recent"]).sum()))
    for parent, group in _groups(frame, within):
        result.categories += _test_group(group, parent, names, totals, window, spans, min_count)
    _bh(result.categories)
    for c in result.categories:
        c.status = _status(c, alpha, min_ratio) if c.recent_count >= min_count else "stable"
    result.seconds = round(time.time() - t0, 3)
    ws.record_run("trends", {"dataset": dataset, "by": by, "every": every, "within": within, "recent": recent,
                             "alpha": alpha, "min_ratio": min_ratio, "run": run, "split": split, "where": where,
                             "tz": tz, "min_count": min_count, "recent_from": recent_from, "until": until},
                  {"emerging": [c.category for c in result.emerging()],
                   "declining": [c.category for c in result.declining()]}, started_at=t0)
    return result


def _date(value: str, flag: str, tz: str):
    import pandas as pd

    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(value)):
            raise ValueError(value)
        return pd.Timestamp(str(value)).tz_localize(tz).tz_convert("UTC")
    except (ValueError, TypeError):
        raise UsageError(f"{flag} must be a date such as 2026-03-01, found {value!r}.") from None


def _date_bounds(recent_from: str | None, until: str | None, tz: str, recent: int | None):
    """(start of the recent window, end of the analysis) as UTC instants; ``until`` is inclusive (to its midnight)."""
    import pandas as pd

    if recent_from is not None and recent is not None:
        raise UsageError("--recent and --recent-from both choose the recent window; give one of them.")
    start = _date(recent_from, "--recent-from", tz) if recent_from is not None else None
    end = _date(until, "--until", tz) + pd.Timedelta(days=1) if until is not None else None
    if start is not None and end is not None and end <= start:
        raise UsageError(f"--until ({until}) must not be before --recent-from ({recent_from}).")
    return start, end


def _periods(frame, every: str, tz: str):
    import pandas as pd

    periods = frame["time"].dt.tz_convert(tz).dt.tz_localize(None).dt.to_period(EVERY[every])
    return frame.assign(_p=periods), pd.period_range(periods.min(), periods.max(), freq=EVERY[every])


def _recent_window(frame, full, recent: int | None, start, recent_from: str | None, every: str):
    """How many periods the recent window covers, and ``frame`` with each document's period and window."""
    frame = frame.assign(period=np.searchsorted(full.start_time.values, frame["_p"].dt.start_time.values))
    if start is None:
        recent = max(1, len(full) // 4) if recent is None else recent
        if not 1 <= recent < len(full):
            raise UsageError(f"--recent must be between 1 and {len(full) - 1} (there are {len(full)} {every}s), "
                             f"found {recent}.")
        return recent, frame.assign(recent=frame["period"] >= len(full) - recent)
    is_recent = frame["time"] >= start
    if is_recent.all() or not is_recent.any():
        side = "no document before it" if is_recent.all() else "no document from it on"
        raise UsageError(f"--recent-from {recent_from}: there is {side} ({frame['time'].min():%Y-%m-%d} … "
                         f"{frame['time'].max():%Y-%m-%d}), so there is nothing to compare.",
                         fix="Choose a date inside the data, or use --recent N.")
    first = int(frame.loc[is_recent, "period"].min())
    return len(full) - first, frame.assign(recent=is_recent)


def _spans(frame, full, n_recent: int, start) -> tuple[float, float]:
    """Lengths of the recent window and of the baseline (in periods, or days with a date), for volume ratios."""
    if start is None:
        return float(n_recent), float(len(full) - n_recent)
    t0, t1 = frame["time"].min(), frame["time"].max()
    day = 86400.0
    return max((t1 - start).total_seconds() / day, 1.0), max((start - t0).total_seconds() / day, 1.0)


def _check_tz(tz: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz {tz!r} is not a time zone this machine knows.",
                         fix="Use an IANA name such as UTC, America/Los_Angeles or Europe/Berlin.") from None


def _check_times(ws: Workspace, dataset: str, df) -> None:
    if len(df) == 0:
        raise InputError(f"dataset {dataset!r} has no documents.")
    if df["time"].notna().any():
        return
    col = (ws.dataset(dataset).columns or {}).get("time")
    raise InputError(
        f"dataset {dataset!r} has no timestamps" + (f" (its time column {col!r} was empty)" if col else "")
        + ", so it has no trends over time.",
        fix="Ingest the file into a new dataset and name its date column with --time-col, e.g. "
            f"inhouse ingest FILE --dataset {dataset}-dated --time-col timestamp")


def _groups(frame, within: str | None):
    if not within:
        yield None, frame
        return
    sizes = frame.groupby("parent").size()
    for parent in sorted(sizes.index, key=lambda p: (-sizes[p], p)):
        yield parent, frame[frame["parent"] == parent]


def _test_group(group, parent: str | None, names: dict, totals: np.ndarray, window: tuple[int, int],
                spans: tuple[float, float], min_count: int = 1) -> list[CategoryTrend]:
    """Counts per period and the recent-versus-baseline test of each category of one group.

    ``totals`` (per period) and ``window`` (recent, baseline) count the whole
    dataset's documents: the share of a sub-topic is of all documents, so a
    sibling's growth does not make it fall.
    """
    n_periods = len(totals)
    n1, n0 = window
    out = []
    for cat, rows in sorted(group.groupby("cat"), key=lambda kv: (-len(kv[1]), str(kv[0]))):
        counts = np.bincount(rows["period"], minlength=n_periods)
        x1 = int(rows["recent"].sum())
        x0 = len(rows) - x1
        p, test = two_proportion_test(x1, n1, x0, n0)
        s1, s0 = x1 / n1 if n1 else 0.0, x0 / n0 if n0 else 0.0
        rate1, rate0 = x1 / spans[0], x0 / spans[1]
        out.append(CategoryTrend(
            category=str(cat), name=names.get(str(cat), str(cat)), parent=parent, total=int(counts.sum()),
            counts=counts.tolist(), shares=[round(c / t, 6) if t else 0.0 for c, t in zip(counts, totals)],
            recent_count=x1, recent_total=n1, baseline_count=x0, baseline_total=n0,
            share_recent=round(s1, 6), share_baseline=round(s0, 6),
            share_ratio=round(s1 / s0, 4) if s0 > 0 else None,
            log_odds_ratio=round(_log_odds(x1, n1, x0, n0), 4), abs_change=round(s1 - s0, 6),
            volume_ratio=round(rate1 / rate0, 4) if rate0 > 0 else None, p_value=p, test=test,
            thin=[bool(t < min_count) for t in totals]))
    return out


def two_proportion_test(x1: int, n1: int, x0: int, n0: int) -> tuple[float, str]:
    """Two-sided p-value that ``x1/n1`` and ``x0/n0`` differ: pooled z-test, or Fisher's
    exact test when an expected count is under 5.

    >>> round(two_proportion_test(30, 100, 10, 100)[0], 5), two_proportion_test(3, 10, 0, 10)[1]
    (0.00041, 'fisher')
    """
    from scipy import stats

    if n1 == 0 or n0 == 0:
        return 1.0, "none"
    pooled = (x1 + x0) / (n1 + n0)
    expected = [n1 * pooled, n1 * (1 - pooled), n0 * pooled, n0 * (1 - pooled)]
    if min(expected) < 5:
        return float(stats.fisher_exact([[x1, n1 - x1], [x0, n0 - x0]])[1]), "fisher"
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    z = (x1 / n1 - x0 / n0) / se if se > 0 else 0.0
    return float(2 * stats.norm.sf(abs(z))), "z"


def _log_odds(x1: int, n1: int, x0: int, n0: int) -> float:
    """Log odds ratio with the Haldane–Anscombe correction (+0.5 per cell)."""
    return math.log(((x1 + 0.5) * (n0 - x0 + 0.5)) / ((n1 - x1 + 0.5) * (x0 + 0.5)))


def _bh(cats: list[CategoryTrend]) -> None:
    """Benjamini–Hochberg q-values over all tested categories, in place."""
    if not cats:
        return
    p = np.array([c.p_value for c in cats])
    order = np.argsort(p, kind="stable")
    ranked = p[order] * len(p) / np.arange(1, len(p) + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    for i, c in zip(order, q):
        cats[i].q_value = float(c)


def _status(c: CategoryTrend, alpha: float, min_ratio: float) -> str:
    if c.q_value >= alpha:
        return "stable"
    if c.abs_change > 0 and (c.share_ratio is None or c.share_ratio >= min_ratio):
        return "emerging"
    if c.abs_change < 0 and c.share_ratio is not None and c.share_ratio <= 1 / min_ratio:
        return "declining"
    return "stable"


# ----------------------------------------------------------------- chart ----

def thin_labels(n: int, room: float, label: float) -> list[int]:
    """Indices of the ``n`` evenly spaced axis labels to draw so that none overlaps its neighbour.

    ``room`` is the distance from the first tick to the last, ``label`` the
    width one label needs (same unit). Every ``step``-th label is drawn, with
    ``step`` the smallest that keeps drawn labels at least ``label`` apart.

    >>> thin_labels(15, 714, 75)
    [0, 2, 4, 6, 8, 10, 12, 14]
    >>> thin_labels(3, 714, 75), thin_labels(1, 100, 75), thin_labels(0, 100, 75)
    ([0, 1, 2], [0], [])
    """
    if n <= 1:
        return list(range(n))
    gap = room / (n - 1)
    step = max(1, math.ceil(label / gap - 1e-9)) if gap > 0 else n
    return list(range(0, n, step))


def chart_left_out(result: TrendsResult, top: int = 12) -> dict[str | None, list[str]]:
    """Per group, the categories the chart does not draw (all are drawn up to ``top`` per group)."""
    out = {}
    for parent in dict.fromkeys(c.parent for c in result.categories):
        cats = [c for c in result.categories if c.parent == parent]
        shown = {c.category for c in _shown(cats, top)}
        left = [c.category for c in sorted(cats, key=lambda c: -c.total) if c.category not in shown]
        if left:
            out[parent] = left
    return out


def _shown(cats: list[CategoryTrend], top: int) -> list[CategoryTrend]:
    flagged = [c for c in cats if c.status != "stable"]
    return flagged + [c for c in sorted(cats, key=lambda c: -c.total) if c.status == "stable"][:max(0, top - len(flagged))]


def chart(result: TrendsResult, path: str | Path, *, top: int = 12) -> Path:
    """Share (left) and volume (right) over time of each category, flagged ones in colour (PNG, SVG or PDF).

    Every category is drawn up to ``top`` per group; beyond that the chart
    names the ones it left out. Thin periods (fewer than ``min_count``
    documents) are not drawn in the share panel.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> chart(trends(ws, "airline", by="negative_reason", every="day"), "trends.png")
    PosixPath('trends.png')
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UsageError(f"{path}: the chart must end in .png, .svg or .pdf, found {path.suffix or 'no extension'}.")
    all_parents = list(dict.fromkeys(c.parent for c in result.categories))
    parents = all_parents[:6]
    fig, axes = plt.subplots(len(parents), 2, figsize=(16, 3.8 * len(parents)), squeeze=False)
    x = np.arange(len(result.periods))
    left_out = chart_left_out(result, top)
    for (ax, vax), parent in zip(axes, parents):
        _plot_group(ax, vax, result, [c for c in result.categories if c.parent == parent], x, top)
        title = (f"{result.by} within {result.within} = {parent}" if parent is not None
                 else f"{result.dataset}: each {result.by} per {result.every} ({result.tz})")
        ax.set_title(f"{title}: share of all documents", fontsize=10)
        vax.set_title(f"{title}: volume (documents)", fontsize=10)
        if parent in left_out:
            names = left_out[parent]
            ax.text(0, -0.32, f"not drawn ({len(names)} smaller): " + ", ".join(names[:8])
                    + (" ..." if len(names) > 8 else ""), transform=ax.transAxes, fontsize=7, color="#555555")
    if len(all_parents) > len(parents):
        fig.text(0.01, 0.002, f"groups not drawn: {', '.join(str(p) for p in all_parents[len(parents):])}",
                 fontsize=7, color="#555555")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lower()[1:], dpi=110)
    plt.close(fig)
    return path


def _plot_group(ax, vax, result: TrendsResult, cats: list[CategoryTrend], x: np.ndarray, top: int) -> None:
    shown = _shown(cats, top)
    colours = {"emerging": "tab:red", "declining": "tab:blue"}
    muted = ["#7f7f7f", "#bcbd22", "#17becf", "#9467bd", "#8c564b", "#e377c2", "#2ca02c", "#ff7f0e", "#aec7e8",
             "#98df8a", "#c49c94", "#f7b6d2"]
    group_total = np.sum([c.counts for c in cats], axis=0) if cats else np.zeros(len(x))
    vax.bar(x, group_total, color="#dddddd", label="all documents")
    for i, c in enumerate(shown):
        label = c.name if c.name == c.category else f"{c.category}: {c.name}"
        shares = [np.nan if thin else s for s, thin in zip(c.shares, c.thin or [False] * len(x))]
        if c.status == "stable":
            style = dict(color=muted[i % len(muted)], lw=1, alpha=0.7)
            ax.plot(x, shares, label=label[:40], **style)
        else:
            mark = "▲" if c.status == "emerging" else "▼"
            style = dict(color=colours[c.status], lw=2.5, marker="o", ms=3)
            ax.plot(x, shares, label=f"{mark} {label[:36]} (q={c.q_value:.2g})", **style)
        vax.plot(x, c.counts, **style)
    for a in (ax, vax):
        a.axvspan(len(x) - result.recent_periods - 0.5, len(x) - 0.5, color="gold", alpha=0.15, lw=0)
        # labels rotated 30° overlap when their spacing times sin(30°) is under a line of 8-pt text (about 17 px)
        room = a.get_position().width * a.figure.get_figwidth() * a.figure.dpi
        ticks = thin_labels(len(x), room * (len(x) - 1) / max(len(x), 1), 2 * 17)
        a.set_xticks(x[ticks], [result.periods[i] for i in ticks], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("share")
    vax.set_ylabel("documents")
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    vax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
               handles=vax.get_legend_handles_labels()[0][:1] + ax.get_legend_handles_labels()[0],
               labels=vax.get_legend_handles_labels()[1][:1] + ax.get_legend_handles_labels()[1])
