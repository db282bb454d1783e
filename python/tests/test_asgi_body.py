"""The ASGI middleware's request-level checks, driven in-process with hostile requests: the body
binding (spec/presentation.md §3.4, §4 step 8b, §8.1 ``maxBodyBytes``) and the tool calls of a
body checked against the grant's ``tools`` and ``args`` (spec/arguments.md §6)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from allowance import (
    KeyPair,
    MemoryReplayCache,
    attenuate,
    format_token,
    mint,
    present,
    trusted_roots,
)
from allowance.asgi import (
    AllowanceContext,
    AllowanceMiddleware,
    Authorizer,
    check_tool_calls,
    mcp_tool_calls,
)
from allowance import verify

NOW = 1_800_000_000
AUD = "https://tools.example/mcp"
ROOT, A, B = KeyPair(b"\xc0" * 32), KeyPair(b"\x11" * 32), KeyPair(b"\x12" * 32)
ROOTS = trusted_roots([ROOT])
MAIL_ARGS = [
    {
        "tool": "mail.send",
        "constraints": [
            {"name": "to", "kind": "emailDomain", "domains": ["example.com"]},
            {"name": "subject", "kind": "maxLength", "max": 20, "optional": True},
        ],
    }
]
# Link 0 states tools, link 1 narrows args, link 2 only the budget: the args in force are link 1's.
TOKEN = attenuate(
    attenuate(
        mint(
            ROOT,
            A.public_key,
            {"exp": NOW + 3600, "tools": ["mail.*", "search.web"]},
            nonce=b"\x01" * 8,
        ),
        A,
        B.public_key,
        {"args": MAIL_ARGS},
        nonce=b"\x02" * 8,
    ),
    B,
    B.public_key,
    {"usdMicros": 5},
    nonce=b"\x03" * 8,
)


def clock(seconds: int = NOW):
    return lambda: seconds * 1000


def call(name: str, arguments: Any = None, id: int = 1) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name}
    if arguments is not None:
        params["arguments"] = arguments
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class Tool:
    """The protected application: records what reached it and the body it read."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:
        self.seen.append(scope)
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        self.bodies.append(b"".join(chunks))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"tool ran"})


class Client:
    """The server side of one request: hands out the body in chunks and counts what was read."""

    def __init__(self, chunks: list[bytes], disconnect_after: int | None = None) -> None:
        self.chunks = chunks
        self.reads = 0
        self.disconnect_after = disconnect_after

    async def receive(self) -> dict[str, Any]:
        self.reads += 1
        i = self.reads - 1
        if self.disconnect_after is not None and i >= self.disconnect_after:
            return {"type": "http.disconnect"}
        if i >= len(self.chunks):
            await asyncio.sleep(3600)  # a real server blocks until the client goes away
        return {
            "type": "http.request",
            "body": self.chunks[i],
            "more_body": i < len(self.chunks) - 1,
        }


def request(
    app,
    body: bytes | list[bytes] = b"",
    *,
    credential: str | None = None,
    method: str = "POST",
    path: str = "/mcp",
    headers: tuple[tuple[str, str], ...] = (),
    client: Client | None = None,
) -> tuple[int | None, dict[str, Any] | bytes | None, Client]:
    chunks = body if isinstance(body, list) else [body]
    client = client or Client(chunks)
    all_headers = list(headers)
    if credential is not None:
        all_headers.append(("authorization", f"Allowance {credential}"))
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "headers": [(k.encode(), v.encode("latin-1")) for k, v in all_headers],
    }
    sent: list[dict[str, Any]] = []

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, client.receive, send))
    if not sent:
        return None, None, client
    status = sent[0]["status"]
    payload = b"".join(m.get("body", b"") for m in sent[1:])
    if dict(sent[0]["headers"]).get(b"content-type") == b"application/problem+json":
        return status, json.loads(payload), client
    return status, payload, client


def protected(token=TOKEN, **options):
    tool = Tool()
    settings = dict(roots=ROOTS, audience=AUD, now=clock(), replay=MemoryReplayCache())
    settings.update(options)
    return tool, AllowanceMiddleware(tool, **settings)


def presentation(body: bytes | str | None, token=TOKEN, **extra) -> str:
    return present(token, B, aud=AUD, method="POST", path="/mcp", body=body, now=clock(), **extra)


# ---- body binding ----

BODY = dumps(call("mail.send", {"to": "a@example.com"}))


def test_a_bound_body_is_checked_and_the_application_reads_the_same_bytes():
    tool, app = protected()
    chunks = [BODY[:7], b"", BODY[7:20], BODY[20:]]
    status, answer, _ = request(app, chunks, credential=presentation(BODY))
    assert (status, answer) == (200, b"tool ran")
    assert tool.bodies == [BODY]
    assert tool.seen[0]["allowance"].presentation.body_hash is not None


def test_another_body_is_401_and_the_presentation_is_not_used_up():
    tool, app = protected()
    p = presentation(BODY)
    other = BODY.replace(b"a@example.com", b"x@example.com")
    status, problem, _ = request(app, other, credential=p)
    assert (status, problem["code"]) == (401, "ERR_PRESENTATION") and tool.seen == []
    status, _, _ = request(app, BODY, credential=p)
    assert status == 200
    status, problem, _ = request(app, BODY, credential=p)
    assert (status, problem["code"]) == (401, "ERR_REPLAY")


def test_a_body_over_the_cap_is_refused_without_reading_it_all():
    tool, app = protected(max_body_bytes=len(BODY))
    status, _, _ = request(app, BODY, credential=presentation(BODY))
    assert status == 200  # exactly the cap
    tool, app = protected(max_body_bytes=len(BODY) - 1)
    chunks = [BODY[:10], BODY[10:]] + [b"x" * 1000] * 50
    status, problem, client = request(app, chunks, credential=presentation(BODY))
    assert (status, problem["code"]) == (401, "ERR_PRESENTATION")
    assert client.reads == 2 and tool.seen == []


def test_an_unbound_presentation_leaves_the_body_to_the_application_unless_binding_is_required():
    tool, app = protected()
    status, _, client = request(app, [BODY[:5], BODY[5:]], credential=presentation(None))
    assert status == 200 and tool.bodies == [BODY]
    assert tool.seen[0]["allowance"].presentation.body_hash is None
    tool, app = protected(require_body_binding=True)
    status, problem, client = request(app, BODY, credential=presentation(None))
    assert (status, problem["code"]) == (401, "ERR_PRESENTATION")
    assert client.reads == 0 and tool.seen == []
    status, _, _ = request(app, BODY, credential=presentation(BODY))
    assert status == 200


def test_a_bare_token_is_refused_where_the_body_binding_is_required():
    tool, app = protected(require_presentation=False, require_body_binding=True)
    status, problem, _ = request(app, BODY, credential=format_token(TOKEN))
    assert (status, problem["code"]) == (401, "ERR_PRESENTATION") and tool.seen == []
    tool, app = protected(require_presentation=False)
    status, _, _ = request(app, BODY, credential=format_token(TOKEN))
    assert status == 200


@pytest.mark.parametrize("encoding", ["gzip", "br", " GZIP ", "identity, gzip"])
def test_a_content_encoded_body_is_not_checked_against_a_binding(encoding):
    tool, app = protected()
    status, problem, client = request(
        app, BODY, credential=presentation(BODY), headers=(("content-encoding", encoding),)
    )
    assert (status, problem["code"]) == (401, "ERR_PRESENTATION")
    assert client.reads == 0 and tool.seen == []


def test_identity_encoding_is_no_encoding():
    tool, app = protected()
    status, _, _ = request(
        app, BODY, credential=presentation(BODY), headers=(("content-encoding", "identity"),)
    )
    assert status == 200


def test_a_client_that_goes_away_mid_body_gets_nothing_and_uses_up_nothing():
    tool, app = protected()
    p = presentation(BODY)
    status, _, client = request(
        app, credential=p, client=Client([BODY[:5], BODY[5:]], disconnect_after=1)
    )
    assert status is None and tool.seen == [] and client.reads == 2
    status, _, _ = request(app, BODY, credential=p)
    assert status == 200


def test_a_websocket_binds_the_empty_body_of_its_handshake():
    tool, app = protected(require_body_binding=True)
    sent: list[dict[str, Any]] = []

    async def send(message):
        sent.append(message)

    def open_with(p: str) -> None:
        scope = {
            "type": "websocket",
            "path": "/mcp",
            "raw_path": b"/mcp",
            "headers": [(b"authorization", f"Allowance {p}".encode())],
        }
        asyncio.run(app(scope, None, send))

    bound = present(TOKEN, B, aud=AUD, method="GET", path="/mcp", body=b"", now=clock())
    open_with(bound)
    assert tool.seen and tool.seen[-1]["allowance"].presentation.body_hash
    open_with(present(TOKEN, B, aud=AUD, method="GET", path="/mcp", now=clock()))
    assert sent[-1] == {"type": "websocket.close", "code": 1008, "reason": "ERR_PRESENTATION"}


# ---- tool calls ----


def guarded(**options):
    return protected(tool_call=mcp_tool_calls, **options)


def test_an_allowed_tool_call_reaches_the_tool_with_the_checked_calls():
    tool, app = guarded(require_body_binding=True)
    status, _, _ = request(app, BODY, credential=presentation(BODY))
    assert status == 200 and tool.bodies == [BODY]
    context = tool.seen[0]["allowance"]
    assert isinstance(context, AllowanceContext)
    assert context.tool_calls == (("mail.send", {"to": "a@example.com"}),)


def test_arguments_the_grant_refuses_are_403_naming_tool_argument_and_constraint():
    tool, app = guarded()
    body = dumps(call("mail.send", {"to": "x@evil.example"}))
    status, problem, _ = request(app, body, credential=presentation(body))
    assert status == 403 and tool.seen == []
    assert problem["code"] == "ARGUMENT_NOT_ALLOWED"
    assert problem["type"] == "urn:allowance:error:ARGUMENT_NOT_ALLOWED"
    assert problem["tool"] == "mail.send" and problem["pattern"] == "mail.send"
    assert (problem["reason"], problem["argument"]) == ("value", "to")
    assert problem["constraint"] == {
        "name": "to",
        "kind": "emailDomain",
        "domains": ["example.com"],
    }
    assert problem["linkIndex"] == 1  # the last link stating args


@pytest.mark.parametrize(
    "arguments, reason, argument",
    [
        ({}, "missing", "to"),
        ({"to": "a@example.com", "bcc": "x@evil.example"}, "unnamed", "bcc"),
        ({"to": "a@example.com", "subject": "s" * 21}, "value", "subject"),
        ({"to": ["a@example.com", "x@evil.example"]}, "value", "to"),
        ({"to": "a@example.com", "To": "x@evil.example"}, "unnamed", "To"),
        ({"to": "a@EXAMPLE.com."}, "value", "to"),
        ([{"to": "a@example.com"}], "arguments", None),
        ("to=a@example.com", "arguments", None),
    ],
)
def test_every_refusal_of_the_arguments_is_403(arguments, reason, argument):
    tool, app = guarded()
    body = dumps(call("mail.send", arguments))
    status, problem, _ = request(app, body, credential=presentation(body))
    assert (status, problem["code"], problem["reason"], problem["argument"]) == (
        403,
        "ARGUMENT_NOT_ALLOWED",
        reason,
        argument,
    )
    assert tool.seen == []


def test_absent_arguments_count_as_none_given():
    tool, app = guarded()
    body = dumps(call("mail.send"))
    status, problem, _ = request(app, body, credential=presentation(body))
    assert (status, problem["reason"], problem["argument"]) == (403, "missing", "to")
    body = dumps(call("mail.list"))  # mail.* allows it; no args entry covers it
    status, _, _ = request(app, body, credential=presentation(body))
    assert status == 200


@pytest.mark.parametrize("name", ["shell.exec", "mail", "search.web.news", "Mail.send"])
def test_a_tool_the_grant_does_not_cover_is_403_tool_not_allowed(name):
    tool, app = guarded()
    body = dumps(call(name, {"to": "a@example.com"}))
    status, problem, _ = request(app, body, credential=presentation(body))
    assert (status, problem["code"], problem["tool"]) == (403, "TOOL_NOT_ALLOWED", name)
    assert problem["linkIndex"] == 0 and tool.seen == []


@pytest.mark.parametrize("name", ["", "mail send", "mail..send", "mail.*", "*", "mail.send\n"])
def test_a_name_that_is_no_tool_name_is_refused_even_by_an_unrestricted_grant(name):
    open_token = mint(ROOT, B.public_key, {"exp": NOW + 3600}, nonce=b"\x09" * 8)
    tool, app = guarded(require_presentation=False)
    status, problem, _ = request(app, dumps(call(name, {})), credential=format_token(open_token))
    assert (status, problem["code"]) == (403, "TOOL_NOT_ALLOWED") and tool.seen == []


def test_a_batch_is_refused_whole_if_any_call_is_refused():
    tool, app = guarded()
    good = call("mail.send", {"to": "a@example.com"}, id=1)
    bad = call("mail.send", {"to": "x@evil.example"}, id=2)
    ping = {"jsonrpc": "2.0", "id": 3, "method": "ping"}
    body = dumps([ping, good, bad])
    status, problem, _ = request(app, body, credential=presentation(body))
    assert (status, problem["code"]) == (403, "ARGUMENT_NOT_ALLOWED") and tool.seen == []
    body = dumps([ping, good, good])
    status, _, _ = request(app, body, credential=presentation(body))
    assert status == 200 and len(tool.seen[0]["allowance"].tool_calls) == 2


@pytest.mark.parametrize(
    "body",
    [
        # Repeated member names: checked with one value, run with the other (spec/arguments.md §6.4).
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"mail.send",'
        b'"arguments":{"to":"a@example.com","to":"x@evil.example"}}}',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"mail.send",'
        b'"arguments":{"to":"a@example.com","t\\u006f":"x@evil.example"}}}',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"mail.send",'
        b'"name":"shell.exec","arguments":{"to":"a@example.com"}}}',
        b'{"method":"ping","method":"tools/call","params":{"name":"shell.exec"}}',
        # Lone surrogates, text that is not UTF-8, NaN, trailing text, two values, deep nesting.
        b'{"method":"tools/call","params":{"name":"mail.send","arguments":{"to":"\\ud800"}}}',
        b'{"method":"tools/call","params":{"name":"mail.send","arguments":{"to":"\xff"}}}',
        b'{"method":"tools/call","params":{"name":"mail.send","arguments":{"to":NaN}}}',
        dumps(call("mail.send", {"to": "a@example.com"})) + b"x",
        dumps(call("mail.send", {"to": "a@example.com"})) * 2,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"method":"tools/call","params":' + b'{"a":' * 70 + b"1" + b"}" * 70 + b"}",
        # Shapes mcp_tool_calls refuses: a tools/call it cannot read is not let by unchecked.
        dumps(call("mail.send", None) | {"params": {"name": 5}}),
        dumps({"jsonrpc": "2.0", "method": "tools/call", "params": ["mail.send"]}),
        dumps({"jsonrpc": "2.0", "method": "tools/call"}),
        dumps({"method": "tools/call", "params": {"name": "mail.send", "arguments": None}}),
        dumps([call("mail.send", {"to": "a@example.com"}), [call("shell.exec", {})]]),
        dumps("tools/call"),
        b"not json",
    ],
)
def test_a_body_that_cannot_be_read_unambiguously_is_400_and_never_reaches_the_tool(body):
    tool, app = guarded()
    status, problem, _ = request(app, body, credential=presentation(body))
    assert (status, problem["code"]) == (400, "MALFORMED_TOOL_CALL"), problem
    assert tool.seen == []


def test_a_body_over_the_cap_is_413_and_an_encoded_one_415_for_tool_calls():
    tool, app = guarded(max_body_bytes=len(BODY) - 1)
    status, problem, client = request(app, [BODY, b"x" * 10], credential=presentation(None))
    assert (status, problem["code"]) == (413, "BODY_TOO_LARGE") and client.reads == 1
    tool, app = guarded()
    status, problem, client = request(
        app, BODY, credential=presentation(None), headers=(("content-encoding", "gzip"),)
    )
    assert (status, problem["code"]) == (415, "UNSUPPORTED_CONTENT_ENCODING")
    assert client.reads == 0 and tool.seen == []


def test_an_empty_body_has_no_tool_calls_and_an_invalid_credential_reads_no_body():
    tool, app = guarded()
    status, _, _ = request(
        app, b"", method="GET", credential=present(TOKEN, B, aud=AUD, now=clock())
    )
    assert status == 200 and tool.seen[0]["allowance"].tool_calls == ()
    status, problem, client = request(app, BODY, credential="alwp1_garbage")
    assert (status, problem["code"]) == (401, "ERR_MALFORMED") and client.reads == 0


def test_a_tool_call_function_is_called_with_the_scope_and_the_strict_json():
    seen: list[tuple[str, Any]] = []

    def by_path(scope, message):
        seen.append((scope["path"], message))
        return (scope["path"].strip("/").replace("/", "."), message)

    tool, app = protected(tool_call=by_path)
    body = b'{"to": "a@example.com", "subject": "hi"}'
    status, _, _ = request(
        app, body, path="/mail/send", credential=present(TOKEN, B, aud=AUD, now=clock())
    )
    assert status == 200 and seen == [("/mail/send", {"to": "a@example.com", "subject": "hi"})]
    status, problem, _ = request(
        app,
        b'{"to": "x@evil.example"}',
        path="/mail/send",
        credential=present(TOKEN, B, aud=AUD, now=clock()),
    )
    assert (status, problem["code"], problem["argument"]) == (403, "ARGUMENT_NOT_ALLOWED", "to")


def test_a_tool_call_function_may_be_asynchronous():
    async def calls(scope, message):
        await asyncio.sleep(0)
        return mcp_tool_calls(scope, message)

    tool, app = protected(tool_call=calls)
    status, _, _ = request(app, BODY, credential=presentation(BODY))
    assert status == 200 and tool.seen[0]["allowance"].tool_calls[0][0] == "mail.send"
    body = dumps(call("mail.send", {"to": "x@evil.example"}))
    status, problem, _ = request(app, body, credential=presentation(body))
    assert (status, problem["code"]) == (403, "ARGUMENT_NOT_ALLOWED")


@pytest.mark.parametrize(
    "answer",
    [
        "mail.send",
        ("mail.send",),
        ("mail.send", {}, "extra"),
        (5, {}),
        [("mail.send", {"to": "a@example.com"}), "mail.send"],
        {"tool": "mail.send"},
        (x for x in [("mail.send", {})]),
        True,
    ],
)
def test_a_tool_call_function_answering_nonsense_is_a_server_error_and_the_tool_never_runs(answer):
    tool, app = protected(tool_call=lambda scope, message: answer)
    with pytest.raises(TypeError):
        request(app, BODY, credential=presentation(BODY))
    assert tool.seen == []


def test_a_tool_call_function_raising_value_error_is_400_anything_else_propagates():
    def refuse(scope, message):
        raise ValueError("not a call I can read")

    tool, app = protected(tool_call=refuse)
    status, problem, _ = request(app, BODY, credential=presentation(BODY))
    assert (status, problem["code"]) == (400, "MALFORMED_TOOL_CALL")

    def broken(scope, message):
        raise KeyError("params")

    tool, app = protected(tool_call=broken)
    with pytest.raises(KeyError):
        request(app, BODY, credential=presentation(BODY))
    assert tool.seen == []


def test_websockets_are_refused_when_tool_calls_are_checked():
    tool, app = guarded()
    sent: list[dict[str, Any]] = []

    async def send(message):
        sent.append(message)

    p = present(TOKEN, B, aud=AUD, method="GET", now=clock())
    scope = {
        "type": "websocket",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "headers": [(b"authorization", f"Allowance {p}".encode())],
    }
    asyncio.run(app(scope, None, send))
    assert sent[0]["type"] == "websocket.close" and sent[0]["code"] == 1008
    assert tool.seen == []


def test_check_tool_calls_is_usable_without_the_middleware():
    chain = verify(TOKEN, roots=ROOTS, now=clock())
    assert check_tool_calls(chain, [("mail.send", {"to": "a@example.com"})], AUD) is None
    refused = check_tool_calls(chain, [("mail.send", {"to": "b@example.org"})], AUD)
    assert refused.status == 403 and refused.code == "ARGUMENT_NOT_ALLOWED"
    assert refused.error is None


@pytest.mark.parametrize(
    "options, error",
    [
        ({"max_body_bytes": -1}, ValueError),
        ({"max_body_bytes": 2**53}, ValueError),
        ({"max_body_bytes": 1.5}, TypeError),
        ({"max_body_bytes": "1024"}, TypeError),
        ({"max_body_bytes": True}, TypeError),
        ({"tool_call": "mcp"}, TypeError),
        ({"tool_call": 5}, TypeError),
        ({"require_body_binding": "yes"}, TypeError),
        ({"require_body_binding": 1}, TypeError),
        ({"require_body_binding": None}, TypeError),
        ({"require_body_bindings": True}, TypeError),  # misspelt
    ],
)
def test_body_and_tool_call_options_are_checked_at_start_up(options, error):
    with pytest.raises(error):
        AllowanceMiddleware(Tool(), roots=ROOTS, audience=AUD, **options)


def test_the_middleware_options_go_with_a_given_authorizer():
    authorizer = Authorizer(roots=ROOTS, audience=AUD, now=clock(), require_body_binding=True)
    tool = Tool()
    app = AllowanceMiddleware(
        tool, authorizer=authorizer, tool_call=mcp_tool_calls, max_body_bytes=10_000
    )
    status, problem, _ = request(app, BODY, credential=presentation(None))
    assert (status, problem["code"]) == (401, "ERR_PRESENTATION")
    status, _, _ = request(app, BODY, credential=presentation(BODY))
    assert status == 200
