"""Labelling helpers: rename and merge a discovery run's topics, and the queue of documents to label next."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import Field

from ..errors import UsageError
from ..service import candidates as candidates_service
from ..service import topics as topics_service
from .auth import role
from .common import BIG, Body, Id, ws_of

router = APIRouter()
TopicId = Field(..., ge=0, le=BIG, description="A topic number of the run (0..n_topics-1).")


class RenameRequest(Body):
    name: str = Field(..., min_length=1, max_length=200, description="The person's name for the topic.")


class MergeRequest(Body):
    topic: int = TopicId
    into: int = Field(..., ge=0, le=BIG, description="The topic that absorbs it.")


class UnmergeRequest(Body):
    topic: int = TopicId


@router.put("/datasets/{name}/topics/{run_id}/{topic}/name", tags=["topics"],
            summary="Name a topic of a discovery run (a person's name replaces the discovered one)", **role("editor"))
def rename(request: Request, name: str, run_id: Id, topic: Annotated[int, Path(ge=0, le=BIG)],
           body: RenameRequest) -> dict:
    return topics_service.rename_topic(ws_of(request), name, run_id, topic, body.name)


@router.post("/datasets/{name}/topics/{run_id}/merges", tags=["topics"],
             summary="Merge one topic into another within a discovery run (undo: .../unmerge)", **role("editor"))
def merge(request: Request, name: str, run_id: Id, body: MergeRequest) -> dict:
    return topics_service.merge_topics(ws_of(request), name, run_id, topic=body.topic, into=body.into)


@router.post("/datasets/{name}/topics/{run_id}/unmerge", tags=["topics"],
             summary="Undo the merge of a topic: it is a topic of its own again", **role("editor"))
def unmerge(request: Request, name: str, run_id: Id, body: UnmergeRequest) -> dict:
    return topics_service.unmerge_topic(ws_of(request), name, run_id, body.topic)


@router.get("/datasets/{name}/queue", tags=["labels"],
            summary="The unlabelled documents most worth labelling next (uncertainty or diversity)", **role("viewer"))
def queue(request: Request, name: str,
          model: str | None = Query(None, max_length=300, description="A classifier version (NAME@N); default: the "
                                    "newest trained on this dataset."),
          strategy: Literal["auto", "uncertainty", "diversity"] = "auto",
          limit: int = Query(20, ge=1, le=200),
          exclude: str | None = Query(None, max_length=20_000, description="Comma-separated doc_ids to leave out "
                                      "(e.g. the ones skipped)."),
          seed: int = Query(0, ge=0, le=2**31 - 1),
          label_col: str | None = Query(None, max_length=200, description="The label column (default: the ingest's)."),
          candidate: str | None = Query(None, max_length=40, description="RUN:CANDIDATE: only the documents of this "
                                        "candidate new category (a pipeline run's candidates), to confirm them.")
          ) -> dict:
    ids: list[int] = []
    for part in (exclude or "").split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or len(part) > 18:
            raise UsageError(f"exclude must be comma-separated doc_ids (integers), found {part[:40]!r}.",
                             fix="e.g. exclude=12,40,41")
        ids.append(int(part))
    ws = ws_of(request)
    among = candidates_service.candidate_docs(ws, name, candidate) if candidate else None
    out = topics_service.suggest(ws, name, model=model or None, strategy=strategy, limit=limit, exclude=ids,
                                 seed=seed, label_col=label_col or None, among=among).to_dict()
    return {**out, "candidate": candidate, "candidate_documents": None if among is None else len(among)}


class CandidateLabelRequest(Body):
    label_col: str = Field(..., min_length=1, max_length=200,
                           description="The label set to add the label to (created when new), e.g. new_intents.")
    label: str | None = Field(None, min_length=1, max_length=200,
                              description="The label's name; default: the candidate's name.")


@router.post("/datasets/{name}/candidates/{run_id}/{candidate}/label", tags=["labels"],
             summary="Make a candidate new category a label and open the labelling queue on its documents",
             **role("editor"))
def label_candidate(request: Request, name: str, run_id: Id, candidate: Annotated[int, Path(ge=0, le=BIG)],
                    body: CandidateLabelRequest) -> dict:
    """Adds ``label`` to the label set ``label_col`` and answers where the queue of the candidate's documents is
    (``queue``: this API's query; ``ui``: the Label screen). Nothing is labelled until a person confirms."""
    return candidates_service.label_candidate(ws_of(request), name, run_id, candidate, label_col=body.label_col,
                                              label=body.label)


@router.get("/datasets/{name}/candidates/labels", tags=["labels"],
            summary="Labels made from candidate new categories (newest first)", **role("viewer"))
def candidate_labels(request: Request, name: str,
                     label_col: str | None = Query(None, max_length=200, description="Only this label set.")) -> dict:
    ws = ws_of(request)
    ws.dataset(name)  # NotFound naming the datasets there are
    return {"dataset": name, "labels": candidates_service.candidate_labels(ws, name, label_col)}
