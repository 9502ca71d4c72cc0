"""Honest LLM options: what a run will cost before it starts, and every output checked against its sources.

A small local model writes topic names and summaries; it also invents. Every
answer is checked against the documents of its category before it is kept
(:func:`check_grounded`): a name or summary that mentions an entity (a
capitalised word, a number) or, for names, any key word found in none of the
category's documents is rejected, and the extractive text stays. Runs report
how many answers were accepted and how many fell back.

:func:`estimate` says, before the work starts, how many prompts a run needs and
how long they will take on this machine: from this workspace's earlier LLM runs
of the same model (seconds per prompt, recorded by :func:`record_speed`), else a
default that grows with the model file's size.

    >>> check_grounded("Day of the Dead", ["snow storm delays", "weather cancelled my flight"], kind="name")
    (False, "'day' is in none of the topic's documents")
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from ..workspace.store import Workspace
from .text import fold_plural as stem_word
from .text import stop_words

# words a summary may use without finding them in the documents: they describe, they do not claim
GENERIC = {
    "message", "messages", "customer", "customers", "user", "users", "people", "person", "about", "issue", "issues",
    "problem", "problems", "question", "questions", "request", "requests", "asking", "ask", "asks", "complain",
    "complaint", "complaints", "complaining", "regarding", "related", "relate", "experience", "experiences",
    "concern", "concerns", "various", "mention", "mentions", "express", "expressing", "expresses", "frustration",
    "dissatisfaction", "satisfaction", "topic", "discuss", "discusses", "discussing", "several", "many", "some",
    "general", "overall", "describe", "describes", "report", "reports", "reporting", "seem", "seems", "common",
    "different", "specific", "also", "including", "include", "includes", "like", "want", "wants", "need", "needs",
    "their", "they", "these", "those", "sentence", "summary",
    # what people do in their messages, not what they say: asking for help or information is not a fact a
    # summary could invent (qwen2.5-coder-1.5b's summaries on airline, banking77 and the demo fell back for
    # 'assistance', 'information', 'specifically', 'series')
    "assistance", "help", "information", "details", "inquiry", "inquiries", "inquire", "inquiring", "query",
    "queries", "seek", "seeking", "seeks", "clarification", "guidance", "specifically", "particularly", "mainly",
    "mostly", "primarily", "generally", "typically", "often", "series", "involving", "involve", "involves",
    "concerning", "situation", "situations", "theme", "themes",
}
# with no earlier run, seconds per prompt = fixed + per GB of the model file: CPU generation reads the whole
# file per token. Measured on 2 shared cores (BENCHMARKS.md, qwen section): smollm2-135m (0.098 GB) 0.6 s per
# summary, 0.2-0.3 s per name; qwen2.5-coder-1.5b (1.12 GB) 3.1-7.5 s and 1.0-1.9 s; these give ~2x the slower
# run (a machine oversubscribed by other work can still be 10x slower: the median of earlier runs then takes over).
DEFAULT_SECONDS_PER_PROMPT = {"name": (0.5, 4.0), "summary": (1.0, 14.0)}  # (fixed s, s per GB)
CONFIRM_MINUTES = 2.0  # above this, interactive runs ask for --yes


def root_word(word: str) -> str:
    """A word folded for comparison: lower case, plural, then one of -ing/-ed/-ly/-e, then a doubled final
    consonant — inflections only, so a name or summary may say ``charge`` of documents that say ``charged``.

    >>> [root_word(w) for w in ("Charged", "charge", "charges", "stopping", "stop", "called", "call", "fees")]
    ['charg', 'charg', 'charg', 'stop', 'stop', 'cal', 'cal', 'fee']
    """
    w = stem_word(word.lower())
    for suffix in ("ing", "ed", "ly", "e"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            break
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiou":
        w = w[:-1]
    return w


def words_of(texts: list[str]) -> set[str]:
    """The :func:`root_word` of each word of ``texts`` (letters and digits)."""
    out: set[str] = set()
    for t in texts:
        for w in re.findall(r"[^\W_]+", str(t).lower()):
            out.add(root_word(w))
    return out


def check_grounded(text: str, sources: list[str] | set[str], *, kind: str = "summary") -> tuple[bool, str]:
    """Whether ``text`` (a topic ``name`` or a ``summary``) stays within its category's documents.

    ``sources`` are the documents' texts (or :func:`words_of` them). Rejected: an
    entity (a capitalised word that does not start a sentence, or a number) found
    in no document; for a name, any content word found in no document; for a
    summary, fewer than half of its content words (beyond :data:`GENERIC`) found.
    Returns (ok, why not).
    """
    known = sources if isinstance(sources, set) else words_of(list(sources))
    stops = set(stop_words())
    tokens = re.findall(r"[^\W_]+", text)
    starts = {m.end() for m in re.finditer(r"(^|[.!?]\s+)", text)}
    pos = 0
    for tok in tokens:
        at = text.index(tok, pos)
        pos = at + len(tok)
        low = tok.lower()
        entity = tok.isdigit() or (tok[0].isupper() and at not in starts and kind == "summary")
        if entity and root_word(low) not in known:
            return False, f"{tok!r} is in none of the category's documents"
    content = [w.lower() for w in tokens if w.lower() not in stops and len(w) > 2 and not w.isdigit()]
    if kind == "name":
        missing = [w for w in content if root_word(w) not in known]
        if missing:
            return False, f"{missing[0]!r} is in none of the topic's documents"
        return True, ""
    generic = {root_word(g) for g in GENERIC}
    content = [w for w in content if root_word(w) not in generic]
    if content and sum(root_word(w) in known for w in content) < 0.5 * len(content):
        missing = [w for w in content if root_word(w) not in known]
        return False, f"most of its key words ({', '.join(missing[:4])}) are in none of the category's documents"
    return True, ""


@dataclass
class Estimate:
    """What an LLM run will cost, said before it starts."""

    model: str
    kind: str  # "name" | "summary"
    documents: int
    prompts: int
    seconds_per_prompt: float
    source: str  # "earlier runs in this workspace" | "default"

    @property
    def minutes(self) -> float:
        return round(self.prompts * self.seconds_per_prompt / 60.0, 1)

    @property
    def needs_confirmation(self) -> bool:
        return self.minutes > CONFIRM_MINUTES

    def line(self) -> str:
        what = "topic names" if self.kind == "name" else "summaries"
        return (f"{self.model} will write {self.prompts} {what} ({self.prompts} prompts over {self.documents:,} "
                f"documents): about {self.minutes:g} min on this machine ({self.seconds_per_prompt:.1f} s per "
                f"prompt, {self.source})")

    def to_dict(self) -> dict:
        return {**asdict(self), "minutes": self.minutes}


def estimate(ws: Workspace, model: str, kind: str, prompts: int, documents: int) -> Estimate:
    """Seconds per prompt from this workspace's earlier runs of ``model`` (median), else the default."""
    rows = ws.db.execute("SELECT result FROM runs WHERE kind = 'llm_speed' AND model = ? ORDER BY id DESC LIMIT 20",
                         (model,)).fetchall()
    speeds = sorted(s for s in (json.loads(r[0]).get(f"{kind}_seconds_per_prompt") for r in rows) if s)
    if speeds:
        return Estimate(model, kind, documents, prompts, round(speeds[len(speeds) // 2], 2),
                        f"median of {len(speeds)} earlier runs in this workspace")
    gb = _model_gb(ws, model)
    fixed, per_gb = DEFAULT_SECONDS_PER_PROMPT[kind]
    return Estimate(model, kind, documents, prompts, round(fixed + per_gb * gb, 1),
                    f"default guess for a {gb:.2g} GB model")


def _model_gb(ws: Workspace, model: str) -> float:
    """The model file's size in GB (1 GB when the model is not there: the run fails on it anyway)."""
    from ..errors import NotFound
    from ..models.catalog import CATALOG, get_model

    parted = CATALOG[model].parted if model in CATALOG else None
    if parted is not None:
        return parted.size / 1e9  # its published size: no join needed to say what the run costs
    try:
        return get_model(ws, model).size / 1e9
    except NotFound:
        return 1.0


def record_speed(ws: Workspace, model: str, model_sha256: str, kind: str, prompts: int, seconds: float) -> None:
    """Remember how fast ``model`` answered, for the next :func:`estimate`."""
    if prompts:
        ws.record_run("llm_speed", {"kind": kind, "prompts": prompts},
                      {f"{kind}_seconds_per_prompt": round(seconds / prompts, 3)}, model=model,
                      model_sha256=model_sha256)
