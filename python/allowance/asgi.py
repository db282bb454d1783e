"""A plain ASGI middleware that admits a request to a tool endpoint only with a valid credential
(spec/presentation.md §8): usable with any ASGI server or framework (Starlette, FastAPI, ...).

The verified chain reaches the application as ``scope["allowance"]``, an :class:`AllowanceContext`.
A refused credential is answered 401 or 403 with an RFC 9457 problem body, and the application is
not called. Anything else that goes wrong (a clock that answers nonsense, a replay cache that
fails) propagates as an exception: a server error, never a request served.

Two request-level checks are optional (see :class:`AllowanceMiddleware`): the body binding of
spec/presentation.md §3.4 (``require_body_binding``; a presentation that binds a body is always
checked against it), and the tool calls a request makes, checked against the grant's ``tools`` and
``args`` (spec/arguments.md §6) through a caller-given ``tool_call`` function.
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Container, Mapping

from ._inputs import (
    MAX_AGE_SECONDS,
    MAX_SAFE_INTEGER,
    MAX_SKEW_SECONDS,
    checked_clock,
    checked_integer,
    read_clock,
)
from .arguments import TOOL_NAME, check_arguments, parse_strict_json
from .errors import (
    ERR_AUDIENCE,
    ERR_MALFORMED,
    ERR_NO_CREDENTIALS,
    ERR_PRESENTATION,
    AllowanceError,
)
from .limits import Limits, resolve_limits
from .narrow import tool_allowed
from .presentation import PRESENTATION_PREFIX, PresentationClaims, verify_presentation
from .token import TOKEN_PREFIX
from .verify import VerifiedChain, verify

AUTH_SCHEME = "Allowance"
_HEADER = re.compile(r"([A-Za-z][A-Za-z0-9-]*) +(\S+) *")
#: The most bytes of a request body read (spec/presentation.md §8.1 ``maxBodyBytes``): 4 MiB.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024

#: The refusals of a request's tool calls, after the credential verified (not spec error codes:
#: the grant is valid, the request asks for more than it allows, or cannot be read).
TOOL_NOT_ALLOWED = "TOOL_NOT_ALLOWED"
ARGUMENT_NOT_ALLOWED = "ARGUMENT_NOT_ALLOWED"
MALFORMED_TOOL_CALL = "MALFORMED_TOOL_CALL"
BODY_TOO_LARGE = "BODY_TOO_LARGE"
UNSUPPORTED_CONTENT_ENCODING = "UNSUPPORTED_CONTENT_ENCODING"
TOOL_CALL_CODES = (
    TOOL_NOT_ALLOWED,
    ARGUMENT_NOT_ALLOWED,
    MALFORMED_TOOL_CALL,
    BODY_TOO_LARGE,
    UNSUPPORTED_CONTENT_ENCODING,
)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: One tool call: the tool's name and its arguments as parsed (None: no arguments given).
ToolCall = tuple[str, Any]
#: The ``tool_call`` option: given the scope and the request body read as strict JSON (None for
#: an empty body), the request's tool calls: None or [] for none, one pair, or a list of pairs.
#: Raising ValueError refuses the request as malformed (400). It may be an async function.
ToolCallExtractor = Callable[[Scope, Any], Any]


@dataclass(frozen=True, slots=True)
class AllowanceContext:
    """What a handler learns about an authorized request."""

    chain: VerifiedChain
    #: Present when the request carried a presentation.
    presentation: PresentationClaims | None = None
    #: The tool calls checked against the grant (with the ``tool_call`` option), in request order.
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class Rejection:
    status: int
    #: The credential's error; None for a refused tool call (its code is in ``code``).
    error: AllowanceError | None
    headers: tuple[tuple[str, str], ...]
    body: dict[str, Any]

    @property
    def code(self) -> str:
        return self.body["code"]


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
        require_body_binding: bool = False,
    ) -> None:
        if not isinstance(audience, str) or audience == "":
            raise TypeError('"audience" is required: the endpoint must know its own name')
        if not isinstance(require_presentation, bool):
            raise TypeError('"require_presentation" expected a bool')
        if not isinstance(require_body_binding, bool):
            raise TypeError('"require_body_binding" expected a bool')
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
        self.require_body_binding = require_body_binding
        self._clock = checked_clock(now)

    async def authorize(
        self, authorization: str | None, method: str, path: str, body: Any = None
    ) -> AllowanceContext | Rejection:
        """``body`` is the request body for a presentation that binds one (spec/presentation.md
        §4 step 8b): bytes, a string, or a function answering them (or an awaitable of them),
        called only for such a presentation."""
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
                    body=body,
                    require_body_binding=self.require_body_binding,
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
                if self.require_body_binding:  # §3.4: a bare token binds no body
                    raise AllowanceError(
                        ERR_PRESENTATION,
                        "a presentation bound to the request body is required, not a bare token",
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
    title = "Credential not valid for this endpoint" if status == 403 else "Credential rejected"
    return _problem(status, error.code, title, error.message, error.link_index, audience, error)


def _problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    link_index: int | None,
    audience: str,
    error: AllowanceError | None = None,
    **extra: Any,
) -> Rejection:
    body = {
        "type": f"urn:allowance:error:{code}",
        "title": title,
        "status": status,
        "code": code,
        "linkIndex": link_index,
        "detail": detail,
        **extra,
    }
    challenge = (
        f'{AUTH_SCHEME} realm="{_quoted(audience)}", error="{code}", '
        f'error_description="{_quoted(detail)}"'
    )
    headers = (
        ("content-type", "application/problem+json"),
        ("cache-control", "no-store"),
        ("www-authenticate", challenge),
    )
    return Rejection(status, error, headers, body)


def _last_link_stating(chain: VerifiedChain, field: str) -> int | None:
    """The link whose ``tools`` or ``args`` are in force: the last that states them."""
    for link in reversed(chain.links):
        if getattr(link.grant.fields, field) is not None:
            return link.index
    return None


def check_tool_calls(
    chain: VerifiedChain, calls: list[ToolCall], audience: str
) -> Rejection | None:
    """Every call, in order, against the chain's effective ``tools`` (spec/format.md §6.3) and
    ``args`` (spec/arguments.md §6): None if all may run, else the first refusal (403), which
    refuses the whole request. A name that is not a tool name (spec/arguments.md §2) is refused
    whatever the grant: no grant can allow it, and an unrestricted ``tools`` must not let it by."""
    grant = chain.grant
    for tool, arguments in calls:
        if TOOL_NAME.fullmatch(tool) is None or not tool_allowed(grant.tools, tool):
            detail = (
                f"{tool!r} is not a tool this grant allows"
                if TOOL_NAME.fullmatch(tool) is not None
                else "the call names no valid tool"
            )
            return _problem(
                403,
                TOOL_NOT_ALLOWED,
                "Tool call not allowed by the grant",
                detail,
                _last_link_stating(chain, "tools"),
                audience,
                tool=tool,
            )
        denial = check_arguments(grant.args, tool, arguments)
        if denial is not None:
            return _problem(
                403,
                ARGUMENT_NOT_ALLOWED,
                "Tool call not allowed by the grant",
                f"{tool}: {denial.message}",
                _last_link_stating(chain, "args"),
                audience,
                tool=tool,
                pattern=denial.pattern,
                reason=denial.reason,
                argument=denial.argument,
                constraint=None if denial.constraint is None else denial.constraint.to_json(),
            )
    return None


def _tool_calls(found: Any) -> list[ToolCall]:
    """The ``tool_call`` function's answer, checked: a wrong shape is a server error (TypeError),
    never a request that passes unchecked."""
    if found is None:
        return []
    pairs = found if isinstance(found, list) else [found]
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2 or not isinstance(pair[0], str):
            raise TypeError(
                "tool_call must answer None, a (tool name, arguments) tuple or a list of them, "
                f"got {found!r}"
            )
    return pairs


def mcp_tool_calls(scope: Scope, message: Any) -> list[ToolCall]:
    """A ``tool_call`` function for JSON-RPC 2.0 as MCP sends it over HTTP: every request whose
    ``method`` is ``tools/call``, alone or in a batch, as (``params.name``, ``params.arguments``).
    Fail closed: a batch element that is not an object, a body that is neither an object nor an
    array, a ``tools/call`` without an object ``params`` and a string ``name``, or with an
    explicit ``"arguments": null`` (which a None answer could not tell from absent arguments),
    raises ValueError (400)."""
    if message is None:
        return []
    if not isinstance(message, (dict, list)):
        raise ValueError("a JSON-RPC body is an object or an array")
    calls: list[ToolCall] = []
    for item in message if isinstance(message, list) else [message]:
        if not isinstance(item, dict):
            raise ValueError("every element of a JSON-RPC batch is an object")
        if item.get("method") != "tools/call":
            continue
        params = item.get("params")
        if not isinstance(params, dict) or not isinstance(params.get("name"), str):
            raise ValueError("a tools/call has params with a string name")
        if "arguments" in params and params["arguments"] is None:
            raise ValueError("a tools/call has arguments that are an object, not null")
        calls.append((params["name"], params.get("arguments")))
    return calls


class _Disconnected(Exception):
    """The client went away before the body was read: nothing is served, nothing is answered."""


class _TooLarge(Exception):
    pass


class _RequestBody:
    """The request body, read from ``receive`` at most once and up to ``max_bytes``, then handed
    to the application byte for byte (so it runs on exactly the bytes that were checked)."""

    def __init__(self, receive: Receive, max_bytes: int) -> None:
        self._receive = receive
        self._max_bytes = max_bytes
        self._data: bytes | None = None
        self._too_large = False
        self._delivered = False

    async def read(self) -> bytes:
        if self._too_large:
            raise _TooLarge
        if self._data is None:
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await self._receive()
                kind = message.get("type")
                if kind == "http.disconnect":
                    raise _Disconnected
                if kind != "http.request":
                    raise RuntimeError(f"unexpected ASGI message {kind!r} while reading a body")
                chunk = message.get("body", b"")
                if not isinstance(chunk, (bytes, bytearray)):
                    raise TypeError("an ASGI http.request body is bytes")
                size += len(chunk)
                if size > self._max_bytes:  # stop reading: the rest is never buffered
                    self._too_large = True
                    raise _TooLarge
                chunks.append(bytes(chunk))
                if not message.get("more_body", False):
                    break
            self._data = b"".join(chunks)
        return self._data

    def receive(self) -> Receive:
        """What the application reads: the buffered body once, then the server's messages (a
        disconnect); the server's own ``receive`` if the body was never read."""
        if self._data is None:
            return self._receive
        data = self._data

        async def receive() -> dict[str, Any]:
            if not self._delivered:
                self._delivered = True
                return {"type": "http.request", "body": data, "more_body": False}
            return await self._receive()

        return receive


class AllowanceMiddleware:
    """ASGI middleware: ``AllowanceMiddleware(app, roots=..., audience=...)``, or with Starlette /
    FastAPI ``app.add_middleware(AllowanceMiddleware, roots=..., audience=...)``. Wrap only the
    tool endpoints (mount them as their own app) if the rest of the application is public.

    The method and path checked are the request's as it arrived (§8.1): the ASGI ``raw_path`` up to
    any ``?`` (the path before percent-decoding), or ``path`` if the server gives no ``raw_path``.

    Options beside those of :class:`Authorizer` (``require_body_binding`` among them):

    - ``max_body_bytes`` (default 4 MiB): the most bytes of a body read. The body is read only for
      a presentation that binds one (§4 step 8b) or when ``tool_call`` is given; a longer body is
      ``ERR_PRESENTATION`` (401) for the binding, 413 ``BODY_TOO_LARGE`` for tool calls. A body
      with a ``Content-Encoding`` is not decoded: refused (401 for a binding, 415 for tool calls).
      The application receives exactly the bytes that were checked.
    - ``tool_call``: a function (or async function) ``(scope, message) -> None | (tool,
      arguments) | [(tool, arguments), ...]``, called once the credential verified, for every HTTP request, with the
      body read as strict JSON (spec/arguments.md §6.4: no repeated member names, no lone
      surrogates, depth at most 64; None for an empty body). A body that is not strict JSON, or a
      ValueError of the function, is 400 ``MALFORMED_TOOL_CALL``. Each call is checked against the
      grant: a tool ``tools`` does not cover (or not a tool name) is 403 ``TOOL_NOT_ALLOWED``,
      arguments ``args`` refuse 403 ``ARGUMENT_NOT_ALLOWED`` naming the tool, the reason, the
      argument and the constraint; the first refusal refuses the request. ``arguments`` is None
      when the call gives none. :func:`mcp_tool_calls` reads MCP's JSON-RPC ``tools/call``. With
      ``tool_call``, WebSocket connections are refused (their messages could not be checked).
    """

    def __init__(self, app: ASGIApp, **options: Any) -> None:
        self.app = app
        self._max_body_bytes = checked_integer(
            options.pop("max_body_bytes", None),
            "max_body_bytes",
            DEFAULT_MAX_BODY_BYTES,
            MAX_SAFE_INTEGER,
        )
        tool_call = options.pop("tool_call", None)
        if tool_call is not None and not callable(tool_call):
            raise TypeError('"tool_call" expected a function (scope, message) -> tool calls')
        self._tool_call = tool_call
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
        if kind == "websocket" and self._tool_call is not None:
            await send(
                {
                    "type": "websocket.close",
                    "code": 1008,
                    "reason": "tool calls over a WebSocket are not checked",
                }
            )
            return
        authorization = None
        encoded = False
        for name, value in scope.get("headers", ()):
            name = name.lower()
            if name == b"authorization":
                if authorization is not None:  # two headers: not one credential
                    authorization = ""
                else:
                    authorization = value.decode("latin-1")
            elif name == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
                encoded = True
        raw_path = scope.get("raw_path")
        path = (
            raw_path.split(b"?", 1)[0].decode("latin-1") if raw_path is not None else scope["path"]
        )
        method = scope.get("method", "GET")  # a WebSocket opens with a GET
        body = _RequestBody(receive, self._max_body_bytes)

        async def bound_body() -> bytes:
            # §3.4: bh is over the body as sent, after any Content-Encoding is removed.
            if kind == "websocket":
                return b""  # a WebSocket handshake carries no body
            if encoded:
                raise AllowanceError(
                    ERR_PRESENTATION, "a request body with a Content-Encoding is not checked"
                )
            try:
                return await body.read()
            except _TooLarge:
                raise AllowanceError(
                    ERR_PRESENTATION,
                    f"the request body is over {self._max_body_bytes} bytes",
                ) from None

        try:
            result = await self.authorizer.authorize(authorization, method, path, body=bound_body)
            if isinstance(result, AllowanceContext) and self._tool_call is not None:
                result = await self._check_tool_calls(scope, result, body, encoded)
        except _Disconnected:
            return
        if isinstance(result, Rejection) and kind == "websocket":
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008, "reason": result.code})
            return
        if isinstance(result, Rejection):
            payload = json.dumps(result.body, separators=(",", ":")).encode()
            headers = [(k.encode(), v.encode("latin-1")) for k, v in result.headers]
            headers.append((b"content-length", str(len(payload)).encode()))
            await send({"type": "http.response.start", "status": result.status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
            return
        scope = dict(scope)
        scope["allowance"] = result
        await self.app(scope, body.receive(), send)

    async def _check_tool_calls(
        self, scope: Scope, context: AllowanceContext, body: _RequestBody, encoded: bool
    ) -> AllowanceContext | Rejection:
        audience = self.authorizer.audience

        def refuse(status: int, code: str, detail: str) -> Rejection:
            return _problem(status, code, "Tool call not checked", detail, None, audience)

        if encoded:
            return refuse(
                415, UNSUPPORTED_CONTENT_ENCODING, "a body with a Content-Encoding is not checked"
            )
        try:
            data = await body.read()
        except _TooLarge:
            return refuse(
                413, BODY_TOO_LARGE, f"the request body is over {self._max_body_bytes} bytes"
            )
        try:
            message = None if data == b"" else parse_strict_json(data)
            found = self._tool_call(scope, message)
            if inspect.isawaitable(found):  # an async function is as good as a plain one
                found = await found
            calls = _tool_calls(found)
        except ValueError as error:
            return refuse(400, MALFORMED_TOOL_CALL, str(error))
        refused = check_tool_calls(context.chain, calls, audience)
        if refused is not None:
            return refused
        return AllowanceContext(context.chain, context.presentation, tuple(calls))
