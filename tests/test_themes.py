"""Themes a lead can read (issue 18 §1): the demo's ten intents come back as 8-20 themes, each with its
sub-topics, named by content words (no greetings), identical on repeat; the CLI and the API show them."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from inhouse.topics.themes import choose_count, cut_themes, theme_tree
from inhouse.workspace.store import Workspace

N_DEMO = 1500
# the demo generator's openers and sign-offs (inhouse/demo/data.py OPENERS/CLOSERS), which carry no topic
GREETINGS = {"hi", "hello", "hey", "dear", "morning", "good morning", "thanks", "thank", "regards", "team"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A workspace with 1,500 messages of the demo generator, discovered once (embeddings computed once)."""
    from inhouse.data.ingest import ingest
    from inhouse.demo.data import write_csv
    from inhouse.topics.discover import discover

    folder = tmp_path_factory.mktemp("themes")
    path = write_csv(folder / "demo.csv", n=N_DEMO, seed=7)
    ws = Workspace.open(folder / "home")
    ingest(ws, path, "demo", label_col="intent", time_col="timestamp")
    res = discover(ws, "demo", seed=0)
    yield ws, res
    ws.close()


def _words(name: str) -> set[str]:
    words = re.findall(r"[a-z]+", name.lower())
    return set(words) | {" ".join(p) for p in zip(words, words[1:])}


@pytest.mark.slow
def test_demo_gives_a_readable_number_of_themes_each_made_of_whole_topics(demo):
    from inhouse.workspace.documents import read_documents

    ws, res = demo
    assert 8 <= len(res.themes) <= 20, f"{len(res.themes)} themes for 10 intents; topics: {res.n_topics}"
    assert res.n_topics > len(res.themes), "the sub-topics are finer than the themes"
    listed = sorted(t for th in res.themes for t in th.topics)
    assert listed == [t.topic for t in res.topics], "every topic belongs to exactly one theme"
    assert all(res.topics[k].theme == th.theme for th in res.themes for k in th.topics)
    assert sum(th.size for th in res.themes) == res.n_documents
    assert [th.theme for th in res.themes] == list(range(len(res.themes)))
    assert all(th.representative_docs and th.representative_texts for th in res.themes)
    # the themes follow the intents the agents tagged (a third of the messages is untagged)
    docs = read_documents(ws, "demo", columns=["doc_id", "label"])
    docs = docs[docs["label"].notna() & (docs["label"] != "")]
    a = res.assignments().set_index("doc_id")
    theme = np.array([res.topics[t].theme for t in a.loc[docs["doc_id"], "topic"]])
    nmi = normalized_mutual_info_score(docs["label"], theme)
    assert nmi > 0.75, f"themes vs the tagged intents: NMI {nmi:.3f}"


@pytest.mark.slow
def test_names_are_content_words_not_greetings(demo):
    _, res = demo
    for item in [*res.themes, *res.topics]:
        found = _words(item.name) & GREETINGS
        assert not found, f"{type(item).__name__} {item.name!r} is named by greetings {found}"
    assert any(" " in k for th in res.themes for k in th.keywords[:3]), "phrases are preferred"


@pytest.mark.slow
def test_themes_are_identical_on_repeat_and_kept_with_the_run(demo):
    from inhouse.topics.discover import discover
    from inhouse.topics.runs import load_discovery

    ws, first = demo
    again = discover(ws, "demo", seed=0)
    assert again.run_id != first.run_id
    assert [t.to_dict() for t in again.themes] == [t.to_dict() for t in first.themes]
    assert [t.to_dict() for t in again.topics] == [t.to_dict() for t in first.topics]
    loaded = load_discovery(ws, "demo", first.run_id)
    assert [t.to_dict() for t in loaded.themes] == [t.to_dict() for t in first.themes]
    assert [t.theme for t in loaded.topics] == [t.theme for t in first.topics]


@pytest.mark.slow
def test_cli_shows_themes_first_and_goes_finer_or_coarser(demo, run_cli, monkeypatch):
    ws, res = demo
    monkeypatch.setenv("INHOUSE_HOME", str(ws.home))
    r = run_cli("discover", "--dataset", "demo", "--run", res.run_id)
    assert r.exit_code == 0, r.stderr
    head = r.stdout.splitlines()
    assert head[0].startswith(f"demo: {len(res.themes)} themes, {res.n_topics} topics")
    assert head[1].split()[:2] == ["THEME", "SIZE"]
    assert res.themes[0].name in r.stdout and f"TOPIC {res.themes[0].topics[0]}" in r.stdout
    flat = run_cli("discover", "--dataset", "demo", "--run", res.run_id, "--level", "topics")
    assert flat.exit_code == 0 and flat.stdout.splitlines()[1].split()[0] == "TOPIC"
    old = run_cli("discover", "--dataset", "demo", "--run", res.run_id, "--n-themes", 5)
    assert old.exit_code == 0, old.stderr
    assert old.stdout.splitlines()[0].startswith(f"demo: 5 themes, {res.n_topics} topics"), "the run regrouped"
    finer = run_cli("discover", "--dataset", "demo", "--n-themes", 14, "--json")
    assert finer.exit_code == 0, finer.stderr
    assert finer.json["n_themes"] == 14 and len(finer.json["themes"]) == 14
    assert finer.json["n_topics"] == res.n_topics, "the topics stay; only the grouping changes"


def test_ward_tree_recovers_planted_groups_and_the_count_stays_in_bounds():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(10), 6)  # 10 groups of 6 topics each
    centres = rng.normal(size=(10, 32))[groups] + 0.15 * rng.normal(size=(60, 32))
    sizes = rng.integers(10, 200, size=60)
    tree = theme_tree(centres, sizes)
    assert len(tree) == 59
    themes = cut_themes(tree, 60)
    assert themes.max() + 1 == 10
    assert normalized_mutual_info_score(groups, themes) == pytest.approx(1.0)
    assert themes[0] == 0 and np.array_equal(themes, cut_themes(theme_tree(centres, sizes), 60))
    for k in (3, 8, 25, 60):
        t = choose_count(theme_tree(centres[:k], sizes[:k]), k)
        assert min(k, 8) <= t <= min(k, 30)
    assert cut_themes(tree, 60, n_themes=17).max() + 1 == 17


@pytest.mark.slow
def test_api_gives_the_run_at_the_level_asked(demo):
    from serverkit import Server, create_token

    ws, res = demo
    token = create_token(ws.home, "viewer-user", "viewer")
    server = Server(ws.home)
    try:
        with server.client(token) as c:
            url = f"/datasets/demo/topics/{res.run_id}"
            themes = c.get(url, params={"level": "themes"})
            assert themes.status_code == 200, themes.text
            body = themes.json()
            assert "topics" not in body and body["n_themes"] == len(res.themes)
            assert [t["name"] for t in body["themes"]] == [t.name for t in res.themes]
            assert body["themes"][0]["topics"] == res.themes[0].topics
            full = c.get(url).json()
            assert len(full["topics"]) == res.n_topics and full["topics"][0]["theme"] == res.topics[0].theme
            assert "themes" not in c.get(url, params={"level": "topics"}).json()
            assert c.get(url, params={"level": "words"}).status_code == 422
    finally:
        server.stop()


@pytest.mark.slow
def test_a_stored_run_regroups_into_coarser_or_finer_themes_as_a_new_run_would(demo):
    """Going finer or coarser needs no new clustering: the run keeps its theme tree, and a cut of it at N gives
    the themes a fresh discovery with n_themes=N gives (same sub-topics, sizes, keywords and names; the
    representatives may differ, as the fresh run's sub-topic keywords demote words spread over its own themes)."""
    from serverkit import Server, create_token

    from inhouse.topics.discover import discover
    from inhouse.topics.regroup import regroup

    ws, res = demo
    fresh = discover(ws, "demo", seed=0, n_themes=14)
    again = regroup(ws, "demo", res.run_id, n_themes=14)
    same = ("theme", "size", "share", "topics", "keywords", "name")
    assert [{k: t.to_dict()[k] for k in same} for t in again.themes] == \
        [{k: t.to_dict()[k] for k in same} for t in fresh.themes]
    subs = {t.topic: set(t.representative_docs) for t in again.topics}
    assert all(set(th.representative_docs) <= set().union(*(subs[k] for k in th.topics)) for th in again.themes)
    assert [t.theme for t in again.topics] == [t.theme for t in fresh.topics]
    assert again.themes_chosen == len(res.themes) and again.n_topics == res.n_topics
    coarse = regroup(ws, "demo", res.run_id, n_themes=3)
    assert len(coarse.themes) == 3 and sum(th.size for th in coarse.themes) == res.n_documents
    token = create_token(ws.home, "regroup-viewer", "viewer")
    server = Server(ws.home)
    try:
        with server.client(token) as c:
            url = f"/datasets/demo/topics/{res.run_id}"
            body = c.get(url, params={"n_themes": 14, "level": "themes"}).json()
            assert body["n_themes"] == 14 and body["themes_chosen"] == len(res.themes)
            assert [t["name"] for t in body["themes"]] == [t.name for t in fresh.themes]
            assert c.get(url).json()["n_themes"] == len(res.themes), "regrouping is not stored"
            assert c.get(url, params={"n_themes": 0}).status_code == 422
    finally:
        server.stop()
