"""Trends and summaries, one function each, for ``inhouse trends|summarize``, REST and the summarize job.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> summarize(ws, "tickets", by="label", n_docs=2)["run_id"]
    4
"""

from __future__ import annotations

from ..workspace.store import Workspace


def trends(ws: Workspace, dataset: str, *, by: str = "label", label_col: str | None = None, **options):
    """Emerging and declining categories (:func:`inhouse.analysis.trends.trends`); ``--by label`` means
    ``label_col`` when one is given."""
    from ..analysis.trends import trends as compute

    by = label_col if by == "label" and label_col else by
    return compute(ws, dataset, by=by, **options)


def draw_trends(result, path) -> dict:
    """Draw a trends result as a chart (PNG); returns what was left out of it (the smaller categories)."""
    from ..analysis.trends import chart, chart_left_out

    chart(result, path)
    return chart_left_out(result)


def summarize(ws: Workspace, dataset: str, *, by: str = "label", label_col: str | None = None,
              categories: list[str] | None = None, confirm=None, **options) -> dict:
    """One summary per category, stored as a run: ``{dataset, by, run_id, summaries}`` (summaries as
    :class:`inhouse.analysis.summarize.Summary`, call ``to_dict`` for JSON)."""
    from ..analysis.summarize import counts, summarize as compute

    by = label_col if by == "label" and label_col else by
    out = compute(ws, dataset, by=by, categories=list(categories) if categories else None, confirm=confirm,
                  **options)
    return {"dataset": dataset, "by": by, "run_id": out[0].run_id if out else None, **counts(out), "summaries": out}
