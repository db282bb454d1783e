"""The ASGI middleware (spec/presentation.md §8), driven in-process: scopes in, messages out."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import sys
from typing import Any

import pytest
from conftest import PYTHON_DIR

from allowance import (
    AllowanceError,
    KeyPair,
    MemoryReplayCache,
    attenuate,
    format_token,
    mint,
    present,
    trusted_roots,
)
from allowance.asgi import AllowanceContext, AllowanceMiddleware, Authorizer

NOW = 1_800_000_000
AUD = "https://tools.example/search"
ROOT, A, B = KeyPair(b"\xa0" * 32), KeyPair(b"\x01" * 32), KeyPair(b"\x02" * 32)
ROOTS = trusted_roots([ROOT])
TOKEN = attenuate(
    mint(
        ROOT,
        A.public_key,
        {"exp": NOW + 3600, "aud": [AUD, "https://other.example"]},
        nonce=b"\x01" * 8,
    ),
    A,
    B.public_key,
    {"usdMicros": 7},
    nonce=b"\x02" * 8,
)


def clock(seconds: int = NOW):
    return lambda: seconds * 1000


class Tool:
    """The protected application: records what reached it."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope, receive, send) -> None:
        self.seen.append(scope)
        if scope["type"] != "http":
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": b"tool ran"})


def request(
    app, *, method="POST", path="/search", raw_path=None, headers=()
) -> tuple[int, dict[str, str], bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": (raw_path if raw_path is not None else path).encode("latin-1"),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 443),
    }
    sent: list[dict[str, Any]] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


def protected(**options):
    tool = Tool()
    settings = dict(roots=ROOTS, audience=AUD, now=clock(), replay=MemoryReplayCache())
    settings.update(options)
    return tool, AllowanceMiddleware(tool, **settings)


def auth(credential: str) -> tuple[tuple[str, str]]:
    return (("Authorization", f"Allowance {credential}"),)


def test_a_valid_presentation_reaches_the_tool_with_the_verified_chain_once():
    tool, app = protected()
    p = present(TOKEN, B, aud=AUD, method="POST", path="/search", now=clock())
    status, _, body = request(app, headers=auth(p))
    assert (status, body) == (200, b"tool ran")
    context = tool.seen[0]["allowance"]
    assert isinstance(context, AllowanceContext)
    assert context.chain.grant.usd_micros == 7 and context.presentation.path == "/search"
    status, headers, body = request(app, headers=auth(p))
    assert status == 401 and json.loads(body)["code"] == "ERR_REPLAY"
    assert len(tool.seen) == 1


def test_endpoints_given_no_replay_cache_share_the_process_one_over_the_widest_window():
    # spec/presentation.md §5.3: two routes of one service, one with a longer max_age, both
    # without a cache of their own. The id recorded by the first must outlive the second's window.
    tool = Tool()
    short = AllowanceMiddleware(tool, roots=ROOTS, audience=AUD, now=clock())
    long = AllowanceMiddleware(
        tool, roots=ROOTS, audience=AUD, max_age_seconds=600, now=clock(NOW + 200)
    )
    p = present(TOKEN, B, aud=AUD, method="POST", path="/search", now=clock())  # a random jti
    assert request(short, headers=auth(p))[0] == 200
    status, _, body = request(long, headers=auth(p))
    assert status == 401 and json.loads(body)["code"] == "ERR_REPLAY"
    assert len(tool.seen) == 1


def test_a_revocation_list_that_cannot_be_read_refuses_with_401_and_the_tool_never_runs():
    class Unreadable:
        def __contains__(self, link_id: object) -> bool:
            raise AllowanceError("ERR_REVOCATION_UNAVAILABLE", "the revocation list is unreadable")

    tool, app = protected(revocations=Unreadable())
    p = present(TOKEN, B, aud=AUD, method="POST", path="/search", now=clock())
    status, _, body = request(app, headers=auth(p))
    assert (status, json.loads(body)["code"]) == (401, "ERR_REVOCATION_UNAVAILABLE")
    assert tool.seen == []


@pytest.mark.parametrize(
    "headers, code",
    [
        ((), "ERR_NO_CREDENTIALS"),
        ((("Authorization", ""),), "ERR_NO_CREDENTIALS"),
        ((("Authorization", "Bearer abc"),), "ERR_NO_CREDENTIALS"),
        ((("Authorization", "Allowance a, b"),), "ERR_NO_CREDENTIALS"),
        (
            (("Authorization", "Allowance x"), ("Authorization", "Allowance y")),
            "ERR_NO_CREDENTIALS",
        ),
        ((("Authorization", "Allowance nonsense"),), "ERR_MALFORMED"),
        ((("Authorization", "Allowance " + format_token(TOKEN)),), "ERR_PRESENTATION"),
    ],
)
def test_a_missing_or_wrong_credential_is_401_with_a_problem_body_and_the_tool_never_runs(
    headers, code
):
    tool, app = protected()
    status, response_headers, body = request(app, headers=headers)
    problem = json.loads(body)
    assert status == 401 and problem["code"] == code and problem["status"] == 401
    assert problem["type"] == f"urn:allowance:error:{code}" and problem["linkIndex"] is None
    assert response_headers["content-type"] == "application/problem+json"
    assert response_headers["cache-control"] == "no-store"
    assert response_headers["www-authenticate"].startswith(
        f'Allowance realm="{AUD}", error="{code}"'
    )
    assert tool.seen == []


def test_the_scheme_is_case_insensitive_and_trailing_spaces_are_allowed():
    tool, app = protected()
    p = present(TOKEN, B, aud=AUD, now=clock())
    status, _, _ = request(app, headers=(("Authorization", f"aLLowance   {p}  "),))
    assert status == 200


def test_a_presentation_for_another_endpoint_is_403():
    tool, app = protected()
    p = present(TOKEN, B, aud="https://other.example", now=clock())
    status, _, body = request(app, headers=auth(p))
    assert (status, json.loads(body)["code"]) == (403, "ERR_AUDIENCE")
    assert json.loads(body)["title"] == "Credential not valid for this endpoint"


def test_the_path_is_compared_as_it_arrived_not_normalised():
    tool, app = protected()
    p = present(TOKEN, B, aud=AUD, path="/a/../search", now=clock())
    status, _, _ = request(app, path="/search", raw_path="/a/../search", headers=auth(p))
    assert status == 200
    p = present(TOKEN, B, aud=AUD, path="/search", now=clock())
    status, _, body = request(app, path="/search", raw_path="/a/../search", headers=auth(p))
    assert (status, json.loads(body)["code"]) == (401, "ERR_PRESENTATION")


def test_a_bare_token_is_accepted_only_where_presentations_are_not_required():
    tool, app = protected(require_presentation=False)
    status, _, _ = request(app, headers=auth(format_token(TOKEN)))
    assert status == 200 and tool.seen[0]["allowance"].presentation is None


@pytest.mark.parametrize("answer", [math.nan, -1, NOW, "now", None])
def test_a_broken_clock_is_a_server_error_and_the_tool_never_runs(answer):
    tool, app = protected(now=lambda: answer)
    p = present(TOKEN, B, aud=AUD, now=clock())
    with pytest.raises((TypeError, ValueError)):
        request(app, headers=auth(p))
    assert tool.seen == []


def test_options_are_checked_at_start_up():
    for options, error in (
        ({"audience": ""}, TypeError),
        ({"skew_seconds": 3601}, ValueError),
        ({"max_age_seconds": -1}, ValueError),
        ({"now": 5}, TypeError),
        ({"require_presentation": "yes"}, TypeError),
        ({"replay": object()}, TypeError),
        ({"roots": [ROOT.public_key]}, TypeError),
        ({"audence": AUD}, TypeError),  # a misspelt option
    ):
        settings = dict(roots=ROOTS, audience=AUD)
        settings.update(options)
        if "audence" in options:
            settings.pop("audience")
        with pytest.raises(error):
            AllowanceMiddleware(Tool(), **settings)
    with pytest.raises(TypeError):
        AllowanceMiddleware(Tool(), authorizer=Authorizer(roots=ROOTS, audience=AUD), audience=AUD)


def test_lifespan_passes_through_a_websocket_is_authorized_and_anything_else_refused():
    tool, app = protected()
    asyncio.run(app({"type": "lifespan"}, None, None))
    assert tool.seen == [{"type": "lifespan"}]
    sent: list[dict[str, Any]] = []

    async def send(message):
        sent.append(message)

    websocket = {"type": "websocket", "path": "/search", "raw_path": b"/search", "headers": []}
    asyncio.run(app(websocket, None, send))
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "ERR_NO_CREDENTIALS"}]
    p = present(TOKEN, B, aud=AUD, method="GET", now=clock())
    websocket["headers"] = [(b"authorization", f"Allowance {p}".encode())]
    asyncio.run(app(websocket, None, send))
    assert tool.seen[-1]["allowance"].presentation.method == "GET"
    with pytest.raises(RuntimeError):
        asyncio.run(app({"type": "webtransport"}, None, send))


def _fastapi_example():
    if importlib.util.find_spec("fastapi") is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "FastAPI (Debian's python3-fastapi) is required in CI for the example's test"
            )
        pytest.skip("python3-fastapi is not installed: the FastAPI example is not tested")
    sys.path.insert(0, str(PYTHON_DIR / "examples"))
    try:
        import fastapi_tool
    finally:
        sys.path.remove(str(PYTHON_DIR / "examples"))
    return fastapi_tool


def test_the_fastapi_example_serves_the_tool_only_with_a_valid_presentation():
    example = _fastapi_example()
    app = example.make_app(ROOTS, now=clock(), replay=MemoryReplayCache())
    status, _, body = request(app, method="GET", path="/health")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, headers, body = request(app, path="/tools/search")
    assert status == 401 and headers["content-type"] == "application/problem+json"
    sent = b'{"q": "allowance"}'

    def presented(token=TOKEN, body=sent):
        p = present(
            token,
            B,
            aud=example.AUDIENCE,
            method="POST",
            path="/tools/search",
            body=body,
            now=clock(),
        )
        return auth(p) + (("content-type", "application/json"),)

    status, _, body = request(_with_body(app, sent), path="/tools/search", headers=presented())
    assert status == 200, body
    answer = json.loads(body)
    assert answer["results"] == ["result for allowance"] and answer["usd_micros_granted"] == 7
    # The body is bound: the same presentation with other arguments, or one that binds no body,
    # is refused before the tool runs.
    other = _with_body(app, b'{"q": "something else"}')
    status, _, body = request(other, path="/tools/search", headers=presented())
    assert (status, json.loads(body)["code"]) == (401, "ERR_PRESENTATION")
    status, _, body = request(other, path="/tools/search", headers=presented(body=None))
    assert (status, json.loads(body)["code"]) == (401, "ERR_PRESENTATION")
    # A grant without search.web, or whose args refuse the query, is refused with 403.
    for grant, code in (
        ({"tools": ["mail.*"]}, "TOOL_NOT_ALLOWED"),
        (
            {
                "args": [
                    {
                        "tool": "search.*",
                        "constraints": [{"name": "q", "kind": "maxLength", "max": 3}],
                    }
                ]
            },
            "ARGUMENT_NOT_ALLOWED",
        ),
    ):
        narrower = attenuate(TOKEN, B, B.public_key, grant, nonce=b"\x03" * 8)
        status, _, body = request(
            _with_body(app, sent), path="/tools/search", headers=presented(narrower)
        )
        assert (status, json.loads(body)["code"]) == (403, code), body


def _with_body(app, body: bytes):
    async def wrapped(scope, receive, send):
        async def receive_body():
            return {"type": "http.request", "body": body, "more_body": False}

        await app(scope, receive_body, send)

    return wrapped
