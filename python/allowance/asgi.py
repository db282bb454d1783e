"""A plain ASGI middleware that admits a request to a tool endpoint only with a valid credential
(spec/presentation.md §8): usable with any ASGI server or framework (Starlette, FastAPI, ...).

The verified chain reaches the application as ``scope["allowance"]``, an :class:`AllowanceContext`.
A refused credential is answered 401 or 403 with an RFC 9457 problem body, and the application is
not called. Anything else that goes wrong (a clock that answers nonsense, a replay cache that
fails) propagates as an exception: a server error, never a request served.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Container, Mapping

from ._inputs import MAX_AGE_SECONDS, MAX_SKEW_SECONDS, checked_clock, checked_integer, read_clock
from .errors import (
    ERR_AUDIENCE,
    ERR_MALFORMED,
    ERR_NO_CREDENTIALS,
    ERR_PRESENTATION,
    AllowanceError,
)
from .limits import Limits, resolve_limits
from .presentation import PRESENTATION_PREFIX, PresentationClaims, verify_presentation
from .token import TOKEN_PREFIX
from .verify import VerifiedChain, verify

AUTH_SCHEME = "Allowance"
_HEADER = re.compile(r"([A-Za-z][A-Za-z0-9-]*) +(\S+) *")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AllowanceContext:
    """What a handler learns about an authorized request."""

    chain: VerifiedChain
    #: Present when the request carried a presentation.
    presentation: PresentationClaims | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    status: int
    error: AllowanceError
    headers: tuple[tuple[str, str], ...]
    body: dict[str, Any]


class Authorizer:
    """The transport-neutral check (spec/presentation.md §8.1). ``now`` is a clock returning epoch
    **milliseconds** (like ``time.time_ns() // 1_000_000``); it is read once per request."""

    def __init__(
        self,
        *,
        roots: Mapping[str, bytes],
        audience: str,
        require_presentation: bool = True,
        skew_seconds: int | None = None,
        max_age_seconds: int | None = None,
        revocations: Container[str] | None = None,
        replay: Any = None,
        limits: Limits | None = None,
        now: Callable[[], int | float] | None = None,
    ) -> None:
        if not isinstance(audience, str) or audience == "":
            raise TypeError('"audience" is required: the endpoint must know its own name')
        if not isinstance(require_presentation, bool):
            raise TypeError('"require_presentation" expected a bool')
        if not isinstance(roots, Mapping):
            raise TypeError('"roots" expected a mapping of kid to key')
        if replay is not None and not callable(getattr(replay, "claim", None)):
            raise TypeError('"replay" expected an object with a claim method')
        # Checked here, so that a bad option fails at start-up rather than on the first request.
        checked_integer(skew_seconds, "skew_seconds", 0, MAX_SKEW_SECONDS)
        checked_integer(max_age_seconds, "max_age_seconds", 0, MAX_AGE_SECONDS)
        self.audience = audience
        self._options = {
            "roots": roots,
            "skew_seconds": skew_seconds,
            "revocations": revocations,
            "limits": resolve_limits(limits),
        }
        self._max_age = max_age_seconds
        self._replay = replay
        self._require_presentation = require_presentation
        self._clock = checked_clock(now)

    async def authorize(
        self, authorization: str | None, method: str, path: str
    ) -> AllowanceContext | Rejection:
        # Read and checked first, once: a broken clock serves nothing (the error propagates).
        seconds = read_clock(self._clock)
        now = (
            lambda: seconds * 1000
        )  # noqa: E731 - the one reading, for the token and the presentation
        try:
            credential = _credential(authorization)
            if credential.startswith(PRESENTATION_PREFIX):
                verified = await verify_presentation(
                    credential,
                    audience=self.audience,
                    method=method,
                    path=path,
                    now=now,
                    max_age_seconds=self._max_age,
                    replay=self._replay,
                    **self._options,
                )
                return AllowanceContext(verified.chain, verified.claims)
            if credential.startswith(TOKEN_PREFIX):
                if self._require_presentation:
                    raise AllowanceError(
                        ERR_PRESENTATION, "a presentation is required, not a bare token"
                    )
                chain = verify(credential, audience=self.audience, now=now, **self._options)
                return AllowanceContext(chain)
            raise AllowanceError(
                ERR_MALFORMED, "the credential is neither a token nor a presentation"
            )
        except AllowanceError as error:
            return rejection(error, self.audience)


def _credential(authorization: str | None) -> str:
    if not authorization:
        raise AllowanceError(ERR_NO_CREDENTIALS, "no Authorization header")
    match = _HEADER.fullmatch(authorization)
    if match is None or match.group(1).lower() != AUTH_SCHEME.lower():
        raise AllowanceError(
            ERR_NO_CREDENTIALS, f"expected Authorization: {AUTH_SCHEME} <credential>"
        )
    return match.group(2)


def _quoted(text: str) -> str:
    return "".join(c for c in text if " " <= c <= "~" and c not in '"\\')[:200]


def rejection(error: AllowanceError, audience: str) -> Rejection:
    """The response of spec/presentation.md §8.2: 403 for ERR_AUDIENCE, 401 otherwise."""
    status = 403 if error.code == ERR_AUDIENCE else 401
    body = {
        "type": f"urn:allowance:error:{error.code}",
        "title": "Credential not valid for this endpoint"
        if status == 403
        else "Credential rejected",
        "status": status,
        "code": error.code,
        "linkIndex": error.link_index,
        "detail": error.message,
    }
    challenge = (
        f'{AUTH_SCHEME} realm="{_quoted(audience)}", error="{error.code}", '
        f'error_description="{_quoted(error.message)}"'
    )
    headers = (
        ("content-type", "application/problem+json"),
        ("cache-control", "no-store"),
        ("www-authenticate", challenge),
    )
    return Rejection(status, error, headers, body)


class AllowanceMiddleware:
    """ASGI middleware: ``AllowanceMiddleware(app, roots=..., audience=...)``, or with Starlette /
    FastAPI ``app.add_middleware(AllowanceMiddleware, roots=..., audience=...)``. Wrap only the
    tool endpoints (mount them as their own app) if the rest of the application is public.

    The method and path checked are the request's as it arrived (§8.1): the ASGI ``raw_path`` up to
    any ``?`` (the path before percent-decoding), or ``path`` if the server gives no ``raw_path``.
    """

    def __init__(self, app: ASGIApp, **options: Any) -> None:
        self.app = app
        authorizer = options.pop("authorizer", None)
        if authorizer is None:
            self.authorizer = Authorizer(**options)
        elif options or not isinstance(authorizer, Authorizer):
            raise TypeError("give an Authorizer, or its options, not both")
        else:
            self.authorizer = authorizer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, send)
            return
        # Fail closed: a WebSocket on a protected app is authorized like a request; any other kind
        # of connection is not served at all.
        if kind not in ("http", "websocket"):
            raise RuntimeError(f"AllowanceMiddleware does not serve ASGI {kind!r} connections")
        authorization = None
        for name, value in scope.get("headers", ()):
            if name.lower() == b"authorization":
                if authorization is not None:  # two headers: not one credential
                    authorization = ""
                    break
                authorization = value.decode("latin-1")
        raw_path = scope.get("raw_path")
        path = (
            raw_path.split(b"?", 1)[0].decode("latin-1") if raw_path is not None else scope["path"]
        )
        method = scope.get("method", "GET")  # a WebSocket opens with a GET
        result = await self.authorizer.authorize(authorization, method, path)
        if isinstance(result, Rejection) and kind == "websocket":
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008, "reason": result.error.code})
            return
        if isinstance(result, Rejection):
            body = json.dumps(result.body, separators=(",", ":")).encode()
            headers = [(k.encode(), v.encode("latin-1")) for k, v in result.headers]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": result.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        scope = dict(scope)
        scope["allowance"] = result
        await self.app(scope, receive, send)
