"""What training changed in a version's weights (the web UI's Train and Deploy screens use it, as can anyone)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from .auth import role
from .common import ws_of

router = APIRouter()


@router.get("/versions/{ref}/weights", tags=["models"], summary="How far training moved the weights, per layer",
            **role("viewer"))
def version_weights(request: Request, ref: str,
                    against: str | None = Query(None, max_length=300, description="A base model or another version "
                                                "(default: the version's own base)."),
                    tensors: bool = Query(False, description="Also list every tensor (long for full fine-tunes).")) -> dict:
    """Relative change ``||W_tuned - W_base|| / ||W_base||`` per encoder layer and overall, the share of weights
    that moved, LoRA adapters' ranks and norms, and the classifier head's norms. For ``head`` versions the
    encoder is the frozen base: 0 change, and ``classes`` lists what pulls hardest toward each class."""
    from ..analysis.explain import weight_changes

    if len(ref) > 300:
        from ..errors import UsageError

        raise UsageError(f"the version reference is {len(ref)} characters long; expected at most 300.",
                         fix="Use NAME, NAME@N or NAME@ALIAS.")
    out = weight_changes(ws_of(request), ref, against)
    if not tensors:
        out.pop("tensors", None)
    return out
