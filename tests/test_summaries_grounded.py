"""Summaries you can check: every generated sentence is held against its category's documents.

A sentence is kept only when each of its content words and numbers appears in
the documents; the rest are dropped, a summary left with none falls back to the
extractive one, and the counts are reported (result, CLI, report). A category
whose model summary fell back says so instead of showing nothing.
"""

from __future__ import annotations

import pytest

from inhouse.analysis.summarize import Summary, check_sentence, counts, ground_summary, source_index
from inhouse.demo.data import generate

FEES = [r["text"] for r in generate(n=1500, seed=7) if r["intent"] == "fees_question"]


def _summary(texts: list[str]) -> Summary:
    return Summary("fees_question", "fees_question", "label", len(texts), 0.1, ["fee", "abroad"], [1, 2, 3],
                   texts[:3], "- " + "\n- ".join(texts[:3]), "extractive", model="smollm2-135m", model_sha256="0" * 64)


def test_sentences_with_words_or_numbers_not_in_the_documents_are_dropped():
    assert len(FEES) > 50
    s = _summary(FEES)
    text = ("These messages ask about the fee for a withdrawal and for sending money abroad. "
            "Fees are charged by various governments at a rate of 3.5 percent.")
    ground_summary(s, text, FEES, "smollm2-135m")
    assert s.kind == "abstractive" and s.summary == "These messages ask about the fee for a withdrawal and for sending money abroad."
    assert (s.sentences_kept, s.sentences_dropped) == (1, 1)
    assert any("governments" in n or "3.5" in n for n in s.notes)
    idx = source_index(FEES)
    assert check_sentence("I got a $45 exchange fee.", idx) is None  # $45 is one of the demo's amounts
    assert "number 46" in check_sentence("I got a $46 exchange fee.", idx)


def test_inflections_are_grounded_for_summaries_and_names_but_new_words_are_not():
    """qwen2.5-coder-1.5b on the demo (bench/qwen_summaries.py): 'stopping the monthly fee' of documents saying
    'stop the monthly fee' was dropped ('stopp'), and the name 'Account Charge and Fee' of documents saying
    'charged' was refused (names were folded for plurals only). Derived words stay refused."""
    from inhouse.topics.grounding import check_grounded

    cancel = ["how do I stop the monthly fee of $7.50", "I want to cancel my premium plan"]
    assert check_sentence("These messages are about canceling a premium plan and stopping the monthly fee.",
                          source_index(cancel)) is None
    fees = ["why was I charged a fee of $45 for a withdrawal", "I was charged twice"]
    assert check_grounded("Account Charge and Fee", fees + ["my account"], kind="name") == (True, "")
    assert check_grounded("Fees Charged", fees, kind="name") == (True, "")
    assert check_grounded("Merchant Payment Recognition", ["payment I don't recognise", "merchant"],
                          kind="name") == (False, "'recognition' is in none of the topic's documents")
    assert check_grounded("Debit Card Arrival", ["my debit card hasn't arrived"], kind="name")[0] is False
    assert "'urgency'" in check_sentence("These are requests of some urgency.", source_index(["this is urgent"]))


def test_what_people_ask_for_is_not_a_fact_a_summary_could_invent():
    """qwen2.5-coder-1.5b's summaries of airline and banking77 categories fell back for one describing word each
    ('assistance', 'information', 'specifically', 'series'): words that say what people do in their messages.
    A word of content the documents never say is still dropped."""
    docs = ["how do I activate my new card", "my card came, how to activate it?", "activate card app"]
    idx = source_index(docs)
    assert check_sentence("These messages are asking for assistance with activating a new card.", idx) is None
    assert check_sentence("These messages seek information, specifically how to activate a card.", idx) is None
    assert "'contactless'" in check_sentence("These messages ask for help activating a contactless card.", idx)


def test_a_document_quoted_back_is_not_a_summary():
    """smollm2-135m's 'summaries' kept on real sets (bench/qwen_summaries.py) were documents it was shown,
    copied: a tweet for airline's Damaged Luggage, two questions for trec6's DESC. A summary that quotes a
    phrase of the documents inside its own sentence stays."""
    from inhouse.analysis.summarize import tidy_summary

    tweets = ["@AmericanAir - you broke my sick wife's luggage handle going from JFK to LAX...she had to drag her "
              "bag thru the airport! - @united - you paying for a new one?", "@united my bag arrived damaged"]
    assert tidy_summary(tweets[0], ["luggage", "damaged"] + tweets) is None
    # its next try, pieces of two tweets, one word changed: still mostly a run of one document's words
    mash = ("@united - you paying for a new one? http://t.co/nYVV1X3d67 - @AmericanAir - you breaking my sick "
            "wife's luggage handle going from JFK to LAX...")
    assert tidy_summary(mash, tweets) is None
    assert tidy_summary("A film - What was the first Lifesaver flavor?", ["What was the first Lifesaver flavor ?"]) is None
    # and tweeteval's anger: three tweets joined as one 'sentence'
    anger = ["Need a new outlet for #rage", "Ppl like that irritate my soul", "Karev better not be out!!! #greysanatomy"]
    assert tidy_summary("Need a new outlet for #rage - Ppl like that irritate my soul - Karev better not be out!!!",
                        ["rage"] + anger) is None
    questions = ["What is the origin of head lice ?", "What makes a tornado turn ?", "What is a caldera ?"]
    assert tidy_summary("What is the origin of head lice? - What makes a tornado turn?", questions) is None
    # a copied sentence goes, the model's own one stays
    assert tidy_summary("These are questions about head lice and a tornado. What makes a tornado turn?",
                        questions) == "These are questions about head lice and a tornado."
    assert tidy_summary("These messages are about luggage handle damage on flights from JFK to LAX.",
                        tweets) == "These messages are about luggage handle damage on flights from JFK to LAX."


def test_qwen_lists_are_summaries_but_loops_and_prompt_echoes_are_not():
    """qwen2.5-coder-1.5b's answer for the demo's fees_question was thrown away as a loop ('fees' 4 times)."""
    from inhouse.analysis.summarize import tidy_summary

    qwen = ("These messages are about fees related to transferring money, including charges for instant transfers, "
            "fees for withdrawals, fees for using a card in another country, fees for sending money abroad, and an "
            "exchange fee.")
    assert tidy_summary(qwen, ["fee", "abroad"] + FEES[:5]) == qwen
    assert tidy_summary("The fees are fees, fees, fees and fees.", ["fee"]) is None
    # smollm2-135m's 'summary' of refund_request in the same bench: the prompt echoed, kept as grounded
    echo = ("Messages: - Hello, I want a refund for order A#518403, the item was not as described. - How do I get "
            "my money back for order A#518403, I sent it back 10 days ago.")
    assert tidy_summary(echo, ["refund", "order", "money back"]) is None
    assert tidy_summary("Cards and the app crashes and the app crashes and the app crashes.", ["app"]) is None
    # qwen2.5-coder-1.5b on tweeteval's sadness tweets (a prompt probe): a word said 3 times in 6 is a loop too
    assert tidy_summary("Depression, anxiety, sadness, loneliness, loneliness, loneliness.", ["sadness"]) is None


def test_a_summary_with_no_grounded_sentence_falls_back_and_the_counts_say_so():
    s = _summary(FEES)
    extractive = s.summary
    ground_summary(s, "The Federal Reserve sets these tariffs every quarter.", FEES, "smollm2-135m")
    assert s.kind == "extractive" and s.summary == extractive and s.summary
    assert any("fell back" in n for n in s.notes)
    ok = _summary(FEES)
    ground_summary(ok, "Customers ask about the fees for using a card in another country.", FEES, "smollm2-135m")
    assert counts([s, ok]) == {"generated_kept": 1, "fell_back": 1, "sentences_kept": 1, "sentences_dropped": 1}


def test_the_report_never_shows_a_category_silently_without_a_summary():
    """Old report: a fallen-back category printed keywords and quotes but no summary line, with no word why."""
    from inhouse.pipeline.report import _summaries

    fell, kept = _summary(FEES), _summary(FEES)
    ground_summary(fell, "The Federal Reserve sets these tariffs.", FEES, "smollm2-135m")
    ground_summary(kept, "Customers ask about the fees for using a card in another country.", FEES, "smollm2-135m")
    result = {"summaries": [{**x.to_dict(), "ids": x.doc_ids} for x in (kept, fell)], **counts([kept, fell])}
    page = _summaries(result)
    cards = page.split("<div class='card'>")[1:]
    assert len(cards) == 2 and "another country" in cards[0]
    assert "No sentence by smollm2-135m passed the check" in cards[1] and "Federal" in cards[1]
    assert "1 generated summaries kept, 1 fell back" in page


@pytest.mark.slow
def test_demo_summaries_by_smollm2_are_grounded_and_no_category_lacks_one(ws, run_cli, tmp_path):
    """The real default model on the demo corpus: every category has a summary, every kept sentence is grounded."""
    import pandas as pd

    from inhouse.analysis.summarize import summarize
    from inhouse.data.ingest import ingest

    rows = generate(n=400, seed=7)
    pd.DataFrame(rows).to_csv(tmp_path / "demo.csv", index=False)
    ingest(ws, tmp_path / "demo.csv", "demo", label_col="intent", time_col="timestamp")
    out = summarize(ws, "demo", by="label", llm="smollm2-135m", n_docs=3, max_tokens=32)
    docs: dict[str, list[str]] = {}
    for r in rows:
        if r["intent"]:
            docs.setdefault(r["intent"], []).append(r["text"])
    assert {s.category for s in out} == set(docs)
    n = counts(out)
    assert n["generated_kept"] + n["fell_back"] == len(out)
    for s in out:
        assert s.summary.strip() and s.model == "smollm2-135m"
        if s.kind == "abstractive":
            idx = source_index(docs[s.category])
            for sentence in s.summary.split(". "):
                assert check_sentence(sentence, idx) is None, (s.category, sentence)
        else:
            assert s.notes, f"{s.category} fell back without a note"
    r = run_cli("summarize", "--dataset", "demo", "--llm", "smollm2-135m", "--category", "card_lost", "--yes")
    assert r.exit_code == 0, r.stderr
    assert "generated summaries kept" in r.stdout and "fell back" in r.stdout


def test_a_summary_may_name_what_the_documents_say_as_written(ws, shared_data, tmp_path, monkeypatch):
    """The check read the documents as cleaned for topics, without @mentions: qwen2.5-coder-1.5b's summary of
    airline tweets naming the airlines every tweet addresses (@SouthwestAir, @USAirways) was refused. The
    model's answer is fixed here (the grounding is under test; the real model's run is the test above)."""
    import pandas as pd

    from inhouse.analysis.summarize import summarize
    from inhouse.data.ingest import ingest
    from inhouse.models import generators

    df = pd.read_csv(shared_data / "twitter_airline_sentiment" / "twitter_airline_sentiment.csv")
    df = df[df["airline"].isin(["Southwest", "US Airways"]) & df["negative_reason"].isin(["Cancelled Flight", "Late Flight"])]
    df = df[~df["text"].str.contains("jetblue", case=False)].groupby("negative_reason").head(40)
    df[["text", "negative_reason"]].to_csv(tmp_path / "air.csv", index=False)
    ingest(ws, tmp_path / "air.csv", "air", label_col="negative_reason")
    answer = ("These messages are about cancelled flights with SouthwestAir and USAirways. "
              "JetBlue flights were also delayed.")

    class Answering:  # the registered model's identity, a fixed answer
        def __init__(self, real):
            self.name, self.sha256 = real.name, real.sha256

        def generate(self, prompt, **kw):
            return answer

    real = generators.load_generator
    monkeypatch.setattr(generators, "load_generator", lambda ws_, name: Answering(real(ws_, name)))
    out = {s.category: s for s in summarize(ws, "air", by="label", llm="smollm2-135m", categories=["Cancelled Flight"])}
    s = out["Cancelled Flight"]
    assert s.kind == "abstractive", s.notes
    assert s.summary == "These messages are about cancelled flights with SouthwestAir and USAirways."
    assert (s.sentences_kept, s.sentences_dropped) == (1, 1) and "'jetblue'" in s.notes[0]
