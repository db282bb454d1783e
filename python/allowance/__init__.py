"""Allowance tokens in Python: verify, attenuate and present signed, strictly narrower budgets for
AI agents. A second implementation of spec/format.md and spec/presentation.md, written from them."""

from .arguments import ArgumentDenial, ToolArguments, check_arguments, check_arguments_json
from .errors import ERROR_CODES, AllowanceError, Violation
from .grant import EffectiveGrant, Grant, LinkGrant, Provider, RateWindow
from .keys import (
    KeyPair,
    export_jwks,
    export_public_jwk,
    import_jwks,
    import_public_jwk,
    kid_of,
    trusted_roots,
)
from .limits import DEFAULT_LIMITS, Limits
from .mint import attenuate, mint
from .narrow import tool_allowed
from .presentation import (
    MemoryReplayCache,
    PresentationClaims,
    VerifiedPresentation,
    present,
    verify_presentation,
    verify_presentation_sync,
)
from .token import Link, Token, format_token, link_ids, parse_token
from .verify import VerifiedChain, VerifiedLink, verify

__all__ = [
    "DEFAULT_LIMITS",
    "ERROR_CODES",
    "AllowanceError",
    "ArgumentDenial",
    "EffectiveGrant",
    "Grant",
    "KeyPair",
    "Limits",
    "Link",
    "LinkGrant",
    "MemoryReplayCache",
    "PresentationClaims",
    "Provider",
    "RateWindow",
    "Token",
    "ToolArguments",
    "VerifiedChain",
    "VerifiedLink",
    "VerifiedPresentation",
    "Violation",
    "attenuate",
    "check_arguments",
    "check_arguments_json",
    "export_jwks",
    "export_public_jwk",
    "format_token",
    "import_jwks",
    "import_public_jwk",
    "kid_of",
    "link_ids",
    "mint",
    "parse_token",
    "present",
    "tool_allowed",
    "trusted_roots",
    "verify",
    "verify_presentation",
    "verify_presentation_sync",
]
