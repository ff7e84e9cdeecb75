"""API tokens: random, shown once, stored only as their sha256.

A token is ``pkgvet_`` followed by 43 URL-safe characters (32 random bytes). Clients send it as
``Authorization: Bearer <token>`` (or ``X-API-Token: <token>``). Write endpoints depend on
:func:`require_token`: no token or an unknown one is 401, a revoked one 403. Reads are open.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request, status

if TYPE_CHECKING:
    from pkgvet.service.db import ServiceStore, Token

PREFIX = "pkgvet_"


def hash_token(token: str) -> str:
    """The sha256 (hex) under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token."""
    return PREFIX + secrets.token_urlsafe(32)


def create_token(store: ServiceStore, name: str) -> str:
    """Create a token named ``name`` and return its value: the only time it is ever seen (only
    its hash is stored)."""
    if not name.strip():
        raise ValueError("a token needs a name")
    token = new_token()
    store.add_token(name.strip(), hash_token(token))
    return token


def token_from_request(request: Request) -> str | None:
    """The token a request carries, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    alt = request.headers.get("x-api-token", "").strip()
    return alt or None


def require_token(request: Request) -> Token:
    """FastAPI dependency of the write endpoints: the request's valid token record, else 401
    (missing or unknown) or 403 (revoked)."""
    store: ServiceStore = request.app.state.store
    token = token_from_request(request)
    if token is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "an API token is required: send 'Authorization: Bearer <token>' "
            "(create one with 'pkgvet serve token create NAME')",
            headers={"WWW-Authenticate": "Bearer"},
        )
    record = store.token_by_hash(hash_token(token))
    if record is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown API token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not record.active:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this API token was revoked")
    return record
