"""Offline chain verification (spec/format.md §8): every step in the spec's order, so that a token
with several faults fails with the same code at the same link as in every other implementation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Container, Mapping

from . import _ed25519
from ._b64 import b64encode
from ._inputs import (
    MAX_SKEW_SECONDS,
    checked_audience,
    checked_integer,
    checked_revocations,
    checked_roots,
    checked_now,
)
from .errors import (
    ERR_AUDIENCE,
    ERR_EXPIRED,
    ERR_KEY,
    ERR_MALFORMED,
    ERR_NOT_YET_VALID,
    ERR_REVOKED,
    ERR_SIGNATURE,
    ERR_UNKNOWN_ROOT,
    AllowanceError,
)
from .grant import EffectiveGrant, LinkGrant, decode_payload
from .keys import thumbprint
from .limits import Limits, resolve_limits
from .narrow import narrow, root_effective
from .token import Token, link_id, parent_digest, parse_token, signing_input

DEFAULT_SKEW_SECONDS = 60


@dataclass(frozen=True, slots=True)
class VerifiedLink:
    index: int
    #: The link id, base64url (§5.3).
    id: str
    #: What the link itself states.
    grant: LinkGrant
    #: What is in force at this link (§6.2).
    effective: EffectiveGrant


@dataclass(frozen=True, slots=True)
class VerifiedChain:
    """The result of :func:`verify` (§8.6). Only ``verify`` makes one."""

    root_kid: str
    links: tuple[VerifiedLink, ...]
    #: The leaf's effective grant: what its holder may spend.
    grant: EffectiveGrant
    #: Every link id, root first.
    link_ids: tuple[str, ...]
    #: The leaf holder's public key.
    holder: bytes
    #: The token as verified.
    token: Token


def verify(
    token: str | bytes | Token,
    *,
    roots: Mapping[str, bytes],
    now: Callable[[], int] | None = None,
    skew_seconds: int | None = None,
    audience: str | None = None,
    revocations: Container[str] | None = None,
    limits: Limits | None = None,
) -> VerifiedChain:
    """Verifies a token against trusted roots (§8). Returns the verified chain, or raises an
    :class:`AllowanceError` whose ``code`` and ``link_index`` are those of the first failing step.

    ``now`` is the verifier's clock, a function returning epoch milliseconds (default: the system
    clock), read once; ``skew_seconds`` the clock allowance
    (0 to 3600, default 60), ``audience`` this endpoint's name, ``revocations`` any container of
    revoked link ids (a ``set``)."""
    # Every input is checked before the token is parsed (§8 input rules).
    roots = checked_roots(roots)
    limits = resolve_limits(limits)
    at = checked_now(now)
    skew = checked_integer(skew_seconds, "skew_seconds", DEFAULT_SKEW_SECONDS, MAX_SKEW_SECONDS)
    audience = checked_audience(audience, required=False)
    revocations = checked_revocations(revocations)
    return _verify(token, roots, at, skew, audience, revocations, limits)


def _verify(
    token: Any,
    roots: Mapping[str, bytes],
    now: int,
    skew: int,
    audience: str | None,
    revocations: Container[str] | None,
    limits: Limits,
) -> VerifiedChain:
    parsed = parse_token(token, limits)  # §8.1

    # §8.2 step 10: the root, which must be the key its kid names (a hand-built map can lie).
    root_kid = b64encode(parsed.root_kid)
    root_key = roots.get(root_kid)
    if (
        not isinstance(root_key, (bytes, bytearray))
        or len(root_key) != 32
        or thumbprint(root_key) != parsed.root_kid
    ):
        raise AllowanceError(
            ERR_UNKNOWN_ROOT,
            f"no trusted root has kid {root_kid}"
            if root_key is None
            else f"the trusted key bound to kid {root_kid} is not the key it names",
            link_index=0,
        )

    # §8.3, link by link, every step of a link before the next link.
    signer = bytes(root_key)
    digest = parsed.root_kid
    parent_id = parsed.root_kid
    effective: EffectiveGrant | None = None
    links: list[VerifiedLink] = []
    for i, link in enumerate(parsed.links):
        # 1. The signature over the payload bytes as received, before any of them is decoded.
        verdict = _ed25519.verify_signature(
            signer, signing_input(digest, link.payload), link.signature
        )
        if verdict == "bad-key":
            raise AllowanceError(ERR_KEY, "the signer's key fails the key policy", link_index=i)
        if verdict != "ok":
            message = (
                "signature S is not below the group order L"
                if verdict == "non-canonical-s"
                else "signature does not verify"
            )
            raise AllowanceError(ERR_SIGNATURE, message, link_index=i)
        # 2. The payload.
        grant = decode_payload(link.payload, limits, i)
        # 3. The holder key.
        if not _ed25519.key_policy_ok(grant.sub):
            raise AllowanceError(
                ERR_KEY,
                "holder key (sub) is not canonical or has small order",
                link_index=i,
                field="sub",
            )
        # 4. The grant.
        if effective is None:
            effective = root_effective(grant)
            if effective is None:
                raise AllowanceError(
                    ERR_MALFORMED, 'the root link must state "exp"', link_index=0, field="exp"
                )
        else:
            effective = narrow(effective, grant, i)
        # 5. Revocation, by id: revoking a link revokes its descendants, whose chains include it.
        raw_id = link_id(parent_id, link.payload)
        link_id_text = b64encode(raw_id)
        if revocations is not None and link_id_text in revocations:
            raise AllowanceError(ERR_REVOKED, f"link {link_id_text} is revoked", link_index=i)
        # 6, 7. This link's own exp and nbf.
        own = grant.fields
        if own.exp is not None and now - skew >= own.exp:
            raise AllowanceError(ERR_EXPIRED, f"expired at {own.exp}", link_index=i, field="exp")
        if own.nbf is not None and now + skew < own.nbf:
            raise AllowanceError(
                ERR_NOT_YET_VALID, f"not valid before {own.nbf}", link_index=i, field="nbf"
            )
        links.append(VerifiedLink(i, link_id_text, grant, effective))
        # 8.
        signer = grant.sub
        digest = parent_digest(link)
        parent_id = raw_id

    assert effective is not None  # a parsed token has at least one link
    # §8.4: the audience, against the effective aud of the leaf.
    if audience is not None and effective.aud is not None and audience not in effective.aud:
        stated = max(l.index for l in links if l.grant.fields.aud is not None)
        raise AllowanceError(
            ERR_AUDIENCE,
            f"audience {audience} is not in the token's aud",
            link_index=stated,
            field="aud",
        )
    return VerifiedChain(
        root_kid=root_kid,
        links=tuple(links),
        grant=effective,
        link_ids=tuple(l.id for l in links),
        holder=effective.holder,
        token=parsed,
    )
