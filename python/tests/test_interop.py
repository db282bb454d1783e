"""Interoperability with the TypeScript packages, both ways, over random chains.

At every link one implementation attenuates and the other attenuates the same grant with the same
nonce: the tokens must be byte-identical (Ed25519 and the canonical payload are deterministic), or
both must refuse with the same code. Then both verify the chain and must agree on the effective
grant and the link ids. Presentations made on either side verify on the other.

The TypeScript side is python/tests/interop.ts, run from source through tsx (the ``ts`` fixture of
conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import pytest
from conftest import REPO

from allowance import (
    AllowanceError,
    KeyPair,
    attenuate,
    format_token,
    mint,
    present,
    trusted_roots,
    verify,
)
from allowance._b64 import b64decode, b64encode
from allowance.arguments import check_arguments_json, read_args
from allowance.narrow import tool_covered
from allowance.presentation import verify_presentation_sync

CHAINS = 200
#: What the random chains exercised, checked at the end so that the test cannot pass vacuously.
STATS: dict[str, int] = {}


def count(what: str) -> None:
    STATS[what] = STATS.get(what, 0) + 1


FAR = 4_000_000_000  # 2096: the interop script runs on the system clock


def key(rng: random.Random) -> KeyPair:
    return KeyPair(rng.randbytes(32))


PROVIDERS = ["openai", "anthropic", "google", "video", "search", "a", "mistral.eu"]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "claude-haiku-4", "o3", "m"]
TOOLS = [
    "*",
    "search.*",
    "search.web",
    "search.web.*",
    "search.web.news",
    "email.send",
    "email.*",
    "files.read",
    "mcp:github.issues.*",
    "mcp:github.issues.list",
    "a-b_c",
]
AUDS = ["https://tools.example/search", "https://tools.example/email", "https://gw.example", "x"]
LABELS = ["run-42", "\ufeffbom", "agent/é", "", "日本語", "emoji 😀"]


def sample(rng: random.Random, pool: list[str], parent: list[str] | None) -> list[str]:
    base = parent if parent is not None else pool
    return rng.sample(base, rng.randint(0, len(base)))


def root_grant(rng: random.Random) -> dict[str, Any]:
    grant: dict[str, Any] = {"exp": FAR + rng.randint(0, 10**6)}
    if rng.random() < 0.3:
        grant["nbf"] = rng.randint(0, 1_700_000_000)
    if rng.random() < 0.5:
        grant["depth"] = rng.randint(0, 8)
    for name, top in (("tokens", 2**40), ("usdMicros", 2**53 - 1), ("risk", 1000)):
        if rng.random() < 0.6:
            grant[name] = rng.randint(0, top)
    if rng.random() < 0.6:
        grant["providers"] = [caps(rng, name, None) for name in sample(rng, PROVIDERS, None)]
    if rng.random() < 0.5:
        grant["models"] = sample(rng, MODELS, None)
    if rng.random() < 0.6:
        grant["tools"] = sample(rng, TOOLS, None)
    if rng.random() < 0.5:
        grant["aud"] = sample(rng, AUDS, None)
    if rng.random() < 0.5:
        grant["rate"] = windows(rng)
    if rng.random() < 0.4:
        grant["label"] = rng.choice(LABELS)
    if rng.random() < 0.5:
        grant["args"] = random_args(rng)
    return grant


def caps(rng: random.Random, name: str, parent: dict[str, Any] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name}
    for cap in ("tokens", "usdMicros"):
        top = (parent or {}).get(cap, 2**45)
        if rng.random() < 0.5:
            entry[cap] = rng.randint(0, top)
    return entry


def windows(rng: random.Random) -> list[dict[str, Any]]:
    out: dict[bytes, dict[str, Any]] = {}
    for _ in range(rng.randint(0, 3)):
        window: dict[str, Any] = {"seconds": rng.choice([1, 60, 3600, 86400, 31_622_400])}
        for amount in rng.sample(["tokens", "usdMicros", "requests"], rng.randint(1, 3)):
            window[amount] = rng.choice([0, 1, 60, 10**6, 2**40])
        out[json.dumps(window, sort_keys=True).encode()] = window
    return list(out.values())


def child_grant(rng: random.Random, parent: dict[str, Any], widen: bool) -> dict[str, Any]:
    """A grant narrower than the effective ``parent`` (its JSON form), or, with ``widen``, one
    that may not be."""
    grant: dict[str, Any] = {}
    if rng.random() < 0.3:
        grant["exp"] = rng.randint(FAR - 10**6, parent["exp"] + (10**6 if widen else 0))
    if rng.random() < 0.2:
        floor = parent.get("nbf", 0)
        grant["nbf"] = rng.randint(max(0, floor - (10 if widen else 0)), floor + 1000)
    if "depth" in parent and parent["depth"] > 0 and rng.random() < 0.4:
        grant["depth"] = rng.randint(0, parent["depth"] - (0 if widen else 1))
    for name in ("tokens", "usdMicros", "risk"):
        if rng.random() < 0.4:
            top = parent.get(name, 2**50)
            grant[name] = rng.randint(0, top + (5 if widen else 0))
    if rng.random() < 0.4:
        if "providers" in parent:
            chosen = sample(rng, [p["name"] for p in parent["providers"]], None)
            known = {p["name"]: p for p in parent["providers"]}
            grant["providers"] = [caps(rng, n, known[n]) for n in chosen]
            if widen and rng.random() < 0.5:
                grant["providers"].append({"name": "intruder"})
        else:
            grant["providers"] = [caps(rng, n, None) for n in sample(rng, PROVIDERS, None)]
    for name, pool in (("models", MODELS), ("aud", AUDS)):
        if rng.random() < 0.3:
            grant[name] = sample(rng, pool, None if widen else parent.get(name))
    if rng.random() < 0.4:
        candidates = [
            t
            for t in TOOLS
            if widen or "tools" not in parent or any(tool_covered(p, t) for p in parent["tools"])
        ]
        grant["tools"] = rng.sample(candidates, rng.randint(0, len(candidates)))
    if rng.random() < 0.3:
        grant["rate"] = windows(rng)
    if rng.random() < 0.2:
        grant["label"] = rng.choice(LABELS)
    if rng.random() < 0.4:
        grant["args"] = narrower_args(rng, parent["args"]) if "args" in parent else random_args(rng)
    return grant


# ---- tool-argument constraints (spec/arguments.md) ----

ARG_TOOLS = ["*", "mail.*", "mail.send", "mail.send.bulk", "http.get", "fs.*", "fs.read"]
SCALARS = [0, 1, 5, 2**53 - 1, "a", "b", "", "é", True, False]
PREFIXES = ["", "/tmp/", "/tmp/out/", "https://", "a"]
GLOBS = [
    "/",
    "/**",
    "**",
    "/tmp/**",
    "/tmp/*.txt",
    "/tmp/out/**",
    "/tmp/out/a.txt",
    "/data/*/x",
    "a/b",
    "a/**",
]
URLS = [
    "https://api.example.com/",
    "https://api.example.com/v1",
    "https://api.example.com/v1/x",
    "https://*.cdn.example/",
    "https://a.cdn.example/img/",
    "http://10.0.0.1:8080/",
    "wss://*.example.org/",
]
DOMAINS = [
    "example.com",
    "*.example.com",
    "a.example.com",
    "corp.example",
    "*.corp.example",
    "x.a.corp.example",
]
ARG_NAMES = ["to", "url", "path", "n", "mode", "body", "cc", "TO"]
CALL_VALUES = [
    None,
    True,
    0,
    3,
    7,
    -1,
    5.0,
    1e400,
    "a",
    "",
    "é",
    "/tmp/out/a.txt",
    "/tmp/x.txt",
    "/tmp/../etc",
    "https://api.example.com/v1/x?q=1",
    "https://API.example.com:443/v1",
    "https://a.cdn.example/img/p",
    "https://api.example.com/v10",
    "http://10.0.0.1:8080/x",
    "bob@example.com",
    "bob@a.example.com",
    "bob@evil.example",
    "a@corp.example",
    ["bob@example.com"],
    [],
    ["/tmp/out/a.txt", "/etc/passwd"],
]


def constraint(rng: random.Random, name: str) -> dict[str, Any]:
    kind = rng.choice(
        [
            "exact",
            "oneOf",
            "range",
            "prefix",
            "glob",
            "url",
            "emailDomain",
            "maxLength",
            "forbidden",
        ]
    )
    c: dict[str, Any] = {"name": name, "kind": kind}
    if kind == "exact":
        c["value"] = rng.choice(SCALARS)
    elif kind == "oneOf":
        c["values"] = unique_scalars(rng, rng.randint(1, 4))
    elif kind == "range":
        low = rng.randint(0, 10)
        c["min"], c["max"] = low, low + rng.randint(0, 10)
    elif kind == "prefix":
        c["prefix"] = rng.choice(PREFIXES)
    elif kind == "glob":
        c["glob"] = rng.choice(GLOBS)
    elif kind == "url":
        c["urls"] = rng.sample(URLS, rng.randint(1, 3))
    elif kind == "emailDomain":
        c["domains"] = rng.sample(DOMAINS, rng.randint(1, 3))
    elif kind == "maxLength":
        c["max"] = rng.randint(0, 30)
    if kind != "forbidden" and rng.random() < 0.3:
        c["optional"] = True
    return c


def unique_scalars(rng: random.Random, n: int) -> list[Any]:
    out: list[Any] = []
    for value in rng.sample(SCALARS, len(SCALARS)):
        if not any(type(value) is type(v) and value == v for v in out):
            out.append(value)
        if len(out) == n:
            break
    return out


def random_args(rng: random.Random) -> list[dict[str, Any]]:
    entries = []
    for tool in rng.sample(ARG_TOOLS, rng.randint(0, 3)):
        names = rng.sample(ARG_NAMES[:-1], rng.randint(0, 3))
        entry: dict[str, Any] = {"tool": tool, "constraints": [constraint(rng, n) for n in names]}
        if rng.random() < 0.4:
            entry["allowUnnamed"] = True
        entries.append(entry)
    return entries


def narrower_args(rng: random.Random, parent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mostly a narrowing of ``parent`` (spec/arguments.md §4.2); sometimes not."""
    if rng.random() < 0.15:
        return random_args(rng)
    out = []
    for entry in parent:
        entry = json.loads(json.dumps(entry))
        if entry.get("allowUnnamed") and rng.random() < 0.3:
            del entry["allowUnnamed"]
        for c in entry["constraints"]:
            roll = rng.random()
            if roll < 0.2 and c.get("optional"):
                del c["optional"]
            elif roll < 0.3 and c.get("optional"):
                for key in list(c):
                    if key not in ("name",):
                        del c[key]
                c["kind"] = "forbidden"
            elif c["kind"] == "range" and roll < 0.6:
                c["min"] = rng.randint(c["min"], c["max"])
                c["max"] = rng.randint(c["min"], c["max"])
            elif c["kind"] in ("oneOf", "url", "emailDomain") and roll < 0.6:
                key = {"oneOf": "values", "url": "urls", "emailDomain": "domains"}[c["kind"]]
                c[key] = rng.sample(c[key], rng.randint(1, len(c[key])))
            elif c["kind"] == "oneOf" and roll < 0.7:
                value, name = rng.choice(c["values"]), c["name"]
                c.clear()
                c.update({"name": name, "kind": "exact", "value": value})
            elif c["kind"] == "prefix" and roll < 0.6:
                c["prefix"] += rng.choice(["", "x", "/"])
            elif c["kind"] == "glob" and roll < 0.6:
                c["glob"] = rng.choice(GLOBS)
            elif c["kind"] == "maxLength" and roll < 0.6:
                c["max"] = rng.randint(0, c["max"] + (2 if rng.random() < 0.2 else 0))
            elif roll < 0.05:
                replacement = constraint(rng, c["name"])  # another kind: none of the old members
                c.clear()
                c.update(replacement)
        if rng.random() < 0.3:
            taken = {c["name"] for c in entry["constraints"]}
            free = [n for n in ARG_NAMES[:-1] if n not in taken]
            if free:
                entry["constraints"].append(constraint(rng, rng.choice(free)))
        if rng.random() < 0.9:
            out.append(entry)
    if rng.random() < 0.3:
        extra = random_args(rng)
        tools = {e["tool"] for e in out}
        out.extend(e for e in extra if e["tool"] not in tools)
    return out


def outcome_py(thunk) -> dict[str, Any]:
    try:
        return {"ok": True, "result": thunk()}
    except AllowanceError as error:
        return {"ok": False, "code": error.code, "linkIndex": error.link_index}


def verify_py(token: str, roots: list[bytes]) -> dict[str, Any]:
    def run():
        chain = verify(token, roots=trusted_roots(roots))
        return {"grant": chain.grant.to_json(), "linkIds": list(chain.link_ids)}

    return outcome_py(run)


def strip(reply: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in reply.items() if k != "id"}


@pytest.mark.parametrize("seed", range(CHAINS))
def test_random_chain_agrees_byte_for_byte_and_on_every_verification(ts, seed):
    rng = random.Random(seed)
    root = key(rng)
    holders = [key(rng)]
    grant = root_grant(rng)
    nonce = rng.randbytes(rng.randint(8, 32))
    token_py = format_token(mint(root, holders[0].public_key, grant, nonce=nonce))
    token_ts = ts(
        "mint",
        rootSeed=b64encode(root.seed),
        holder=b64encode(holders[0].public_key),
        grant=grant,
        nonce=b64encode(nonce),
    )["result"]["token"]
    assert token_py == token_ts
    token = token_py
    roots = [root.public_key]
    for step in range(rng.randint(1, 6)):
        verified = verify_py(token, roots)
        assert verified == strip(ts("verify", token=token, roots=[b64encode(r) for r in roots]))
        assert verified["ok"], verified
        effective = verified["result"]["grant"]
        widen = rng.random() < 0.25
        child = child_grant(rng, effective, widen)
        holder = key(rng)
        nonce = rng.randbytes(8)
        signer = holders[-1]
        # Both sides attenuate the same grant with the same nonce and must say the same.
        py = outcome_py(
            lambda: format_token(attenuate(token, signer, holder.public_key, child, nonce=nonce))
        )
        reply = ts(
            "attenuate",
            token=token,
            holderSeed=b64encode(signer.seed),
            holder=b64encode(holder.public_key),
            grant=child,
            nonce=b64encode(nonce),
        )
        if py["ok"]:
            assert reply == {"id": reply["id"], "ok": True, "result": {"token": py["result"]}}
            count("attenuated")
            if "args" in child and "args" in effective:
                count("args narrowed")
        else:
            assert strip(reply) == py, (child, effective)
            count(py["code"])
            try:
                attenuate(token, signer, holder.public_key, child, nonce=nonce)
            except AllowanceError as error:
                if any(v.field.startswith("args.") for v in error.violations):
                    count("args widened")
            break
        token = py["result"]
        holders.append(holder)
    final = verify_py(token, roots)
    if final["ok"]:
        n = len(final["result"]["linkIds"])
        count(f"links>={min(n, 4)}")
    assert final == strip(ts("verify", token=token, roots=[b64encode(r) for r in roots]))
    if final["ok"] and "args" in final["result"]["grant"]:
        args = final["result"]["grant"]["args"]
        for _ in range(8):
            tool = rng.choice(ARG_TOOLS[1:] + ["other.tool", "mail..x"])
            call = {n: rng.choice(CALL_VALUES) for n in rng.sample(ARG_NAMES, rng.randint(0, 3))}
            text = (
                json.dumps(call)
                if rng.random() < 0.9
                else rng.choice(["null", "[1]", '{"to":1,"to":2}', "{"])
            )
            py = check_arguments_json(read_args(args), tool, text)
            theirs = ts("checkArguments", args=args, tool=tool, arguments=text)["result"]["denial"]
            assert (None if py is None else py.to_json()) == theirs, (tool, text, args)
            count("calls allowed" if py is None else "calls refused")
    if final["ok"]:
        # The holder of the leaf presents on each side; both sides verify both presentations.
        leaf = holders[len(final["result"]["linkIds"]) - 1]
        allowed = final["result"]["grant"].get("aud")
        aud = rng.choice(allowed or AUDS)  # an empty aud admits no audience: both must refuse
        jti = rng.randbytes(16)
        # A third of the presentations bind no body, a third a text body, a third raw bytes.
        body, body_fields = random_body(rng)
        made_py = present(token, leaf, aud=aud, method="post", path="/p", body=body, jti=jti)
        made_ts = ts(
            "present",
            token=token,
            holderSeed=b64encode(leaf.seed),
            aud=aud,
            method="post",
            path="/p",
            jti=b64encode(jti),
            **body_fields,
        )
        assert made_ts["ok"], made_ts
        for made in (made_py, made_ts["result"]["presentation"]):
            on_ts = strip(
                ts(
                    "verifyPresentation",
                    presentation=made,
                    roots=[b64encode(r) for r in roots],
                    audience=aud,
                    method="POST",
                    path="/p",
                    **body_fields,
                )
            )
            on_py = outcome_py(
                lambda: _presented(
                    verify_presentation_sync(
                        made,
                        roots=trusted_roots(roots),
                        audience=aud,
                        method="POST",
                        path="/p",
                        body=body,
                        replay=_FreshReplay(),
                    )
                )
            )
            assert on_py == on_ts
            assert on_py["ok"] == (allowed is None or aud in allowed)
            if on_py["ok"]:
                assert on_py["result"]["holder"] == b64encode(leaf.public_key)
                assert on_py["result"]["claims"]["jti"] == b64encode(jti)
                count("presented with a body" if body is not None else "presented without")


def test_the_random_chains_exercised_long_chains_and_both_refusals():
    if not STATS:
        pytest.skip("judges the random-chain tests, which were not run")
    print(STATS)
    assert STATS.get("attenuated", 0) >= CHAINS, STATS
    assert STATS.get("args narrowed", 0) >= 10 and STATS.get("args widened", 0) >= 10, STATS
    assert STATS.get("links>=4", 0) >= 10, STATS
    assert STATS.get("ERR_WIDENED", 0) >= 5, STATS
    assert STATS.get("ERR_DEPTH", 0) >= 1, STATS
    assert STATS.get("calls allowed", 0) >= 20 and STATS.get("calls refused", 0) >= 20, STATS
    assert STATS.get("presented with a body", 0) >= 20, STATS
    assert STATS.get("presented without", 0) >= 10, STATS


def random_body(rng: random.Random) -> tuple[str | bytes | None, dict[str, str]]:
    """No body, a text body (non-ASCII included, sent as UTF-8) or raw bytes (not UTF-8)."""
    choice = rng.randrange(3)
    if choice == 0:
        return None, {}
    if choice == 1:
        text = json.dumps({"q": rng.choice(["", "é", "日本", "a" * 300]), "n": rng.randint(0, 9)})
        return text, {"body": text}
    data = rng.randbytes(rng.randint(0, 64)) + b"\xff"
    return data, {"bodyBytes": b64encode(data)}


def test_body_bound_presentations_verify_across_and_are_refused_alike(ts):
    """spec/presentation.md §3.4: a presentation bound to a body in one implementation verifies in
    the other with that body, and both refuse it with another body, with none, or (where binding
    is required) a presentation that binds none."""
    rng = random.Random(11)
    root, a = key(rng), key(rng)
    aud = "https://tools.example/call"
    token = format_token(mint(root, a.public_key, {"exp": FAR, "aud": [aud]}, nonce=b"b" * 8))
    roots = [b64encode(root.public_key)]
    body = '{"name":"mail.send","arguments":{"to":"a@example.com","text":"é"}}'
    cases = [
        # (bound body, verifier's body fields, required, expected code or None)
        (body, {"body": body}, False, None),
        (body, {"bodyBytes": b64encode(body.encode())}, True, None),
        (body.encode(), {"body": body}, True, None),
        (b"", {"body": ""}, True, None),
        (body, {"body": body.replace("a@", "x@")}, False, "ERR_PRESENTATION"),
        (body, {"body": body + " "}, False, "ERR_PRESENTATION"),
        (body, {}, False, "ERR_PRESENTATION"),
        (None, {"body": body}, True, "ERR_PRESENTATION"),
        (None, {"body": body}, False, None),
    ]
    for bound, verifier_body, required, expected in cases:
        jti = rng.randbytes(16)
        bound_fields = (
            {}
            if bound is None
            else {"body": bound}
            if isinstance(bound, str)
            else {"bodyBytes": b64encode(bound)}
        )
        made_py = present(token, a, aud=aud, body=bound, jti=jti)
        made_ts = ts(
            "present",
            token=token,
            holderSeed=b64encode(a.seed),
            aud=aud,
            jti=b64encode(jti),
            **bound_fields,
        )["result"]["presentation"]
        py_body = verifier_body.get("body")
        if "bodyBytes" in verifier_body:
            py_body = b64decode(verifier_body["bodyBytes"])
        for made in (made_py, made_ts):
            on_ts = strip(
                ts(
                    "verifyPresentation",
                    presentation=made,
                    roots=roots,
                    audience=aud,
                    requireBodyBinding=required,
                    **verifier_body,
                )
            )
            on_py = outcome_py(
                lambda: _presented(
                    verify_presentation_sync(
                        made,
                        roots=trusted_roots([root.public_key]),
                        audience=aud,
                        body=py_body,
                        require_body_binding=required,
                        replay=_FreshReplay(),
                    )
                )
            )
            assert on_py == on_ts, (bound, verifier_body, required)
            if expected is None:
                assert on_py["ok"], on_py
                claims = on_py["result"]["claims"]
                if bound is None:
                    assert "bodyHash" not in claims
                else:
                    raw = bound.encode() if isinstance(bound, str) else bound
                    assert claims["bodyHash"] == b64encode(hashlib.sha256(raw).digest())
            else:
                assert on_py == {"ok": False, "code": expected, "linkIndex": None}, on_py


def _presented(verified) -> dict[str, Any]:
    return {"holder": b64encode(verified.chain.holder), "claims": verified.claims.to_json()}


class _FreshReplay:
    def claim(self, id: str, expires_at: int, now: int) -> bool:
        return True


def test_refusals_agree_on_hand_made_garbage(ts):
    """Mutated tokens (bit flips, truncations) get the same code and link index on both sides."""
    rng = random.Random(7)
    root, a, b = key(rng), key(rng), key(rng)
    base = mint(
        root, a.public_key, {"exp": FAR, "usdMicros": 10, "tools": ["search.*"]}, nonce=b"n" * 8
    )
    base = attenuate(base, a, b.public_key, {"usdMicros": 5}, nonce=b"m" * 8)
    raw = base.to_bytes()
    roots = [root.public_key]
    for i in range(300):
        data = bytearray(raw)
        choice = rng.random()
        if choice < 0.6:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif choice < 0.8:
            del data[rng.randrange(len(data)) :]
        else:
            data[rng.randrange(len(data))] = rng.randrange(256)
        token = "alw1_" + b64encode(bytes(data))
        assert verify_py(token, roots) == strip(
            ts("verify", token=token, roots=[b64encode(r) for r in roots])
        ), i


def test_the_story_vector_is_rebuilt_byte_for_byte_from_its_labels():
    """spec/vectors derive keys and nonces from labels: Python rebuilds the 5-link story exactly."""
    vector = json.loads((REPO / "spec/vectors/valid-five-link-story.json").read_text())

    def label_key(label: str) -> KeyPair:
        return KeyPair(hashlib.sha256(f"allowance-vectors/key/{label}".encode()).digest())

    def nonce(i: int) -> bytes:
        return hashlib.sha256(
            f"allowance-vectors/nonce/valid-five-link-story/{i}".encode()
        ).digest()[:8]

    now, day, usd = 1_800_000_000, 86_400, 1_000_000
    steps = [
        {
            "exp": now + 7 * day,
            "usdMicros": 100 * usd,
            "providers": [{"name": "openai"}, {"name": "anthropic"}, {"name": "google"}],
        },
        {
            "exp": now + 6 * day,
            "usdMicros": 50 * usd,
            "providers": [{"name": "openai"}, {"name": "anthropic"}],
        },
        {
            "exp": now + 5 * day,
            "usdMicros": 20 * usd,
            "providers": [{"name": "openai"}, {"name": "anthropic"}],
        },
        {"exp": now + 4 * day, "usdMicros": 10 * usd, "providers": [{"name": "anthropic"}]},
        {"exp": now + 3 * day, "usdMicros": 5 * usd, "providers": [{"name": "anthropic"}]},
    ]
    keys = [label_key(label) for label in "abcde"]
    token = mint(label_key("root"), keys[0].public_key, steps[0], nonce=nonce(0))
    for i in range(1, 5):
        token = attenuate(token, keys[i - 1], keys[i].public_key, steps[i], nonce=nonce(i))
    assert format_token(token) == vector["token"]
    assert b64decode(vector["token"][5:]) == token.to_bytes()
