"""Ed25519 under the one verification rule of spec/format.md §5.4.

OpenSSL (through ``cryptography``) computes the cofactorless equation of §5.4 steps 5-6: it encodes
[S]B - [k]A and compares it with the received R bytes, and it refuses a key that is not a curve
point. The rest of the rule is applied here, before OpenSSL is called: the key policy (step 1:
canonical, not small order) and S < L (step 3), so that the result never depends on what a given
OpenSSL version does with such inputs.
"""

from __future__ import annotations

import functools
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# RFC 8032 §5.1: the field prime, the group order, the curve constant d.
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

# §5.4 step 1.3: the encodings of small-order points that are canonical (y < p).
SMALL_ORDER = frozenset(
    bytes.fromhex(h)
    for h in (
        "0100000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000080",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    )
)

Verdict = Literal["ok", "bad-key", "non-canonical-s", "invalid"]


def key_policy_ok(public_key: bytes) -> bool:
    """§5.4 step 1: 32 bytes, y < p, not of small order; not whether it is a point (§12.6)."""
    if not isinstance(public_key, (bytes, bytearray)) or len(public_key) != 32:
        return False
    y = int.from_bytes(public_key, "little") & ((1 << 255) - 1)
    return y < P and bytes(public_key) not in SMALL_ORDER


def is_curve_point(public_key: bytes) -> bool:
    """RFC 8032 §5.1.3 decoding succeeds: y < p, x² = (y² − 1)/(d·y² + 1) has a root, and x = 0
    only with the sign bit clear. Issuers check it (§10); verifiers leave it to the equation."""
    if len(public_key) != 32:
        return False
    value = int.from_bytes(public_key, "little")
    sign, y = value >> 255, value & ((1 << 255) - 1)
    if y >= P:
        return False
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x2 = u * pow(v, P - 2, P) % P
    if x2 == 0:
        return sign == 0
    x = pow(x2, (P + 3) // 8, P)
    if x * x % P != x2:
        x = x * SQRT_M1 % P
    return x * x % P == x2


def is_canonical_scalar(s: bytes) -> bool:
    """§5.4 step 3: S < L, read little-endian."""
    return int.from_bytes(s, "little") < L


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> Verdict:
    """§5.4, in its order: key policy, signature length, S < L, then the cofactorless equation."""
    if not key_policy_ok(public_key):
        return "bad-key"
    if len(signature) != 64:
        return "invalid"
    if not is_canonical_scalar(signature[32:]):
        return "non-canonical-s"
    try:
        _key_object(bytes(public_key)).verify(bytes(signature), message)
    except (InvalidSignature, ValueError):
        # ValueError: OpenSSL could not decode A as a point (step 4).
        return "invalid"
    return "ok"


@functools.lru_cache(maxsize=4096)
def _key_object(public_key: bytes) -> Ed25519PublicKey:
    """OpenSSL's key object, kept for keys seen again (every link of a chain that is verified
    often). A key that is not a point raises ValueError each time: exceptions are not cached."""
    return Ed25519PublicKey.from_public_bytes(public_key)


def public_key_of(seed: bytes) -> bytes:
    return (
        Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )


def sign(seed: bytes, message: bytes) -> bytes:
    """RFC 8032 §5.1.6 pure Ed25519: deterministic, so every conforming signer gives these bytes."""
    return Ed25519PrivateKey.from_private_bytes(seed).sign(message)
