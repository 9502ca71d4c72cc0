"""Sign-in for browsers: a token buys a session, kept in an HttpOnly, SameSite=Strict cookie.

``POST /session`` takes the token in the JSON body (never in the URL), checks
it, and answers with a cookie holding a fresh random session secret, not the
token: the session expires (``expires_in`` seconds), ends at sign-out
(``DELETE /session`` revokes it on the server, not only in the browser) and
when its token is revoked. The cookie is ``Secure`` when the request came
over TLS, directly (``inhouse serve --ssl-certfile``) or through a proxy the
server trusts (``--trusted-proxy``). Requests signed by the cookie that change
something must also carry ``X-Inhouse-Client`` (see :mod:`inhouse.server.auth`),
so another site's form cannot use a signed-in browser.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import Field

from . import tokens
from .auth import COOKIE, cookie_token
from .common import Body, ws_of
from .errors import ApiError

router = APIRouter()
MAX_AGE = tokens.SESSION_SECONDS


class SignIn(Body):
    token: str = Field(..., min_length=1, max_length=200, description="An API token (inhouse tokens create).")


@router.post("/session", tags=["server"], summary="Sign in: exchange a token for an expiring session cookie")
def sign_in(request: Request, response: Response, body: SignIn) -> dict:
    ws = ws_of(request)
    t = tokens.verify_token(ws, body.token.strip())
    if t is None:
        raise ApiError(401, "the token is unknown or revoked.", fix="Paste the whole token (it starts with ih_), "
                       "or ask an admin for a new one: inhouse tokens create NAME --role viewer")
    secret, _ = tokens.create_session(ws, t, MAX_AGE)
    response.set_cookie(COOKIE, secret, max_age=MAX_AGE, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    return {"name": t.name, "role": t.role, "expires_in": MAX_AGE}


@router.delete("/session", tags=["server"], summary="Sign out: end the session and forget its cookie")
def sign_out(request: Request, response: Response) -> dict:
    secret = cookie_token(dict(request.scope.get("headers") or []))
    ended = False
    if secret:
        ended = tokens.revoke_session(ws_of(request), secret)
        request.app.state.token_cache.forget(secret)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return {"signed_out": True, "session_ended": ended}
