"""Sign-in for browsers: a token becomes an HttpOnly, SameSite=Strict session cookie.

``POST /session`` takes the token in the JSON body (never in the URL), checks
it, and answers with the cookie; the web UI's scripts never see the token
again. Requests signed by the cookie that change something must also carry
``X-Inhouse-Client`` (see :mod:`inhouse.server.auth`), so another site's
form cannot use a signed-in browser. ``DELETE /session`` signs out.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import Field

from . import tokens
from .auth import COOKIE
from .common import Body, ws_of
from .errors import ApiError

router = APIRouter()
MAX_AGE = 12 * 3600


class SignIn(Body):
    token: str = Field(..., min_length=1, max_length=200, description="An API token (inhouse tokens create).")


@router.post("/session", tags=["server"], summary="Sign in: exchange a token for a session cookie")
def sign_in(request: Request, response: Response, body: SignIn) -> dict:
    t = tokens.verify_token(ws_of(request), body.token.strip())
    if t is None:
        raise ApiError(401, "the token is unknown or revoked.", fix="Paste the whole token (it starts with ih_), "
                       "or ask an admin for a new one: inhouse tokens create NAME --role viewer")
    response.set_cookie(COOKIE, body.token.strip(), max_age=MAX_AGE, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    return {"name": t.name, "role": t.role, "expires_in": MAX_AGE}


@router.delete("/session", tags=["server"], summary="Sign out: forget the session cookie")
def sign_out(response: Response) -> dict:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return {"signed_out": True}
