"""A tool endpoint that serves only callers holding an Allowance grant for it.

Run it (Debian: apt-get install python3-fastapi python3-uvicorn):

    ALLOWANCE_ROOTS=roots.json uvicorn --app-dir python/examples fastapi_tool:app

``roots.json`` is the JWKS of the trusted root keys (``allowance keygen`` writes one). A client
sends ``Authorization: Allowance <presentation>``, made with :func:`allowance.present` (or the
TypeScript ``present``) for the audience below, the method POST, the path ``/tools/search`` and
the request body (``body=``): the endpoint requires the body binding, so a captured presentation
cannot be sent again with other arguments. The tool runs only if the presentation verifies and
the grant allows the call: the tool ``search.web`` with the body's members as its arguments
(``tools`` and ``args``, checked by the middleware). It reads the verified grant to decide how
much work it may do.
"""

from __future__ import annotations

import json
import os
from typing import Any

from fastapi import Depends, FastAPI, Request

from allowance import import_jwks
from allowance.asgi import AllowanceContext, AllowanceMiddleware, Scope, ToolCall

AUDIENCE = "https://tools.example/search"


def allowance(request: Request) -> AllowanceContext:
    """The verified grant, put on the request by the middleware (which refused everyone else)."""
    return request.scope["allowance"]


def search_call(scope: Scope, message: Any) -> ToolCall | None:
    """The tool call a request makes (the middleware's ``tool_call``): every POST to this app is a
    call of search.web, with the JSON body as its arguments; nothing else calls a tool."""
    return ("search.web", message) if scope["method"] == "POST" else None


def make_app(roots: dict[str, bytes], **options: Any) -> FastAPI:
    tools = FastAPI()

    @tools.post("/search")
    def search(
        body: dict[str, Any], grant: AllowanceContext = Depends(allowance)
    ) -> dict[str, Any]:
        effective = grant.chain.grant  # the middleware checked tools and args already
        return {
            "results": [f"result for {body.get('q', '')!s}"],
            "holder_link": grant.chain.link_ids[-1],
            "usd_micros_granted": effective.usd_micros,
        }

    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:  # public: not behind the middleware
        return {"status": "ok"}

    # Only the tool routes are protected: they are their own app, wrapped in the middleware.
    guarded = AllowanceMiddleware(
        tools,
        roots=roots,
        audience=AUDIENCE,
        require_body_binding=True,
        tool_call=search_call,
        **options,
    )
    app.mount("/tools", guarded)
    return app


def _roots_from_env() -> dict[str, bytes]:
    """The trusted roots named by ALLOWANCE_ROOTS; none (every token refused) if it is unset."""
    path = os.environ.get("ALLOWANCE_ROOTS")
    if not path:
        return {}
    with open(path, encoding="utf-8") as file:
        return import_jwks(json.load(file))


app = make_app(_roots_from_env())
