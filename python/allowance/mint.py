"""Minting and attenuating (spec/format.md §10)."""

from __future__ import annotations

import secrets
from typing import Any, Mapping

from . import _ed25519
from .errors import ERR_KEY, ERR_LIMIT, ERR_MALFORMED, AllowanceError
from .grant import (
    EffectiveGrant,
    Grant,
    LinkGrant,
    check_grant_limits,
    decode_payload,
    encode_payload,
    parse_grant,
)
from .keys import KeyPair, check_usable_public_key, thumbprint
from .limits import Limits, resolve_limits
from .narrow import narrow, root_effective
from .token import (
    TOKEN_PREFIX,
    Link,
    Token,
    encode_token,
    parent_digest,
    parse_token,
    signing_input,
)

NONCE_BYTES = 8

#: The first grant time, in epoch seconds, that only ``allow_far_future`` lets a grant state:
#: 10**11 s is in the year 5138, and a time that large is almost always milliseconds given as
#: seconds (spec/format.md §10).
FAR_FUTURE_SECONDS = 100_000_000_000


def mint(
    root_key: KeyPair,
    holder: bytes,
    grant: Grant | Mapping[str, Any],
    *,
    nonce: bytes | None = None,
    limits: Limits | None = None,
    allow_far_future: bool = False,
) -> Token:
    """Issues link 0: ``root_key`` grants ``grant`` to the ``holder`` public key. ``grant`` must
    state ``exp``. A fixed ``nonce`` (8 to 32 bytes) is for test vectors only. An ``exp`` or
    ``nbf`` of 10**11 or later is refused (``ValueError``) unless ``allow_far_future`` is True."""
    if not isinstance(root_key, KeyPair):
        raise TypeError('"root_key" expected a KeyPair')
    _check_option(allow_far_future)
    limits = resolve_limits(limits)
    fields = parse_grant(grant)
    if fields.exp is None:
        raise ValueError('a root grant must state "exp"')
    _check_times(fields, allow_far_future)
    holder = check_usable_public_key(holder, "holder")
    _check_window(fields.nbf, fields.exp)
    check_grant_limits(fields, limits, None)
    root_kid = thumbprint(root_key.public_key)
    link = _sign(root_key, root_kid, LinkGrant(holder, _nonce(nonce), fields), limits, 0)
    token = Token(root_kid, (link,))
    _check_sizes(token, limits, 0)
    return token


def attenuate(
    token: str | bytes | Token,
    holder_key: KeyPair,
    holder: bytes,
    grant: Grant | Mapping[str, Any],
    *,
    nonce: bytes | None = None,
    limits: Limits | None = None,
    allow_far_future: bool = False,
) -> Token:
    """Appends link n: the leaf's holder (``holder_key``) grants ``holder`` a narrower ``grant``.
    Absent fields inherit. A wider grant raises ``ERR_WIDENED`` (or ``ERR_DEPTH``) listing every
    violation; signatures of the existing chain are left to verifiers."""
    if not isinstance(holder_key, KeyPair):
        raise TypeError('"holder_key" expected a KeyPair')
    _check_option(allow_far_future)
    limits = resolve_limits(limits)
    parsed = parse_token(token, limits)
    # The existing chain: every payload decoded and folded.
    effective: EffectiveGrant | None = None
    for i, link in enumerate(parsed.links):
        decoded = decode_payload(link.payload, limits, i)
        if effective is None:
            effective = root_effective(decoded)
            if effective is None:
                raise AllowanceError(
                    ERR_MALFORMED, 'the root link must state "exp"', link_index=0, field="exp"
                )
        else:
            effective = narrow(effective, decoded, i)
    assert effective is not None
    n = len(parsed.links)
    if holder_key.public_key != effective.holder:
        raise AllowanceError(
            ERR_KEY, "this key is not the holder of the token's last link", link_index=n - 1
        )
    if n + 1 > limits.max_links:
        raise AllowanceError(
            ERR_LIMIT,
            f"the token would have {n + 1} links, the limit is {limits.max_links}",
            limit=limits.max_links,
            actual=n + 1,
        )
    fields = parse_grant(grant)
    _check_times(fields, allow_far_future)
    holder = check_usable_public_key(holder, "holder")
    check_grant_limits(fields, limits, None)
    child = LinkGrant(holder, _nonce(nonce), fields)
    result = narrow(effective, child, n)
    _check_window(result.nbf, result.exp)
    link = _sign(holder_key, parent_digest(parsed.links[-1]), child, limits, n)
    out = Token(parsed.root_kid, parsed.links + (link,))
    _check_sizes(out, limits, n)
    return out


def _nonce(nonce: bytes | None) -> bytes:
    if nonce is None:
        return secrets.token_bytes(NONCE_BYTES)
    if not isinstance(nonce, (bytes, bytearray)):
        raise TypeError('"nonce" expected bytes')
    if not 8 <= len(nonce) <= 32:
        raise ValueError(f'"nonce" expected 8 to 32 bytes, got {len(nonce)}')
    return bytes(nonce)


def _check_option(allow_far_future: object) -> None:
    if not isinstance(allow_far_future, bool):
        raise TypeError('"allow_far_future" expected a bool')


def _check_times(fields: Grant, allow_far_future: bool) -> None:
    if allow_far_future:
        return
    for name, time in (("exp", fields.exp), ("nbf", fields.nbf)):
        if time is not None and time >= FAR_FUTURE_SECONDS:
            raise ValueError(
                f'"{name}" {time} is after the year 5000: epoch seconds expected (is it '
                "milliseconds? divide by 1000); pass allow_far_future=True to mean it"
            )


def _check_window(nbf: int | None, exp: int) -> None:
    if nbf is not None and nbf >= exp:
        raise ValueError(f"nbf {nbf} must be before exp {exp}")


def _sign(signer: KeyPair, digest: bytes, grant: LinkGrant, limits: Limits, index: int) -> Link:
    payload = encode_payload(grant)
    if len(payload) > limits.max_payload_bytes:
        raise AllowanceError(
            ERR_LIMIT,
            f"the payload would have {len(payload)} bytes, the limit is {limits.max_payload_bytes}",
            link_index=index,
            limit=limits.max_payload_bytes,
            actual=len(payload),
        )
    return Link(payload, _ed25519.sign(signer.seed, signing_input(digest, payload)))


def _check_sizes(token: Token, limits: Limits, index: int) -> None:
    """§10: the string form's length (computed, 5 + ⌈4b/3⌉), then the binary form's."""
    b = len(encode_token(token))
    chars = len(TOKEN_PREFIX) + (4 * b + 2) // 3
    for limit, actual, what in (
        (limits.max_token_chars, chars, "characters"),
        (limits.max_token_bytes, b, "bytes"),
    ):
        if actual > limit:
            raise AllowanceError(
                ERR_LIMIT,
                f"the token would have {actual} {what}, the limit is {limit}",
                link_index=index,
                limit=limit,
                actual=actual,
            )
