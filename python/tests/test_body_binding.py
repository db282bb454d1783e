"""Request-bound presentations (spec/presentation.md §3.4, §4 step 8b, §5.2): the body hash `bh`,
against hostile inputs: other bodies, no body, bodies that are not bytes, functions that answer
nonsense, hand-made claims, and the order of the steps around 8b."""

from __future__ import annotations

import asyncio
import hashlib
import math

import pytest

from allowance import (
    AllowanceError,
    KeyPair,
    MemoryReplayCache,
    mint,
    present,
    trusted_roots,
    verify_presentation,
    verify_presentation_sync,
)
from allowance import _cbor, _ed25519
from allowance._b64 import b64decode, b64encode
from allowance.presentation import PRESENTATION_CONTEXT

NOW = 1_800_000_000
AUD = "https://tools.example/call"
ROOT, HOLDER = KeyPair(b"\xb0" * 32), KeyPair(b"\x05" * 32)
ROOTS = trusted_roots([ROOT])
TOKEN = mint(ROOT, HOLDER.public_key, {"exp": NOW + 3600}, nonce=b"\x07" * 8)
BODY = '{"name":"mail.send","arguments":{"to":"a@example.com","subject":"héllo"}}'


def clock(seconds: int = NOW):
    return lambda: seconds * 1000


class Recording:
    """A replay cache that records every id it is asked to claim."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def claim(self, id: str, expires_at: int, now: int) -> bool:
        self.ids.append(id)
        return True


def bound(body=BODY, **extra) -> str:
    return present(TOKEN, HOLDER, aud=AUD, body=body, now=clock(), jti=b"j" * 16, **extra)


def check(p: str, **options):
    settings = dict(roots=ROOTS, audience=AUD, now=clock(), replay=MemoryReplayCache())
    settings.update(options)
    return verify_presentation_sync(p, **settings)


def refused(run) -> str:
    with pytest.raises(AllowanceError) as caught:
        run()
    # Every refusal of the presentation itself names no link; a token refusal names its link.
    assert caught.value.link_index is None or caught.value.code == "ERR_EXPIRED"
    return caught.value.code


def sha(data: bytes) -> str:
    return b64encode(hashlib.sha256(data).digest())


def test_a_bound_body_verifies_with_its_bytes_or_its_text_and_the_claims_name_its_hash():
    p = bound()
    for body in (BODY, BODY.encode(), bytearray(BODY.encode())):
        claims = check(p, body=body).claims
        assert claims.body_hash == sha(BODY.encode())
        assert claims.to_json()["bodyHash"] == sha(BODY.encode())
    # The same body given as bytes when presenting makes the same claim.
    assert check(bound(BODY.encode()), body=BODY).claims.body_hash == sha(BODY.encode())


def test_the_empty_body_is_a_body_and_its_hash_is_that_of_the_empty_string():
    p = bound(b"")
    assert check(p, body="").claims.body_hash == "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
    assert refused(lambda: check(p)) == "ERR_PRESENTATION"  # given no body
    assert refused(lambda: check(p, body=" ")) == "ERR_PRESENTATION"


@pytest.mark.parametrize(
    "other",
    [
        BODY.replace("a@example.com", "x@evil.example"),
        BODY + "\n",
        BODY.replace(",", ", "),  # re-serialised: another body
        BODY.encode("utf-16"),
        BODY.replace("é", "e\u0301"),  # the same text to a reader, other bytes
        BODY[:-1],
    ],
)
def test_another_body_is_refused_and_does_not_use_up_the_presentation(other):
    p = bound()
    replay = Recording()
    assert refused(lambda: check(p, body=other, replay=replay)) == "ERR_PRESENTATION"
    assert replay.ids == []
    assert check(p, body=BODY, replay=replay).claims.body_hash is not None
    assert len(replay.ids) == 1


def test_an_unbound_presentation_verifies_whatever_the_body_unless_binding_is_required():
    p = present(TOKEN, HOLDER, aud=AUD, now=clock(), jti=b"u" * 16)
    assert check(p, body=BODY).claims.body_hash is None
    assert "bodyHash" not in check(p).claims.to_json()
    replay = Recording()
    assert refused(lambda: check(p, require_body_binding=True, replay=replay)) == "ERR_PRESENTATION"
    assert refused(lambda: check(p, body=BODY, require_body_binding=True, replay=replay)) == (
        "ERR_PRESENTATION"
    )
    assert replay.ids == []
    assert check(bound(), body=BODY, require_body_binding=True).claims.body_hash


def test_the_replay_id_names_the_body_hash_when_bound_and_only_then():
    replay = Recording()
    check(bound(), body=BODY, replay=replay)
    unbound = present(TOKEN, HOLDER, aud=AUD, now=clock(), jti=b"j" * 16)
    check(unbound, replay=replay)
    holder, jti = b64encode(HOLDER.public_key), b64encode(b"j" * 16)
    assert replay.ids == [f"{holder}.{jti}.{sha(BODY.encode())}", f"{holder}.{jti}"]
    # So the bound and the unbound presentation with one jti do not use up each other's id.
    shared = MemoryReplayCache()
    check(bound(), body=BODY, replay=shared)
    check(unbound, replay=shared)
    assert refused(lambda: check(unbound, replay=shared)) == "ERR_REPLAY"
    assert refused(lambda: check(bound(), body=BODY, replay=shared)) == "ERR_REPLAY"


def test_a_body_function_is_called_only_for_a_bound_presentation_and_may_be_asynchronous():
    calls: list[str] = []

    def read() -> bytes:
        calls.append("read")
        return BODY.encode()

    unbound = present(TOKEN, HOLDER, aud=AUD, now=clock(), jti=b"u" * 16)
    check(unbound, body=read)
    assert calls == []
    assert check(bound(), body=read).claims.body_hash == sha(BODY.encode())
    assert calls == ["read"]

    async def read_later() -> str:
        await asyncio.sleep(0)
        return BODY

    verified = asyncio.run(
        verify_presentation(
            bound(), roots=ROOTS, audience=AUD, now=clock(), body=read_later, replay=Recording()
        )
    )
    assert verified.claims.body_hash == sha(BODY.encode())


def test_the_synchronous_verifier_refuses_an_asynchronous_body_and_closes_the_coroutine():
    started: list[bool] = []

    async def read_later() -> str:
        started.append(True)
        return BODY

    replay = Recording()
    with pytest.raises(TypeError):
        check(bound(), body=read_later, replay=replay)
    assert started == [] and replay.ids == []


@pytest.mark.parametrize(
    "answer", [None, 5, ["a"], {"a": 1}, memoryview(b"x"), "\ud800", math.nan, True]
)
def test_a_body_function_answering_anything_but_bytes_or_a_utf8_string_is_a_type_error(answer):
    replay = Recording()
    with pytest.raises(TypeError):
        check(bound(), body=lambda: answer, replay=replay)
    assert replay.ids == []


def test_an_error_of_the_body_function_propagates_and_nothing_is_claimed():
    def broken():
        raise OSError("the connection closed")

    replay = Recording()
    with pytest.raises(OSError):
        check(bound(), body=broken, replay=replay)
    assert replay.ids == []


@pytest.mark.parametrize("body", [5, 1.5, ["a"], {"a": 1}, memoryview(b"x"), True, object()])
def test_a_body_of_the_wrong_type_is_a_type_error_before_anything_else(body):
    replay = Recording()
    garbage = "alwp1_AAAA"  # would be ERR_MALFORMED if parsing were reached
    with pytest.raises(TypeError):
        check(garbage, body=body, replay=replay)
    with pytest.raises(TypeError):
        check(bound(), body=body, replay=replay)
    assert replay.ids == []


@pytest.mark.parametrize("required", [None, 1, 0, "yes", "false", [True]])
def test_require_body_binding_is_a_bool(required):
    replay = Recording()
    with pytest.raises(TypeError):
        check(bound(), body=BODY, require_body_binding=required, replay=replay)
    assert replay.ids == []


@pytest.mark.parametrize("body", [5, ["a"], "\ud800", "a\udfffb", memoryview(b"x"), True])
def test_present_refuses_a_body_it_cannot_hash_as_sent(body):
    with pytest.raises(TypeError):
        present(TOKEN, HOLDER, aud=AUD, body=body, now=clock())


def test_step_8b_comes_after_the_path_and_before_the_window():
    p = bound(path="/call")
    # Another path and another body: the path (step 8) decides, with the same code.
    assert refused(lambda: check(p, path="/other", body="x")) == "ERR_PRESENTATION"
    # The token (step 2) comes first: an expired token is ERR_EXPIRED whatever the body.
    late = clock(NOW + 10_000)
    assert refused(lambda: check(p, path="/call", body="x", now=late)) == "ERR_EXPIRED"
    # Stale and another body: 8b refuses before the window (step 9) is looked at.
    stale = clock(NOW + 200)
    assert refused(lambda: check(p, path="/call", body="x", now=stale)) == "ERR_PRESENTATION"
    assert refused(lambda: check(p, path="/call", body=BODY, now=stale)) == "ERR_STALE"
    unbound = present(TOKEN, HOLDER, aud=AUD, now=clock(), jti=b"v" * 16)
    assert refused(lambda: check(unbound, require_body_binding=True, now=stale)) == (
        "ERR_PRESENTATION"
    )


def signed(claims: dict) -> str:
    """A presentation with hand-made claims, signed by the real holder."""
    token_bytes = TOKEN.to_bytes()
    base = {1: hashlib.sha256(token_bytes).digest(), 2: AUD, 3: NOW, 4: b"h" * 16}
    base.update(claims)
    payload = _cbor.encode(base)
    signature = _ed25519.sign(HOLDER.seed, PRESENTATION_CONTEXT + payload)
    return "alwp1_" + b64encode(_cbor.encode([token_bytes, payload, signature]))


@pytest.mark.parametrize(
    "bh",
    [
        hashlib.sha256(BODY.encode()).digest()[:31],
        hashlib.sha256(BODY.encode()).digest() + b"\x00",
        b"",
        b64encode(hashlib.sha256(BODY.encode()).digest()),  # text, not bytes
        0,
        hashlib.sha256(BODY.encode()).hexdigest(),
    ],
)
def test_a_bh_claim_that_is_not_32_bytes_is_refused_even_for_the_right_body(bh):
    assert refused(lambda: check(signed({7: bh}), body=BODY)) == "ERR_PRESENTATION"


def test_a_hand_made_bh_of_32_bytes_is_honoured_and_claim_8_is_unknown():
    digest = hashlib.sha256(BODY.encode()).digest()
    assert check(signed({7: digest}), body=BODY).claims.body_hash == sha(BODY.encode())
    assert refused(lambda: check(signed({7: digest, 8: 0}), body=BODY)) == "ERR_PRESENTATION"
    assert refused(lambda: check(signed({7: digest}), body=BODY + " ")) == "ERR_PRESENTATION"


def test_a_presentation_made_with_a_body_carries_exactly_the_seven_claims_in_order():
    p = bound(method="POST", path="/call")
    _, payload, _ = _cbor.decode(b64decode(p[6:]))
    claims = _cbor.decode(payload)
    assert list(claims) == [1, 2, 3, 4, 5, 6, 7]
    assert claims[7] == hashlib.sha256(BODY.encode()).digest()
