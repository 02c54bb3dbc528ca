"""OAuth 2.0 client credentials (RFC 6749 section 4.4) and Bearer authentication.

Access tokens are short-lived JWTs signed with a key kept in the data directory, so they
survive a restart of the daemon. A revoked client is refused within `CLIENT_CACHE_S`.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web

from edge.api.problems import ProblemError
from edge.ledger.ledger import Ledger
from edge.ledger.people import Client, secret_matches

CLIENT_CACHE_S = 5.0
ISSUER = "edge-gateway"


@dataclass(frozen=True)
class Principal:
    client_id: str
    role: str


def load_signing_key(data_dir: Path) -> bytes:
    """The token signing key, created on first start with owner-only permissions."""
    path = data_dir / "token-signing.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
            f.flush()
            os.fsync(f.fileno())
    return path.read_bytes()


class Authenticator:
    def __init__(self, ledger: Ledger, key: bytes, ttl_s: int) -> None:
        self._ledger = ledger
        self._key = key
        self._ttl = ttl_s
        self._cache: dict[str, tuple[float, Client | None]] = {}

    async def _client(self, client_id: str) -> Client | None:
        now = time.monotonic()
        hit = self._cache.get(client_id)
        if hit is not None and now - hit[0] < CLIENT_CACHE_S:
            return hit[1]
        client = await self._ledger.client(client_id)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[client_id] = (now, client)
        return client

    async def token_endpoint(self, request: web.Request) -> web.Response:
        """POST /oauth/token: form grant_type=client_credentials, client by HTTP Basic."""
        client_id, secret = _basic_credentials(request)
        form = await request.post()
        if client_id is None:
            client_id = _form_str(form, "client_id")
            secret = _form_str(form, "client_secret")
        client = await self._client(client_id) if client_id else None
        if (
            client is None
            or client.revoked
            or not secret
            or not secret_matches(secret, client.secret_hash)
        ):
            return web.json_response(
                {"error": "invalid_client", "error_description": "unknown client or bad secret"},
                status=401,
                headers={
                    "WWW-Authenticate": 'Basic realm="edge-gateway"',
                    "Cache-Control": "no-store",
                },
            )
        if form.get("grant_type") != "client_credentials":
            return web.json_response(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "only client_credentials is supported",
                },
                status=400,
                headers={"Cache-Control": "no-store"},
            )
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": client.client_id,
            "role": client.role,
            "iat": now,
            "exp": now + self._ttl,
            "jti": secrets.token_hex(8),
        }
        token = jwt.encode(claims, self._key, algorithm="HS256")
        return web.json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self._ttl,
                "scope": client.role,
            },
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    async def authenticate(self, request: web.Request) -> Principal:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("send Authorization: Bearer <token> from POST /oauth/token")
        try:
            claims: dict[str, Any] = jwt.decode(
                token.strip(),
                self._key,
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"require": ["exp", "sub", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("the access token has expired", "invalid_token") from None
        except jwt.InvalidTokenError:
            raise _unauthorized("the access token is not valid", "invalid_token") from None
        client = await self._client(str(claims["sub"]))
        if client is None or client.revoked:
            raise _unauthorized("this client has been revoked", "invalid_token")
        return Principal(client.client_id, client.role)


def _form_str(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def _basic_credentials(request: web.Request) -> tuple[str | None, str | None]:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else (None, None)


def _unauthorized(detail: str, error: str | None = None) -> ProblemError:
    challenge = 'Bearer realm="edge-gateway"' + (f', error="{error}"' if error else "")
    return ProblemError("unauthorized", detail, headers={"WWW-Authenticate": challenge})


def require_role(principal: Principal, roles: frozenset[str]) -> None:
    if principal.role not in roles and principal.role != "admin":
        raise ProblemError(
            "forbidden",
            f"the {principal.role} role may not do this (needs {', '.join(sorted(roles))})",
        )
