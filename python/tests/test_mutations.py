"""Mutated tokens and presentations that reach the decoders: both implementations must refuse each
one with the same code and link index, or accept it with the same effective grant and link ids.

A bit flip in a signed token only ever reaches the signature check (test_interop.py tries those).
Here each mutated payload is signed again by its rightful signer, and the links after it too, so
that every step after the signature runs on it: canonical CBOR, the data model, grammars, limits,
narrowing, the holder key policy, expiry. The mutations are random edits of the decoded payload
(a value replaced, a key added or dropped, a set reordered or repeated, nesting deepened) and of
its bytes (a head widened, a byte flipped, inserted or dropped), over random chains with every
grant field, args included. Presentations get the same treatment: their claims edited and signed
again by the leaf holder, or the bytes of the token they carry or of their container edited.

ALLOWANCE_MUTATIONS=N runs N token mutations (default 3,000) and N / 3 presentation mutations.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from typing import Any

from test_interop import FAR, child_grant, key, root_grant

from allowance import AllowanceError, KeyPair, attenuate, mint, present, trusted_roots, verify
from allowance import _cbor, _ed25519
from allowance._b64 import b64decode, b64encode
from allowance.presentation import PRESENTATION_CONTEXT, PRESENTATION_PREFIX
from allowance.presentation import verify_presentation_sync
from allowance.token import Link, Token, encode_token, parent_digest, signing_input

TOKEN_MUTATIONS = int(os.environ.get("ALLOWANCE_MUTATIONS", "3000"))
PRESENTATION_MUTATIONS = max(1, TOKEN_MUTATIONS // 3)
BATCH = 250
MUTATIONS_PER_CHAIN = 5
#: Both sides verify at this time (epoch ms), so that a mutated exp or nbf decides alike.
NOW_MS = 1_800_000_000_000
AUD = "https://tools.example/search"

# Values a mutation puts in place of another: every CBOR type of the data model, the edges of
# every range and grammar, and strings that are valid for one field and not another.
INTS = [
    0,
    1,
    23,
    24,
    255,
    256,
    65535,
    65536,
    2**32 - 1,
    2**32,
    2**53 - 1,
    31_622_400,
    31_622_401,
]
TEXTS = [
    "",
    "a",
    "A",
    "*",
    "a.*",
    "a..b",
    "*.a",
    "search.*",
    "search.web",
    "openai",
    "Open AI",
    "_x",
    "gpt-4o",
    "x" * 64,
    "x" * 65,
    "x" * 257,
    "\ufeffx",
    "é",
    "https://tools.example/search",
    "a\n",
]
BYTES = [
    b"",
    b"\x00",
    b"\x00" * 8,
    b"\x00" * 31,
    b"\x00" * 32,
    b"\x00" * 33,
    b"\x01" + b"\x00" * 31,
]


def interesting(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.3:
        return rng.choice(INTS)
    if roll < 0.55:
        return rng.choice(TEXTS)
    if roll < 0.7:
        return rng.choice(BYTES)
    if roll < 0.85 or depth > 2:
        return [interesting(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = rng.sample([1, 2, 3, 4, 5, "a", "name", "tool"], rng.randint(0, 3))
    return {k: interesting(rng, depth + 1) for k in keys}


def nodes(value: Any, path: tuple = ()) -> list[tuple]:
    """Every path into a decoded CBOR value, the value itself included."""
    found = [path]
    if isinstance(value, list):
        for i, element in enumerate(value):
            found += nodes(element, path + (i,))
    elif isinstance(value, dict):
        for k, element in value.items():
            found += nodes(element, path + (k,))
    return found


def edit(value: Any, rng: random.Random) -> Any:
    """One random edit of the node at a random path (returns the new root)."""
    path = rng.choice(nodes(value))
    if not path:
        return edit_node(value, rng)
    parent = value
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = edit_node(parent[path[-1]], rng)
    return value


def edit_node(node: Any, rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.35:
        return interesting(rng)
    if isinstance(node, int):
        return max(0, min(2**53 - 1, node + rng.choice([-1, 1, -node, 2**32])))
    if isinstance(node, list) and node:
        op = rng.randrange(4)
        if op == 0:
            node.reverse()
        elif op == 1:
            node.append(rng.choice(node))  # a repeated element or window
        elif op == 2:
            del node[rng.randrange(len(node))]
        else:
            node.insert(rng.randrange(len(node) + 1), interesting(rng))
        return node
    if isinstance(node, dict):
        if node and rng.random() < 0.5:
            del node[rng.choice(list(node))]
        else:
            node[rng.choice([0, 1, 2, 3, 4, 15, 16, 255, "a", "x", "openai"])] = interesting(rng)
        return node
    if isinstance(node, str):
        return rng.choice([node + rng.choice(["", ".", "*", "é", "A"]), node.upper(), node[1:]])
    return [node]  # one level deeper


def edit_bytes(data: bytes, rng: random.Random) -> bytes:
    """A byte-level edit: widened head, flipped bit, byte inserted, dropped or replaced."""
    out = bytearray(data)
    if not out:
        return bytes([rng.randrange(256)])
    i = rng.randrange(len(out))
    roll = rng.random()
    if roll < 0.25 and out[i] & 0x1F < 24 and out[i] >> 5 in (0, 2, 3, 4, 5):
        out[i : i + 1] = bytes([out[i] & 0xE0 | 24, out[i] & 0x1F])  # non-shortest head
    elif roll < 0.5:
        out[i] ^= 1 << rng.randrange(8)
    elif roll < 0.65:
        out.insert(i, rng.choice([0x00, 0x18, 0x40, 0x60, 0x80, 0xA0, 0xF6, 0xF9, 0xFF, 0x1F]))
    elif roll < 0.8:
        del out[i]
    else:
        out[i] = rng.randrange(256)
    return bytes(out)


SMALL_ORDER = [b"\x01" + b"\x00" * 31, b"\x00" * 32, b"\xec" + b"\xff" * 30 + b"\x7f"]


def canonical_texts(texts: list[str]) -> list[str]:
    return sorted(set(texts), key=_cbor.text_order_key)


def edit_field(grant: dict, rng: random.Random) -> dict:
    """A payload field given a value of its own CBOR type: what reaches the grammars, the limits,
    narrowing and the key policy rather than the type checks."""
    field = rng.choice([1, 3, 4, 5, 6, 7, 9, 10, 11, 13, 14, 14])
    if field == 1:
        grant[1] = rng.choice(SMALL_ORDER + [rng.randbytes(32)])
    elif field in (3, 4, 6, 7, 11):
        old = grant.get(field, rng.randrange(2**40))
        grant[field] = rng.choice([0, max(0, old - 1), old + 1, rng.randrange(2**53)])
    elif field == 5:
        grant[5] = rng.choice([0, 1, 255, 256, grant.get(5, 3) + 1])
    elif field in (9, 10, 13):
        count = rng.choice([1, 2, 64, 65])
        grant[field] = canonical_texts(
            [f"t{i}.*" if field == 10 else f"m{i}" for i in range(count)]
        )
        if rng.random() < 0.3:
            grant[field] = canonical_texts(["x" * rng.choice([128, 129, 256, 257, 300])])
    else:
        grant[14] = rng.choice(["", "é" * 128, "é" * 129, "x" * 256, "x" * 257, "\ufeff"])
    return grant


CLAIM_VALUES: dict[int, list[Any]] = {
    1: [b"\x00" * 32, b"\x00" * 31],
    2: [AUD, AUD + "/", AUD.upper(), "x", "x" * 256, "x" * 257, "a b"],
    3: [0, NOW_MS // 1000 - 120, NOW_MS // 1000 - 119, NOW_MS // 1000 + 60, NOW_MS // 1000 + 61],
    4: [b"j" * 15, b"j" * 16, b"j" * 32, b"j" * 33, "j" * 16],
    5: ["POST", "post", "PoST", "GET", "P" * 16, "P" * 17, "POST1", "PO ST", "POST\n"],
    6: [
        "/search",
        "/search/",
        "/",
        "/Search",
        "/s" + "a" * 1022,
        "/" + "a" * 1024,
        "/search?q",
        "/search\n",
    ],
    7: [b"\x00" * 32, b"\x00" * 31, b"\x00" * 33],
    8: [b"", 0],
}


def edit_claim(claims: dict, rng: random.Random) -> dict:
    """A claim given a value at the edge of its type and range, or dropped."""
    key = rng.choice(list(CLAIM_VALUES))
    if key in claims and rng.random() < 0.15:
        del claims[key]
    else:
        claims[key] = rng.choice(CLAIM_VALUES[key])
    return claims


def mutate_payload(payload: bytes, rng: random.Random, grant: bool = True) -> bytes:
    """A link payload (``grant``) or presentation claims, edited; still signed by nobody."""
    if rng.random() < 0.7:
        value = _cbor.decode(payload)
        if rng.random() < 0.4:
            value = edit_field(value, rng) if grant else edit_claim(value, rng)
        else:
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                value = edit(value, rng)
        try:
            payload = _cbor.encode(value)
        except (TypeError, ValueError):
            pass  # too deep or out of range for the encoder: keep the original, edit its bytes
        else:
            if rng.random() < 0.8:
                return payload
    return edit_bytes(payload, rng)


def resign(token: Token, signers: list[KeyPair], start: int) -> Token:
    """Signs link ``start`` and every link after it again, each by its rightful signer over the
    digest of the link before, as issued. A mutated ``sub`` is not followed: the next link is still
    signed by the original holder, so its signature fails on both sides."""
    links = list(token.links)
    digest = token.root_kid if start == 0 else parent_digest(links[start - 1])
    for i in range(start, len(links)):
        payload = links[i].payload
        links[i] = Link(payload, _ed25519.sign(signers[i].seed, signing_input(digest, payload)))
        digest = parent_digest(links[i])
    return Token(token.root_kid, tuple(links))


def random_chain(rng: random.Random) -> tuple[Token, list[KeyPair], KeyPair]:
    """A valid chain of 1 to 5 links; the signers, root first; the leaf holder."""
    root, holder = key(rng), key(rng)
    token = mint(root, holder.public_key, root_grant(rng), nonce=rng.randbytes(8))
    signers = [root, holder]
    for _ in range(rng.randint(0, 4)):
        effective = verify(token, roots=trusted_roots([root]), now=lambda: NOW_MS).grant.to_json()
        child = key(rng)
        try:
            token = attenuate(
                token,
                signers[-1],
                child.public_key,
                child_grant(rng, effective, widen=False),
                nonce=rng.randbytes(8),
            )
        except (AllowanceError, TypeError, ValueError):
            break  # depth ran out, or a narrowing the generator got wrong: a shorter chain
        signers.append(child)
    return token, signers[:-1], signers[-1]


def mutated_token(
    rng: random.Random, chain: tuple[Token, list[KeyPair], KeyPair]
) -> tuple[str, bytes]:
    token, signers, _ = chain
    i = rng.randrange(len(token.links))
    links = list(token.links)
    links[i] = Link(mutate_payload(links[i].payload, rng), links[i].signature)
    if rng.random() < 0.3:
        links = links[: i + 1]  # the mutated link as the leaf
    mutated = resign(Token(token.root_kid, tuple(links)), signers, i)
    return "alw1_" + b64encode(encode_token(mutated)), signers[0].public_key


def outcome(run) -> dict[str, Any]:
    try:
        return {"ok": True, "result": run()}
    except AllowanceError as error:
        return {"ok": False, "code": error.code, "linkIndex": error.link_index}


def verified_json(token: str, roots: dict[str, bytes]) -> dict[str, Any]:
    chain = verify(token, roots=roots, now=lambda: NOW_MS)
    return {"grant": chain.grant.to_json(), "linkIds": list(chain.link_ids)}


def describe(result: dict[str, Any]) -> str:
    if result["ok"]:
        return "valid"
    return f"{result['code']}@{'none' if result['linkIndex'] is None else 'link'}"


def test_re_signed_mutated_tokens_get_the_same_outcome_in_both_implementations(ts):
    rng = random.Random(20)
    seen: Counter[str] = Counter()
    done = 0
    while done < TOKEN_MUTATIONS:
        cases = []
        for n in range(min(BATCH, TOKEN_MUTATIONS - done)):
            if n % MUTATIONS_PER_CHAIN == 0:
                chain = random_chain(rng)
            cases.append(mutated_token(rng, chain))
        ours = [outcome(lambda: verified_json(t, trusted_roots([r]))) for t, r in cases]
        theirs = ts(
            "verifyMany",
            cases=[{"token": t, "roots": [b64encode(r)]} for t, r in cases],
            nowMs=NOW_MS,
        )["result"]
        for (token, _), mine, other in zip(cases, ours, theirs):
            assert "error" not in other, (token, other)
            assert mine == other, token
            seen[describe(mine)] += 1
        done += len(cases)
    print(dict(seen))
    # The mutations reached every stage after the signature, not just the CBOR decoder.
    for stage in (
        "valid",
        "ERR_MALFORMED@link",
        "ERR_NON_CANONICAL@link",
        "ERR_WIDENED@link",
        "ERR_SIGNATURE@link",
    ):
        assert seen[stage] >= TOKEN_MUTATIONS // 200, (stage, dict(seen))
    if TOKEN_MUTATIONS >= 3000:
        for stage in ("ERR_LIMIT@link", "ERR_KEY@link", "ERR_EXPIRED@link", "ERR_DEPTH@link"):
            assert seen[stage] >= 1, (stage, dict(seen))


def resigned_presentation(text: str, holder: KeyPair, rng: random.Random) -> str:
    """The presentation with its claims edited and signed again by the leaf holder, or carrying
    another (mutated) token, or with its container's bytes edited."""
    raw = _cbor.decode(bytes_of(text))
    token_bytes, payload, _ = raw
    roll = rng.random()
    if roll < 0.6:
        payload = mutate_payload(payload, rng, grant=False)
    elif roll < 0.8:
        token_bytes = edit_bytes(token_bytes, rng)
    else:
        container = edit_bytes(_cbor.encode(raw), rng)
        return PRESENTATION_PREFIX + b64encode(container)
    signature = _ed25519.sign(holder.seed, PRESENTATION_CONTEXT + payload)
    return PRESENTATION_PREFIX + b64encode(_cbor.encode([token_bytes, payload, signature]))


def bytes_of(presentation: str) -> bytes:
    data = b64decode(presentation[len(PRESENTATION_PREFIX) :])
    assert data is not None
    return data


class _Fresh:
    def claim(self, id: str, expires_at: int, now: int) -> bool:
        return True


def test_re_signed_mutated_presentations_get_the_same_outcome_in_both_implementations(ts):
    rng = random.Random(21)
    seen: Counter[str] = Counter()
    body = '{"q":"allowance"}'
    for start in range(0, PRESENTATION_MUTATIONS, BATCH):
        root, holder = key(rng), key(rng)
        token = mint(root, holder.public_key, {"exp": FAR, "aud": [AUD]}, nonce=rng.randbytes(8))
        roots = trusted_roots([root])
        cases = []
        for _ in range(min(BATCH, PRESENTATION_MUTATIONS - start)):
            made = present(
                token,
                holder,
                aud=AUD,
                method=rng.choice([None, "POST", "POST", "GET"]),
                path=rng.choice([None, "/search", "/search", "/other"]),
                body=rng.choice([None, body, body, "{}"]),
                now=lambda: NOW_MS - rng.randrange(0, 130_000),
                jti=rng.randbytes(16),
            )
            cases.append(resigned_presentation(made, holder, rng))
        ours = [
            outcome(
                lambda: verify_presentation_sync(
                    p,
                    roots=roots,
                    audience=AUD,
                    method="POST",
                    path="/search",
                    body=body,
                    now=lambda: NOW_MS,
                    replay=_Fresh(),
                ).claims.to_json()
            )
            for p in cases
        ]
        theirs = ts(
            "verifyPresentationMany",
            presentations=cases,
            roots=[b64encode(root.public_key)],
            audience=AUD,
            method="POST",
            path="/search",
            body=body,
            nowMs=NOW_MS,
        )["result"]
        for p, mine, other in zip(cases, ours, theirs):
            assert "error" not in other, (p, other)
            if other["ok"]:
                other = {"ok": True, "result": other["result"]["claims"]}
            assert mine == other, p
            seen[describe(mine)] += 1
    print(dict(seen))
    for stage in ("valid", "ERR_PRESENTATION@none", "ERR_MALFORMED@none", "ERR_STALE@none"):
        assert seen[stage] >= PRESENTATION_MUTATIONS // 100, (stage, dict(seen))
