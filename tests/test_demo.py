"""The demo's summary lines lead with what emerged: the planted problem is the news."""

from inhouse.demo.run import _trend_lines


def _cat(name, status, q, change):
    return {"name": name, "status": status, "q_value": q, "abs_change": change, "share_ratio": None if change > 0 else 0.3,
            "share_baseline": 0.0 if change > 0 else 0.2, "share_recent": max(change, 0.06), "parent": "app_problem"}


def test_emerging_sub_topics_come_before_declining_ones_even_with_weaker_evidence():
    cats = [_cat("upload, button", "declining", 1e-20, -0.15), _cat("stable one", "stable", 0.5, 0.0),
            _cat("crashes after update", "emerging", 1e-3, 0.19), _cat("page shows", "declining", 1e-4, -0.11)]
    lines = _trend_lines(cats)
    assert [line.split()[0] for line in lines] == ["EMERGING", "DECLINING", "DECLINING"]
    assert "crashes after update" in lines[0] and "upload, button" in lines[1]
