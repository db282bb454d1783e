"""Ed25519 keys named by their RFC 7638 thumbprint (spec/format.md §2.1), JWKs and trusted roots."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from . import _ed25519
from ._b64 import b64decode, b64encode

#: Trusted root keys: base64url kid → 32-byte public key. Build it with :func:`import_jwks` or
#: :func:`trusted_roots`; a mapping built by hand is checked at verification (§8.2).
TrustedRoots = Mapping[str, bytes]


def thumbprint(public_key: bytes) -> bytes:
    """The raw RFC 7638 thumbprint of an Ed25519 public key: the token's ``rootKid`` (§2.1)."""
    _check_key_bytes(public_key, "public_key")
    jwk = '{"crv":"Ed25519","kty":"OKP","x":"' + b64encode(bytes(public_key)) + '"}'
    return hashlib.sha256(jwk.encode("ascii")).digest()


def kid_of(public_key: bytes) -> str:
    """The thumbprint in base64url: the key's ``kid`` in a JWK or JWKS."""
    return b64encode(thumbprint(public_key))


@dataclass(frozen=True, repr=False)
class KeyPair:
    """An Ed25519 key pair. ``seed`` is the 32-byte RFC 8032 private key: keep it secret."""

    seed: bytes
    public_key: bytes = field(init=False)
    kid: str = field(init=False)

    def __post_init__(self) -> None:
        _check_key_bytes(self.seed, "seed")
        object.__setattr__(self, "seed", bytes(self.seed))
        object.__setattr__(self, "public_key", _ed25519.public_key_of(self.seed))
        object.__setattr__(self, "kid", kid_of(self.public_key))

    @classmethod
    def generate(cls) -> "KeyPair":
        return cls(secrets.token_bytes(32))

    def __repr__(self) -> str:  # never print the seed
        return f"KeyPair(kid={self.kid!r})"


def check_usable_public_key(public_key: bytes, name: str = "public_key") -> bytes:
    """A key that may enter the system (§10, §12.6): the key policy of §5.4 and a curve point."""
    _check_key_bytes(public_key, name)
    if not _ed25519.key_policy_ok(public_key):
        raise ValueError(f"{name!r} is not canonical or has small order (spec/format.md §5.4)")
    if not _ed25519.is_curve_point(public_key):
        raise ValueError(f"{name!r} does not decode to a curve point (spec/format.md §12.6)")
    return bytes(public_key)


def trusted_roots(keys: Iterable[KeyPair | bytes]) -> dict[str, bytes]:
    """Trusted roots from keys in hand, each named by its own thumbprint."""
    roots: dict[str, bytes] = {}
    for key in keys:
        public_key = key.public_key if isinstance(key, KeyPair) else key
        check_usable_public_key(public_key, "root key")
        roots[kid_of(public_key)] = bytes(public_key)
    return roots


#: JWK ``alg`` values naming Ed25519 signatures: "EdDSA" (RFC 8037) and "Ed25519" (RFC 9864).
_JWK_ALGS = ("EdDSA", "Ed25519")


def import_public_jwk(jwk: Any) -> bytes:
    """The public key of an Ed25519 JWK (RFC 8037). A ``kid`` must be its thumbprint. A JWK with a
    private part (``d``), or one whose ``use``, ``alg`` or ``key_ops`` say it is not for verifying
    Ed25519 signatures, is refused: a wrong type is a TypeError, a wrong value a ValueError."""
    if not isinstance(jwk, Mapping):
        raise TypeError(f"a JWK is an object, got {type(jwk).__name__}")
    if not isinstance(jwk.get("kty"), str):
        raise TypeError('a JWK has a string "kty"')
    if jwk["kty"] != "OKP" or jwk.get("crv") != "Ed25519":
        raise ValueError('not an Ed25519 JWK: "kty" must be "OKP" and "crv" "Ed25519"')
    if "d" in jwk:
        raise ValueError("a JWK of a trusted root must not contain a private key")
    for name in ("kid", "alg", "use"):
        if name in jwk and not isinstance(jwk[name], str):
            raise TypeError(f'JWK "{name}" must be a string')
    # RFC 7517 §4.2-4.3, RFC 8037: a key published for another use or algorithm is not a root.
    if "use" in jwk and jwk["use"] != "sig":
        raise ValueError(f'JWK "use" is {jwk["use"]!r}: a trusted root is for "sig"')
    if "alg" in jwk and jwk["alg"] not in _JWK_ALGS:
        raise ValueError(f'JWK "alg" is {jwk["alg"]!r}, not "EdDSA" or "Ed25519"')
    if "key_ops" in jwk:
        ops = jwk["key_ops"]
        # RFC 7517 §4.3, spec/format.md §8.2: the operations are distinct strings.
        if (
            not isinstance(ops, list)
            or not all(isinstance(op, str) for op in ops)
            or len(set(ops)) != len(ops)
        ):
            raise TypeError('JWK "key_ops" must be a list of distinct strings')
        if "verify" not in ops:
            raise ValueError(f'JWK "key_ops" {ops!r} does not allow "verify"')
    x = jwk.get("x")
    public_key = b64decode(x) if isinstance(x, str) else None
    if public_key is None or len(public_key) != 32:
        raise ValueError('JWK "x" must be 32 bytes in canonical base64url')
    check_usable_public_key(public_key, "x")
    if "kid" in jwk and jwk["kid"] != kid_of(public_key):
        raise ValueError(f'JWK "kid" {jwk["kid"]} is not its RFC 7638 thumbprint')
    return public_key


def import_jwks(jwks: Any) -> dict[str, bytes]:
    """Trusted roots from a JWKS (spec/format.md §8.2). Entries of other key types (a string
    ``kty`` other than "OKP", or "OKP" with a string ``crv`` other than "Ed25519") are skipped, as
    a JWKS may serve several algorithms; an entry that is no object, has no string ``kty``, or is
    "OKP" with no string ``crv`` is malformed (TypeError), and a bad Ed25519 entry is an error as
    in :func:`import_public_jwk`."""
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise TypeError('a JWKS is {"keys": [...]}')
    if len(jwks["keys"]) > 256:
        raise ValueError("a JWKS of trusted roots holds at most 256 keys")
    for i, entry in enumerate(jwks["keys"]):
        if not isinstance(entry, Mapping):
            raise TypeError(f"JWKS keys.{i} is not an object")
        # Skipping an entry whose type cannot be read would hide a malformed key set.
        if not isinstance(entry.get("kty"), str):
            raise TypeError(f'JWKS keys.{i} has no string "kty"')
    roots: dict[str, bytes] = {}
    for i, entry in enumerate(jwks["keys"]):
        if entry["kty"] != "OKP":
            continue
        # An OKP key whose curve cannot be read may be an Ed25519 root: malformed, not skipped.
        if not isinstance(entry.get("crv"), str):
            raise TypeError(f'JWKS keys.{i} is an "OKP" JWK with no string "crv"')
        if entry["crv"] != "Ed25519":
            continue
        public_key = import_public_jwk(entry)
        roots[kid_of(public_key)] = public_key
    return roots


def export_public_jwk(key: KeyPair | bytes) -> dict[str, str]:
    public_key = key.public_key if isinstance(key, KeyPair) else bytes(key)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64encode(public_key),
        "kid": kid_of(public_key),
        "alg": "EdDSA",
        "use": "sig",
    }


def export_jwks(keys: Iterable[KeyPair | bytes]) -> dict[str, list[dict[str, str]]]:
    return {"keys": [export_public_jwk(key) for key in keys]}


def _check_key_bytes(value: Any, name: str) -> None:
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError(f"{name!r} expected bytes, got {type(value).__name__}")
    if len(value) != 32:
        raise ValueError(f"{name!r} expected 32 bytes, got {len(value)}")
