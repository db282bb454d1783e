"""Proof of possession (spec/presentation.md): the leaf holder signs the token hash, the audience,
optionally the HTTP method, path and body hash, a time and a one-time id."""

from __future__ import annotations

import hashlib
import inspect
import re
import secrets
import threading
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Container, Mapping, Protocol, Union

from . import _cbor, _ed25519
from ._b64 import b64decode, b64encode
from ._inputs import (
    MAX_AGE_SECONDS,
    MAX_SAFE_INTEGER,
    MAX_SKEW_SECONDS,
    checked_audience,
    checked_integer,
    checked_optional_string,
    checked_revocations,
    checked_roots,
    checked_now,
)
from .errors import (
    ERR_AUDIENCE,
    ERR_LIMIT,
    ERR_MALFORMED,
    ERR_PRESENTATION,
    ERR_REPLAY,
    ERR_STALE,
    AllowanceError,
)
from .grant import AUDIENCE
from .keys import KeyPair
from .limits import Limits, resolve_limits
from .token import Token, encode_token, parse_binary, parse_token, text_size
from .verify import DEFAULT_SKEW_SECONDS, VerifiedChain, _verify

PRESENTATION_PREFIX = "alwp1_"
PRESENTATION_CONTEXT = b"allowance-presentation-v1\x00"
DEFAULT_MAX_AGE_SECONDS = 60
MAX_PAYLOAD_BYTES = 2048
METHOD = re.compile(r"[A-Z]{1,16}")
PATH = re.compile(r"/[\x21-\x7e]{0,1023}")
_TH, _AUD, _IAT, _JTI, _METHOD, _PATH, _BH = range(1, 8)

#: A request body as sent and received (§3.4): bytes, or text taken as its UTF-8.
Body = Union[bytes, bytearray, str]
#: A body given to the verifier: the body, or a function answering it (or an awaitable of it),
#: called only when the presentation binds a body.
BodySource = Union[Body, Callable[[], Union[Body, Awaitable[Body]]]]


@dataclass(frozen=True, slots=True)
class PresentationClaims:
    aud: str
    iat: int
    #: The one-time id, base64url.
    jti: str
    method: str | None = None
    path: str | None = None
    #: SHA-256 of the bound request body (``bh``, §3.4), base64url; None when no body is bound.
    body_hash: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"aud": self.aud, "iat": self.iat, "jti": self.jti}
        if self.method is not None:
            out["method"] = self.method
        if self.path is not None:
            out["path"] = self.path
        if self.body_hash is not None:
            out["bodyHash"] = self.body_hash
        return out


@dataclass(frozen=True, slots=True)
class VerifiedPresentation:
    chain: VerifiedChain
    claims: PresentationClaims


class ReplayCache(Protocol):
    def claim(self, id: str, expires_at: int, now: int) -> bool:
        """Atomically: False if ``id`` is held with an expiry after ``now``; else record it until
        ``expires_at`` and return True (spec/presentation.md §5.1)."""
        ...


class MemoryReplayCache:
    """An in-process replay cache (spec/presentation.md §5.4) that fails closed when full."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._max_entries = checked_integer(
            max_entries, "max_entries", 1_000_000, MAX_SAFE_INTEGER, 1
        )
        self._ids: dict[str, int] = {}
        self._swept_at = -1  # the `now` of the last sweep; every `now` is >= 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids)

    def claim(self, id: str, expires_at: int, now: int) -> bool:
        # An empty id is no one-time id (as in the TypeScript and Redis caches).
        if not isinstance(id, str) or id == "":
            raise TypeError(f'"id" expected a non-empty string, got {id!r}')
        for name, value in (("expires_at", expires_at), ("now", now)):
            # A NaN now would make every recorded id look expired, and so replayable.
            checked_integer(value, name, 0, MAX_SAFE_INTEGER)
        with self._lock:
            held = self._ids.get(id)
            if held is not None and held > now:
                return False
            # A full cache is swept at most once per second of `now` (as in TypeScript), so a
            # flood of claims cannot make every one of them scan the whole cache under the lock.
            if len(self._ids) >= self._max_entries and now > self._swept_at:
                self._swept_at = now
                for key in [k for k, v in self._ids.items() if v <= now]:
                    del self._ids[key]
            if id not in self._ids and len(self._ids) >= self._max_entries:
                return False  # evicting a live id instead would allow a replay
            self._ids[id] = expires_at
            return True


#: The process's replay cache, for every verifier given none. Verifiers sharing a cache must hold
#: an id for the same window (spec/presentation.md §5.3), and these may be configured with
#: different ones: ids in it are held for the widest window any verifier can have.
_default_replay = MemoryReplayCache()
DEFAULT_REPLAY_WINDOW_SECONDS = MAX_AGE_SECONDS + MAX_SKEW_SECONDS


def ascii_upper(text: str) -> str:
    """Upper case in ASCII only (spec/presentation.md §4 step 7): ``str.upper`` maps "ſ" to "S"."""
    return text.translate(_ASCII_UPPER)


_ASCII_UPPER = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}


def body_hash(body: Any, name: str = "body") -> bytes:
    """SHA-256 of a request body (§3.4): bytes as they are, a string as its UTF-8. A string with a
    lone surrogate has no UTF-8, so it is a TypeError rather than some other body's hash."""
    if isinstance(body, (bytes, bytearray)):
        return hashlib.sha256(body).digest()
    if isinstance(body, str):
        try:
            return hashlib.sha256(body.encode("utf-8")).digest()
        except UnicodeEncodeError:
            raise TypeError(
                f"{name!r} is a string with a lone surrogate: it has no UTF-8"
            ) from None
    raise TypeError(f"{name!r} expected bytes or a string, got {type(body).__name__}")


def present(
    token: str | bytes | Token,
    holder_key: KeyPair,
    *,
    aud: str,
    method: str | None = None,
    path: str | None = None,
    body: Body | None = None,
    now: Callable[[], int] | None = None,
    jti: bytes | None = None,
) -> str:
    """Makes a presentation: the value to send as ``Authorization: Allowance <value>``. ``body``
    binds the request body (§3.4): the exact bytes that will be sent, or a string sent as its UTF-8.
    It does not check that ``holder_key`` is the leaf holder: every verifier refuses another key's
    signature."""
    if not isinstance(holder_key, KeyPair):
        raise TypeError('"holder_key" expected a KeyPair')
    iat = checked_now(now)
    if not isinstance(aud, str):
        raise TypeError('"aud" expected a string')
    if AUDIENCE.fullmatch(aud) is None:
        raise ValueError('"aud" must be 1 to 256 printable ASCII characters, no space')
    claims: dict[int, Any] = {}
    if method is not None:
        if not isinstance(method, str):
            raise TypeError('"method" expected a string')
        method = ascii_upper(method)
        if METHOD.fullmatch(method) is None:
            raise ValueError('"method" must be 1 to 16 ASCII letters')
        claims[_METHOD] = method
    if path is not None:
        if not isinstance(path, str):
            raise TypeError('"path" expected a string')
        if PATH.fullmatch(path) is None:
            raise ValueError('"path" must start with "/" and be printable ASCII, no space or query')
        claims[_PATH] = path
    if body is not None:
        claims[_BH] = body_hash(body)
    if jti is None:
        jti = secrets.token_bytes(16)
    elif not isinstance(jti, (bytes, bytearray)):
        raise TypeError('"jti" expected bytes')
    elif not 16 <= len(jti) <= 32:
        raise ValueError(f'"jti" expected 16 to 32 bytes, got {len(jti)}')
    token_bytes = encode_token(parse_token(token, resolve_limits(None)))
    claims.update(
        {_TH: hashlib.sha256(token_bytes).digest(), _AUD: aud, _IAT: iat, _JTI: bytes(jti)}
    )
    payload = _cbor.encode(claims)
    signature = _ed25519.sign(holder_key.seed, PRESENTATION_CONTEXT + payload)
    return PRESENTATION_PREFIX + b64encode(_cbor.encode([token_bytes, payload, signature]))


async def verify_presentation(
    presentation: str,
    *,
    roots: Mapping[str, bytes],
    audience: str,
    method: str | None = None,
    path: str | None = None,
    body: BodySource | None = None,
    require_body_binding: bool = False,
    now: Callable[[], int] | None = None,
    skew_seconds: int | None = None,
    max_age_seconds: int | None = None,
    revocations: Container[str] | None = None,
    limits: Limits | None = None,
    replay: Any = None,
) -> VerifiedPresentation:
    """Verifies a presentation (spec/presentation.md §4). ``replay.claim`` may be synchronous or
    a coroutine (a shared store); the default is one in-memory cache for the whole process, which
    holds each id until ``iat + 3600 + 3600`` whatever this call's window (§5.3).

    ``body`` is the request body (bytes, or a string as its UTF-8), or a function answering it or
    an awaitable of it, called only if the presentation binds a body (§4 step 8b). With
    ``require_body_binding``, a presentation that binds no body is refused."""
    return await _verify_presentation(
        presentation,
        roots,
        audience,
        method,
        path,
        body,
        require_body_binding,
        now,
        skew_seconds,
        max_age_seconds,
        revocations,
        limits,
        replay,
        asynchronous=True,
    )


def verify_presentation_sync(
    presentation: str,
    *,
    roots: Mapping[str, bytes],
    audience: str,
    method: str | None = None,
    path: str | None = None,
    body: BodySource | None = None,
    require_body_binding: bool = False,
    now: Callable[[], int] | None = None,
    skew_seconds: int | None = None,
    max_age_seconds: int | None = None,
    revocations: Container[str] | None = None,
    limits: Limits | None = None,
    replay: Any = None,
) -> VerifiedPresentation:
    """:func:`verify_presentation` for synchronous code: ``replay.claim`` must answer a bool, and a
    ``body`` function bytes or a string (not an awaitable)."""
    coroutine = _verify_presentation(
        presentation,
        roots,
        audience,
        method,
        path,
        body,
        require_body_binding,
        now,
        skew_seconds,
        max_age_seconds,
        revocations,
        limits,
        replay,
        asynchronous=False,
    )
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("unreachable: the synchronous path never awaits")


async def _verify_presentation(
    presentation: Any,
    roots: Any,
    audience: Any,
    method: Any,
    path: Any,
    body: Any,
    require_body_binding: Any,
    clock: Any,
    skew_seconds: Any,
    max_age_seconds: Any,
    revocations: Any,
    limits: Any,
    replay: Any,
    *,
    asynchronous: bool,
) -> VerifiedPresentation:
    # Every input is checked before step 1, so a bad input never reaches the replay cache.
    roots = checked_roots(roots)
    audience = checked_audience(audience, required=True)
    now = checked_now(clock)
    skew = checked_integer(skew_seconds, "skew_seconds", DEFAULT_SKEW_SECONDS, MAX_SKEW_SECONDS)
    max_age = checked_integer(
        max_age_seconds, "max_age_seconds", DEFAULT_MAX_AGE_SECONDS, MAX_AGE_SECONDS
    )
    method = checked_optional_string(method, "method")
    path = checked_optional_string(path, "path")
    if body is not None and not isinstance(body, (bytes, bytearray, str)) and not callable(body):
        raise TypeError(f'"body" expected bytes, a string or a function, got {type(body).__name__}')
    if not isinstance(require_body_binding, bool):
        raise TypeError(f'"require_body_binding" expected a bool, got {require_body_binding!r}')
    revocations = checked_revocations(revocations)
    limits = resolve_limits(limits)
    if replay is None:
        replay = _default_replay
    elif not callable(getattr(replay, "claim", None)):
        raise TypeError('"replay" expected an object with a claim method')
    if not isinstance(presentation, str):
        raise TypeError(f'"presentation" expected a string, got {type(presentation).__name__}')

    token_bytes, payload, signature = _parse(presentation, limits)  # 1
    chain = _verify(token_bytes, roots, now, skew, audience, revocations, limits)  # 2
    # 3. The holder's signature, before any claim is read.
    if _ed25519.verify_signature(chain.holder, PRESENTATION_CONTEXT + payload, signature) != "ok":
        raise _error("the presentation is not signed by the token's holder")
    claims = _decode_claims(payload)  # 4
    if claims[_TH] != hashlib.sha256(token_bytes).digest():  # 5
        raise _error("the presentation is for another token")
    if claims[_AUD] != audience:  # 6
        raise AllowanceError(
            ERR_AUDIENCE, f"the presentation is for {claims[_AUD]}, not {audience}", field="aud"
        )
    if _METHOD in claims and (method is None or claims[_METHOD] != ascii_upper(method)):  # 7
        raise _error("the presentation is for another HTTP method")
    if _PATH in claims and claims[_PATH] != path:  # 8
        raise _error("the presentation is for another path")
    if _BH in claims:  # 8b
        if body is None:
            raise _error("the presentation binds a request body, and none was given to check")
        name = "body"
        if callable(body):
            name = "the body function's answer"
            body = body()
            if inspect.isawaitable(body):
                if not asynchronous:
                    if inspect.iscoroutine(body):
                        body.close()
                    raise TypeError(
                        "the body function answered an awaitable: use verify_presentation"
                    )
                body = await body
        if body_hash(body, name) != claims[_BH]:
            raise _error("the presentation is for another request body")
    elif require_body_binding:
        raise _error("this endpoint requires a presentation bound to the request body")
    iat = claims[_IAT]
    expires_at = iat + max_age + skew
    if iat > now + skew or now - skew - max_age >= iat or expires_at > MAX_SAFE_INTEGER:  # 9
        raise AllowanceError(
            ERR_STALE,
            f"the presentation was issued at {iat}, outside the accepted window",
            field="iat",
        )
    # 10. The one-time id, last: a presentation refused for any other reason does not use it up.
    jti = b64encode(claims[_JTI])
    bound = b64encode(claims[_BH]) if _BH in claims else None
    # §5.2: the body hash, when bound, is named in the id, apart from every unbound id.
    replay_id = f"{b64encode(chain.holder)}.{jti}" + ("" if bound is None else f".{bound}")
    if replay is _default_replay:
        expires_at = iat + DEFAULT_REPLAY_WINDOW_SECONDS
    first = replay.claim(replay_id, expires_at, now)
    if inspect.isawaitable(first):
        if not asynchronous:
            if inspect.iscoroutine(first):
                first.close()
            raise TypeError("replay.claim answered an awaitable: use verify_presentation")
        first = await first
    # Only True is a first use; anything else is a broken cache, trusted neither way.
    if not isinstance(first, bool):
        raise TypeError(f'"replay.claim" must answer a bool, got {first!r}')
    if not first:
        raise AllowanceError(ERR_REPLAY, "this presentation was already used")
    return VerifiedPresentation(
        chain,
        PresentationClaims(claims[_AUD], iat, jti, claims.get(_METHOD), claims.get(_PATH), bound),
    )


def _parse(text: str, limits: Limits) -> tuple[bytes, bytes, bytes]:
    """§2.3 steps 1-8."""
    limit = limits.max_token_chars + 512
    size = len(text) if len(text) > limit else text_size(text)
    if size > limit:
        raise AllowanceError(
            ERR_LIMIT,
            f"presentation text has {size} UTF-8 bytes, the limit is {limit}",
            limit=limit,
            actual=size,
        )
    if not text.startswith(PRESENTATION_PREFIX):
        raise AllowanceError(ERR_MALFORMED, f"a presentation starts with {PRESENTATION_PREFIX}")
    data = b64decode(text[len(PRESENTATION_PREFIX) :])
    if data is None:
        raise AllowanceError(ERR_MALFORMED, "presentation body is not canonical unpadded base64url")
    value = _cbor.decode(data)
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(isinstance(v, bytes) for v in value)
    ):
        raise AllowanceError(
            ERR_MALFORMED, "a presentation is an array of token, payload and signature bytes"
        )
    token_bytes, payload, signature = value
    if len(signature) != 64:
        raise _error("a presentation signature is 64 bytes")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise _error("the presentation payload is over 2,048 bytes")
    parse_binary(token_bytes, limits)  # step 8: F§8.1 steps 4-9
    return token_bytes, payload, signature


def _decode_claims(payload: bytes) -> dict[int, Any]:
    """§3.1; any defect, CBOR included, is ERR_PRESENTATION."""
    try:
        claims = _cbor.decode(payload)
    except AllowanceError as error:
        raise _error(f"presentation payload: {error.message}") from None
    if not isinstance(claims, dict):
        raise _error("the presentation payload is a map")
    for key in claims:
        if not isinstance(key, int) or not 1 <= key <= 7:
            raise _error(f"unknown presentation claim {key!r}")
    th, aud, iat, jti = (claims.get(k) for k in (_TH, _AUD, _IAT, _JTI))
    if not isinstance(th, bytes) or len(th) != 32:
        raise _error("th must be 32 bytes")
    if not isinstance(aud, str) or AUDIENCE.fullmatch(aud) is None:
        raise _error("aud must be 1 to 256 printable ASCII characters")
    if not isinstance(iat, int):
        raise _error("iat must be an unsigned integer")
    if not isinstance(jti, bytes) or not 16 <= len(jti) <= 32:
        raise _error("jti must be 16 to 32 bytes")
    if _METHOD in claims and (
        not isinstance(claims[_METHOD], str) or METHOD.fullmatch(claims[_METHOD]) is None
    ):
        raise _error("method must be 1 to 16 upper-case ASCII letters")
    if _PATH in claims and (
        not isinstance(claims[_PATH], str) or PATH.fullmatch(claims[_PATH]) is None
    ):
        raise _error("path must be / and up to 1023 printable ASCII characters")
    if _BH in claims and (not isinstance(claims[_BH], bytes) or len(claims[_BH]) != 32):
        raise _error("bh must be 32 bytes")
    return claims


def _error(message: str) -> AllowanceError:
    return AllowanceError(ERR_PRESENTATION, message)
