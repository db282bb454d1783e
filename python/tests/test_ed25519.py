"""The signature rule of spec/format.md §5.4, against RFC 8032, Wycheproof and a plain reference
implementation of the rule (tests/ed25519_reference.py) on the cases where Ed25519 verifiers
disagree. The upstream vectors are the TypeScript tests' copies, read where they are."""

from __future__ import annotations

import hashlib
import json
import random

import pytest
from conftest import REPO
from ed25519_reference import BASE, add, decode, encode, multiply, reference_verify

from allowance import _ed25519
from allowance._ed25519 import (
    L,
    P,
    SMALL_ORDER,
    is_curve_point,
    key_policy_ok,
    sign,
    verify_signature,
)

VECTORS = REPO / "packages/core/test/vectors"
TORSION = decode(bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"))


def test_rfc8032_section_7_1():
    for v in json.loads((VECTORS / "rfc8032.json").read_text())["tests"]:
        seed, public, message = (bytes.fromhex(v[k]) for k in ("secretKey", "publicKey", "message"))
        assert _ed25519.public_key_of(seed).hex() == v["publicKey"]
        assert sign(seed, message).hex() == v["signature"]
        assert verify_signature(public, message, bytes.fromhex(v["signature"])) == "ok"


def test_wycheproof_every_case_as_the_file_says():
    data = json.loads((VECTORS / "wycheproof-ed25519.json").read_text())
    cases = [(g["publicKey"]["pk"], t) for g in data["testGroups"] for t in g["tests"]]
    assert len(cases) == data["numberOfTests"]
    for pk, t in cases:
        verdict = verify_signature(
            bytes.fromhex(pk), bytes.fromhex(t["msg"]), bytes.fromhex(t["sig"])
        )
        if t["result"] == "valid":
            assert verdict == "ok", t["tcId"]
        else:
            assert verdict != "ok", t["tcId"]
        assert verdict == reference_verify(
            bytes.fromhex(pk), bytes.fromhex(t["msg"]), bytes.fromhex(t["sig"])
        ), t["tcId"]


def test_every_small_order_encoding_is_refused_and_every_non_canonical_key_too():
    for encoding in SMALL_ORDER:
        assert not key_policy_ok(encoding)
        point = decode(encoding)
        if point is None:  # x = 0 with the sign bit set: another spelling of (0, ±1)
            point = decode(encoding[:31] + bytes([encoding[31] & 0x7F]))
            assert point is not None and point[0] == 0
        assert encode(multiply(8, point)) == encode((0, 1, 1, 0))
    for offset in range(19):
        for sign_bit in (0, 1 << 255):
            key = ((P + offset) | sign_bit).to_bytes(32, "little")
            assert not key_policy_ok(key)
            assert verify_signature(key, b"", bytes(64)) == "bad-key"
    assert key_policy_ok((P - 2).to_bytes(32, "little"))


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_a_key_of_the_wrong_length_is_bad_key(length):
    assert verify_signature(bytes(length), b"", bytes(64)) == "bad-key"


@pytest.mark.parametrize("length", [0, 63, 65, 128])
def test_a_signature_of_the_wrong_length_is_invalid(length):
    key = _ed25519.public_key_of(bytes(32))
    assert verify_signature(key, b"", bytes(length)) == "invalid"


def test_s_plus_l_is_refused_before_the_equation():
    rng = random.Random(1)
    for _ in range(50):
        seed, message = rng.randbytes(32), rng.randbytes(rng.randrange(100))
        signature = sign(seed, message)
        s = int.from_bytes(signature[32:], "little")
        malleated = signature[:32] + (s + L).to_bytes(32, "little")
        assert (
            verify_signature(_ed25519.public_key_of(seed), message, malleated) == "non-canonical-s"
        )


def test_the_identity_key_is_refused_though_one_signature_verifies_every_message_under_it():
    identity = bytes.fromhex("01" + "00" * 31)
    s = 12345
    signature = encode(multiply(s, BASE)) + s.to_bytes(32, "little")
    assert verify_signature(identity, b"any message", signature) == "bad-key"


def _scalar_and_prefix(seed: bytes) -> tuple[int, bytes]:
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def test_a_key_with_a_torsion_component_verifies_by_the_cofactorless_equation_only():
    """A' = A + T, T of order 8: [S]B − [k]A' = R − [k]T equals R exactly when 8 divides k. A
    cofactored verifier would accept every such signature; §5.4 picks cofactorless."""
    rng = random.Random(2)
    accepted = refused = 0
    for _ in range(120):
        seed, message = rng.randbytes(32), rng.randbytes(40)
        a, prefix = _scalar_and_prefix(seed)
        mixed = encode(add(multiply(a, BASE), TORSION))
        assert key_policy_ok(mixed)
        r = int.from_bytes(hashlib.sha512(prefix + message).digest(), "little") % L
        big_r = encode(multiply(r, BASE))
        k = int.from_bytes(hashlib.sha512(big_r + mixed + message).digest(), "little") % L
        signature = big_r + ((r + k * a) % L).to_bytes(32, "little")
        expected = "ok" if k % 8 == 0 else "invalid"
        assert verify_signature(mixed, message, signature) == expected
        assert reference_verify(mixed, message, signature) == expected
        accepted += expected == "ok"
        refused += expected != "ok"
    assert accepted > 0 and refused > 0


def test_an_r_with_a_torsion_component_or_a_non_canonical_r_is_refused():
    rng = random.Random(3)
    for _ in range(40):
        seed, message = rng.randbytes(32), rng.randbytes(40)
        a, prefix = _scalar_and_prefix(seed)
        public = encode(multiply(a, BASE))
        r = int.from_bytes(hashlib.sha512(prefix + message).digest(), "little") % L
        big_r = encode(add(multiply(r, BASE), TORSION))
        k = int.from_bytes(hashlib.sha512(big_r + public + message).digest(), "little") % L
        signature = big_r + ((r + k * a) % L).to_bytes(32, "little")
        assert verify_signature(public, message, signature) == "invalid"
        good = sign(seed, message)
        non_canonical = ((P + rng.randrange(19)) | (rng.randrange(2) << 255)).to_bytes(32, "little")
        assert verify_signature(public, message, non_canonical + good[32:]) == "invalid"


def test_random_keys_and_signatures_agree_with_the_reference():
    rng = random.Random(4)
    for _ in range(150):
        key, message, signature = rng.randbytes(32), rng.randbytes(20), rng.randbytes(64)
        assert verify_signature(key, message, signature) == reference_verify(
            key, message, signature
        )
        seed = rng.randbytes(32)
        good = sign(seed, message)
        assert verify_signature(key, message, good) == reference_verify(key, message, good)


def test_curve_point_decoding_agrees_with_the_reference():
    rng = random.Random(5)
    seen = {True: 0, False: 0}
    for _ in range(400):
        key = rng.randbytes(32)
        expected = decode(key) is not None
        assert is_curve_point(key) == expected
        seen[expected] += 1
    assert seen[True] > 50 and seen[False] > 50
    assert not is_curve_point(bytes.fromhex("01" + "00" * 30 + "80"))  # x = 0 with the sign bit
