"""The Explore screen shows a discovery's themes first, and its granularity control goes finer or coarser
(issue 18 §1): fewer or more themes through the public API's ?n_themes=, the sub-topics of one theme, or the
flat list of sub-topics. One module-scoped server over the demo corpus, discovered once by the CLI."""

from __future__ import annotations

import pytest
from serverkit import Server, create_token
from uikit import assert_clean, open_page, shot


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from conftest import invoke_cli

    from inhouse.demo.data import write_csv

    home = tmp_path_factory.mktemp("ui-themes")
    path = write_csv(home / "demo.csv", n=600, seed=7)
    for args in (["ingest", str(path), "--dataset", "demo", "--label-col", "intent"],
                 ["discover", "--dataset", "demo", "--model", "wordllama"]):  # a static encoder: seconds on a CPU
        r = invoke_cli("--home", home, *args)
        assert r.exit_code == 0, r.stderr
    server = Server(home)
    try:
        yield server, create_token(home, "themes-viewer", "viewer")
    finally:
        server.stop()


def _names(page) -> list[str]:
    return page.locator(".theme-card .tc-name").all_inner_texts()


def _wait_count(page, selector: str, n: int) -> None:
    page.wait_for_function("([s, n]) => document.querySelectorAll(s).length === n", arg=[selector, n])


@pytest.mark.browser
@pytest.mark.slow
def test_themes_come_first_and_the_control_goes_finer_coarser_and_down_to_sub_topics(served, browser):
    server, token = served
    with server.client(token) as c:
        run = c.get("/datasets/demo/topics/1").json()
    n, k = len(run["themes"]), run["n_topics"]
    assert 2 < n < k, (n, k)
    page = open_page(browser, server.url, token)
    page.goto("/#/datasets/demo")
    page.locator(".theme-card").first.wait_for()
    assert _names(page) == [t["name"] for t in run["themes"]], "the run's themes, in order, before any topic"
    assert page.locator(".topic-card").count() == 0
    assert page.locator("#level-themes").get_attribute("aria-pressed") == "true"
    assert page.locator("#themes-count").inner_text() == f"{n} themes"
    shot(page, "explore-themes")

    # finer: more themes, as the API cuts the run's tree (nothing is clustered again)
    page.click("#themes-finer")
    finer = min(k, n + max(1, n // 4))
    page.get_by_text(f"{finer} themes", exact=True).wait_for()
    with server.client(token) as c:
        want = c.get("/datasets/demo/topics/1", params={"n_themes": finer}).json()
    assert _names(page) == [t["name"] for t in want["themes"]]
    assert "themes=" in page.url

    # coarser, twice: fewer themes
    page.click("#themes-coarser")
    back = max(2, finer - max(1, finer // 4))
    page.get_by_text(f"{back} themes", exact=True).wait_for()
    page.click("#themes-coarser")
    coarse = max(2, back - max(1, back // 4))
    page.get_by_text(f"{coarse} themes", exact=True).wait_for()
    assert coarse < n and page.locator(".theme-card").count() == coarse

    # as found: the run's own themes again
    page.click("#themes-auto")
    page.get_by_text(f"{n} themes", exact=True).wait_for()
    assert _names(page) == [t["name"] for t in run["themes"]]

    # into one theme: its sub-topics
    first = run["themes"][0]
    page.locator(".theme-card").first.locator(".theme-open").click()
    page.locator("#themes-up").wait_for()
    _wait_count(page, ".topic-card", min(8, len(first["topics"])))
    shown = {int(t) for t in page.locator(".topic-card").evaluate_all("els => els.map(e => e.dataset.topic)")}
    assert shown <= set(first["topics"])
    page.click("#themes-up")
    _wait_count(page, ".theme-card", n)

    # the flat sub-topics, and back
    page.click("#level-topics")
    _wait_count(page, ".topic-card", min(8, k))
    assert page.locator(".theme-card").count() == 0 and page.locator("#themes-count").count() == 0
    assert page.locator("#level-topics").get_attribute("aria-pressed") == "true"
    page.click("#level-themes")
    _wait_count(page, ".theme-card", n)
    assert_clean(page)
    page.context.close()
