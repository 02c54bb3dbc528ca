"""OAuth 2.0 client credentials (RFC 6749 section 4.4) and Bearer authentication.

Access tokens are short-lived JWTs signed with a key kept in the data directory, so they
survive a restart of the daemon. A revoked client is refused within `CLIENT_CACHE_S`.
A lane-bound client's token carries a `lane` claim, and its requests carry that lane.

A register sends the same token with every request until it expires, so a token whose
signature and claims were checked once is remembered until its `exp`: the next request
with it costs a dictionary look-up instead of a JWT decode. What can change while a token
is valid is checked on every request, as before: whether its client is revoked or bound
to another lane.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jwt
from aiohttp import web

from edge.api.body import read_body
from edge.api.problems import ProblemError
from edge.errors import ApiError
from edge.ledger.ledger import Ledger
from edge.ledger.people import Client, secret_matches

CLIENT_CACHE_S = 5.0
ISSUER = "edge-gateway"
MAX_KNOWN_TOKENS = 10_000
# Why authentication failed, as /metrics counts it (edge_auth_failures_total{reason}).
FAILURE_REASONS = (
    "bad-client-credentials",  # POST /oauth/token: unknown or revoked client, wrong secret
    "missing-token",
    "invalid-token",  # not ours, tampered with, or issued for another lane binding
    "expired-token",
    "revoked-client",
)


@dataclass(frozen=True, slots=True)
class _Verified:
    """A token that passed the JWT checks: what the request needs of its claims."""

    expires_at: float  # `exp`, seconds since the epoch
    client_id: str
    lane: object  # the `lane` claim as sent (None when absent)


@dataclass(frozen=True)
class Principal:
    client_id: str
    role: str
    lane: str | None = None  # a lane-bound register or handheld: its one lane


FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 16


def load_signing_key(data_dir: Path) -> bytes:
    """The token signing key, created on first start with owner-only permissions.

    A key left readable by others by an older version or a copy is tightened to 0600.
    """
    path = data_dir / "token-signing.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
            f.flush()
            os.fsync(f.fileno())
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return path.read_bytes()


class OAuthError(ApiError):
    """An RFC 6749 section 5.2 error: the token endpoint answers these as JSON, not problems."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> web.Response:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="edge-gateway"'
        return web.json_response(
            {"error": self.error, "error_description": self.description},
            status=self.status,
            headers=headers,
        )


class Authenticator:
    def __init__(self, ledger: Ledger, key: bytes, ttl_s: int) -> None:
        self._ledger = ledger
        self._key = key
        self._ttl = ttl_s
        self._cache: dict[str, tuple[float, Client | None]] = {}
        self._tokens: dict[str, _Verified] = {}
        self.failures: Counter[str] = Counter()  # by FAILURE_REASONS, read by /metrics

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
        try:
            client = await self._token_client(request)
        except OAuthError as exc:
            return exc.response()
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": client.client_id,
            "role": client.role,
            "iat": now,
            "exp": now + self._ttl,
            "jti": secrets.token_hex(8),
        }
        if client.lane is not None:  # lets the register see which lane it serves
            claims["lane"] = client.lane
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

    async def _token_client(self, request: web.Request) -> Client:
        """The authenticated client asking for a client_credentials token."""
        form = await _token_form(request)
        client_id, secret = _basic_credentials(request)
        if client_id is None:
            client_id, secret = form.get("client_id"), form.get("client_secret")
        client = await self._client(client_id) if client_id else None
        if (
            client is None
            or client.revoked
            or not secret
            or not secret_matches(secret, client.secret_hash)
        ):
            self.failures["bad-client-credentials"] += 1
            raise OAuthError("invalid_client", "unknown client or bad secret", 401)
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", "only client_credentials is supported")
        return client

    async def authenticate(self, request: web.Request) -> Principal:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            self.failures["missing-token"] += 1
            raise _unauthorized("send Authorization: Bearer <token> from POST /oauth/token")
        if not token.isascii():  # our tokens are ASCII; other bytes would fail to encode
            self.failures["invalid-token"] += 1
            raise _unauthorized("the access token is not valid", "invalid_token")
        token = token.strip()
        verified = self._tokens.get(token)
        # Valid while `exp` is ahead of the clock, as PyJWT decides (no leeway).
        if verified is None or verified.expires_at <= time.time():
            verified = self._verify(token)
        client = await self._client(verified.client_id)
        if client is None or client.revoked:
            self.failures["revoked-client"] += 1
            raise _unauthorized("this client has been revoked", "invalid_token")
        if verified.lane != client.lane:  # issued for another binding: get a new token
            self.failures["invalid-token"] += 1
            raise _unauthorized("the access token is not valid", "invalid_token")
        return Principal(client.client_id, client.role, client.lane)

    def _verify(self, token: str) -> _Verified:
        """Decode and check the token (signature, issuer, expiry), and remember it."""
        self._tokens.pop(token, None)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"require": ["exp", "sub", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            self.failures["expired-token"] += 1
            raise _unauthorized("the access token has expired", "invalid_token") from None
        except jwt.InvalidTokenError:
            self.failures["invalid-token"] += 1
            raise _unauthorized("the access token is not valid", "invalid_token") from None
        verified = _Verified(float(claims["exp"]), str(claims["sub"]), claims.get("lane"))
        if len(self._tokens) >= MAX_KNOWN_TOKENS:
            now = time.time()
            self._tokens = {t: v for t, v in self._tokens.items() if v.expires_at > now}
            if len(self._tokens) >= MAX_KNOWN_TOKENS:
                self._tokens.clear()
        self._tokens[token] = verified
        return verified


async def _token_form(request: web.Request) -> dict[str, str]:
    """The token request's form (RFC 6749 appendix B: UTF-8, url-encoded, no repeats)."""
    if request.content_type != FORM_TYPE:
        raise OAuthError("invalid_request", f"send the token request as {FORM_TYPE}")
    raw = await read_body(request)
    try:
        pairs = parse_qsl(
            raw.decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS,
            errors="strict",
        )
    except ValueError:  # not UTF-8, bad percent-escapes, or too many fields
        raise OAuthError("invalid_request", "the form is not UTF-8 url-encoded") from None
    form = dict(pairs)
    if len(form) != len(pairs):
        raise OAuthError("invalid_request", "a parameter is repeated")
    return form


def _basic_credentials(request: web.Request) -> tuple[str | None, str | None]:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:  # a header that is not ASCII fails base64 with ValueError
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, ValueError):
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
