"""The token container (spec/format.md §2, §5.3) and its parsing (§8.1)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from . import _cbor
from ._b64 import b64decode, b64encode
from .errors import ERR_LIMIT, ERR_MALFORMED, AllowanceError
from .limits import Limits

TOKEN_PREFIX = "alw1_"
# §5.1 domain-separation strings, each ASCII text and one zero byte.
LINK_SIGNATURE_CONTEXT = b"allowance-link-v1\x00"
PARENT_HASH_CONTEXT = b"allowance-parent-v1\x00"
LINK_ID_CONTEXT = b"allowance-id-v1\x00"


@dataclass(frozen=True, slots=True)
class Link:
    """One signed link: canonical CBOR payload bytes and a 64-byte Ed25519 signature."""

    payload: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class Token:
    """A parsed, **unverified** token: the raw root kid and the links, root first."""

    root_kid: bytes
    links: tuple[Link, ...]

    def to_bytes(self) -> bytes:
        """The binary form (§2.1): the token hash and presentations are over these bytes."""
        return encode_token(self)

    def __str__(self) -> str:
        return format_token(self)


def encode_token(token: Token) -> bytes:
    return _cbor.encode([token.root_kid, *([link.payload, link.signature] for link in token.links)])


def format_token(token: Token) -> str:
    """The string form (§2.2): ``alw1_`` and the unpadded base64url of the binary form."""
    return TOKEN_PREFIX + b64encode(encode_token(token))


def text_size(text: str) -> int:
    """A string's length in UTF-8 bytes (§7); a lone surrogate (no UTF-8 form) counts 3."""
    return len(text.encode("utf-8", "surrogatepass"))


def signing_input(parent_digest: bytes, payload: bytes) -> bytes:
    """M_i of §5.2."""
    return LINK_SIGNATURE_CONTEXT + parent_digest + payload


def parent_digest(link: Link) -> bytes:
    """parentDigest of the link after ``link`` (§5.3): its payload and signature as received."""
    return hashlib.sha256(PARENT_HASH_CONTEXT + link.payload + link.signature).digest()


def link_id(parent_id: bytes, payload: bytes) -> bytes:
    """id_i of §5.3: over the parent's id and the payload, not the signatures."""
    return hashlib.sha256(LINK_ID_CONTEXT + parent_id + payload).digest()


def link_ids(token: Token) -> list[str]:
    """Every link's id, root first, in base64url: the revocation handles."""
    ids, parent = [], token.root_kid
    for link in token.links:
        parent = link_id(parent, link.payload)
        ids.append(b64encode(parent))
    return ids


def parse_token(token: str | bytes | Token, limits: Limits) -> Token:
    """§8.1: the string form from step 1, the binary form from step 4; a Token object is re-encoded
    and parsed from step 4, since it may have been built by hand. No signature, no payload."""
    if isinstance(token, str):
        # UTF-8 is never shorter than the code points: a string too long in those needs no encoding.
        size = len(token) if len(token) > limits.max_token_chars else text_size(token)
        if size > limits.max_token_chars:  # step 1
            raise AllowanceError(
                ERR_LIMIT,
                f"token text has {size} UTF-8 bytes, the limit is {limits.max_token_chars}",
                limit=limits.max_token_chars,
                actual=size,
            )
        if not token.startswith(TOKEN_PREFIX):  # step 2
            raise AllowanceError(ERR_MALFORMED, f"a token starts with {TOKEN_PREFIX}")
        data = b64decode(token[len(TOKEN_PREFIX) :])  # step 3
        if data is None:
            raise AllowanceError(ERR_MALFORMED, "token body is not canonical unpadded base64url")
    elif isinstance(token, (bytes, bytearray, memoryview)):
        data = bytes(token)
    elif isinstance(token, Token):
        data = _token_object_bytes(token)
    else:
        raise TypeError(f'"token" expected a string, bytes or Token, got {type(token).__name__}')
    return parse_binary(data, limits)


def parse_binary(data: bytes, limits: Limits) -> Token:
    """§8.1 steps 4-9."""
    if len(data) > limits.max_token_bytes:  # step 4
        raise AllowanceError(
            ERR_LIMIT,
            f"token has {len(data)} bytes, the limit is {limits.max_token_bytes}",
            limit=limits.max_token_bytes,
            actual=len(data),
        )
    value = _cbor.decode(data)  # step 5
    if not isinstance(value, list) or len(value) < 2:  # step 6
        raise AllowanceError(ERR_MALFORMED, "a token is an array of the root kid and its links")
    n = len(value) - 1
    if n > limits.max_links:  # step 7
        raise AllowanceError(
            ERR_LIMIT,
            f"token has {n} links, the limit is {limits.max_links}",
            limit=limits.max_links,
            actual=n,
        )
    root_kid = value[0]
    if not isinstance(root_kid, bytes) or len(root_kid) != 32:  # step 8
        raise AllowanceError(ERR_MALFORMED, "the root kid is 32 bytes")
    links = []
    for i, item in enumerate(value[1:]):  # step 9
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(isinstance(part, bytes) for part in item)
        ):
            raise AllowanceError(
                ERR_MALFORMED, "a link is an array of payload and signature", link_index=i
            )
        payload, signature = item
        if len(payload) > limits.max_payload_bytes:
            raise AllowanceError(
                ERR_LIMIT,
                f"payload has {len(payload)} bytes, the limit is {limits.max_payload_bytes}",
                link_index=i,
                limit=limits.max_payload_bytes,
                actual=len(payload),
            )
        if len(signature) != 64:
            raise AllowanceError(ERR_MALFORMED, "a signature is 64 bytes", link_index=i)
        links.append(Link(payload, signature))
    return Token(root_kid, tuple(links))


def _token_object_bytes(token: Token) -> bytes:
    """The binary form a hand-built Token stands for; a wrong shape is the caller's TypeError."""
    if not isinstance(token.root_kid, (bytes, bytearray)) or not isinstance(token.links, tuple):
        raise TypeError("a Token holds root_kid bytes and a tuple of links")
    for link in token.links:
        if (
            not isinstance(link, Link)
            or not isinstance(link.payload, (bytes, bytearray))
            or not isinstance(link.signature, (bytes, bytearray))
        ):
            raise TypeError("a Token's links are Link(payload: bytes, signature: bytes)")
    return _cbor.encode(
        [bytes(token.root_kid), *([bytes(l.payload), bytes(l.signature)] for l in token.links)]
    )
