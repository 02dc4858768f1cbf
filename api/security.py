"""Who may change the line: a bearer token for every mutating endpoint.

Reading the twin is open; sending commands, applying a recommendation,
training and what-if runs change the line or load the machine, so they need
``Authorization: Bearer <token>`` with the token from settings
(``FACTORY_TWIN_API_TOKEN``). Missing credentials get 401 (with
``WWW-Authenticate: Bearer``), a wrong token 403; tokens are compared in
constant time.

A token that is empty, shorter than ``MIN_TOKEN_LENGTH`` or still a
placeholder from the examples (``change-me...``) is refused at start, unless
the run is a local demo (``factory-twin up --demo``, what ``make run`` does):
then a random token is made when none is set, and printed once.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import get_api_token

MIN_TOKEN_LENGTH = 16
PLACEHOLDER_PREFIX = "change-me"

_bearer = HTTPBearer(auto_error=False, description="FACTORY_TWIN_API_TOKEN")


class TokenError(ValueError):
    """The configured token cannot protect the API; the message says why."""


def check_token(token: str | None) -> str:
    """The token, if it may guard a real deployment; else ``TokenError``."""
    if not token:
        raise TokenError(
            "FACTORY_TWIN_API_TOKEN is not set: mutating endpoints need a token. Set one "
            "(for example: openssl rand -hex 32), or run a local demo with --demo"
        )
    if token.lower().startswith(PLACEHOLDER_PREFIX):
        raise TokenError(
            "FACTORY_TWIN_API_TOKEN is still the example's placeholder: replace it "
            "(for example: openssl rand -hex 32)"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise TokenError(
            f"FACTORY_TWIN_API_TOKEN is {len(token)} characters: use at least "
            f"{MIN_TOKEN_LENGTH} (for example: openssl rand -hex 32)"
        )
    return token


def demo_token() -> str:
    """A fresh random token for a local demo."""
    return secrets.token_urlsafe(24)


def require_token(
    expected: Annotated[str | None, Depends(get_api_token)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """The dependency of every mutating endpoint."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status_code=401,
            detail="this endpoint needs Authorization: Bearer <FACTORY_TWIN_API_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if expected is None:
        raise HTTPException(
            status_code=403, detail="mutating endpoints are off: the API has no token"
        )
    if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(status_code=403, detail="wrong token")


TokenDep = Depends(require_token)
# What a mutating endpoint may answer before its own work: documented on each.
MUTATING_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not JSON"},
    401: {"description": "No bearer token"},
    403: {"description": "Wrong token, or the API has none"},
    413: {"description": "The body is over the request size limit"},
}

__all__ = ["MIN_TOKEN_LENGTH", "TokenDep", "TokenError", "check_token", "demo_token"]
