"""The Python API against hostile inputs and the rules a caller can trip over: every input checked
before any work (spec/format.md §8 input rules), issuing (§10), presentations (spec/presentation.md
§4, §5)."""

from __future__ import annotations

import asyncio
import math

import pytest

from allowance import (
    AllowanceError,
    KeyPair,
    Limits,
    Link,
    MemoryReplayCache,
    Token,
    attenuate,
    format_token,
    import_jwks,
    import_public_jwk,
    kid_of,
    link_ids,
    mint,
    present,
    trusted_roots,
    verify,
    verify_presentation,
    verify_presentation_sync,
)
from allowance._b64 import b64decode
from allowance.keys import export_jwks, thumbprint
from allowance.token import signing_input
from allowance import _ed25519
from allowance.grant import LinkGrant, Grant, encode_payload

NOW = 1_800_000_000
AUD = "https://tools.example/search"


def clock(seconds: int = NOW):
    return lambda: seconds * 1000


def seeded(i: int) -> KeyPair:
    return KeyPair(bytes([i]) * 32)


ROOT, A, B, C = seeded(0xA0), seeded(1), seeded(2), seeded(3)
ROOTS = trusted_roots([ROOT])


def chain3(**root_fields) -> Token:
    token = mint(ROOT, A.public_key, {"exp": NOW + 3600, **root_fields}, nonce=b"\x01" * 8)
    token = attenuate(token, A, B.public_key, {"usdMicros": 5}, nonce=b"\x02" * 8)
    return attenuate(token, B, C.public_key, {"usdMicros": 1}, nonce=b"\x03" * 8)


def refusal(run) -> tuple[str, int | None]:
    with pytest.raises(AllowanceError) as caught:
        run()
    return caught.value.code, caught.value.link_index


# ---- verify: inputs ----


@pytest.mark.parametrize(
    "answer, error",
    [
        (math.nan, ValueError),
        (math.inf, ValueError),
        (-math.inf, ValueError),
        (-1, ValueError),
        (2**53, ValueError),
        (1.8e12 + 0.5, ValueError),  # a fraction of a millisecond
        (NOW, ValueError),  # seconds, not milliseconds
        ("1800000000000", TypeError),
        (True, TypeError),
        (None, TypeError),
    ],
)
def test_a_clock_answering_anything_but_epoch_milliseconds_is_refused_before_parsing(answer, error):
    for token in (chain3(), "not a token"):
        with pytest.raises(error):
            verify(token, roots=ROOTS, now=lambda: answer)


def test_a_clock_that_is_not_a_function_is_a_type_error():
    with pytest.raises(TypeError):
        verify(chain3(), roots=ROOTS, now=NOW * 1000)


@pytest.mark.parametrize(
    "skew, error",
    [(-1, ValueError), (3601, ValueError), (1.5, TypeError), (True, TypeError), ("60", TypeError)],
)
def test_skew_seconds_is_an_integer_from_0_to_3600(skew, error):
    with pytest.raises(error):
        verify("not a token", roots=ROOTS, now=clock(), skew_seconds=skew)


def test_the_empty_audience_is_a_value_error_and_a_non_string_a_type_error():
    with pytest.raises(ValueError):
        verify("not a token", roots=ROOTS, now=clock(), audience="")
    with pytest.raises(TypeError):
        verify(chain3(), roots=ROOTS, now=clock(), audience=5)


@pytest.mark.parametrize("revocations", ["abc", b"abc", 5, object()])
def test_revocations_must_be_a_container_of_ids_and_not_a_string(revocations):
    with pytest.raises(TypeError):
        verify(chain3(), roots=ROOTS, now=clock(), revocations=revocations)


class _Unreadable:
    """A revocation list that could not be read: it refuses to answer, never answers no."""

    def __init__(self) -> None:
        self.asked = 0

    def __contains__(self, link_id: object) -> bool:
        self.asked += 1
        raise AllowanceError("ERR_REVOCATION_UNAVAILABLE", "the revocation list is unreadable")


def test_a_revocation_container_that_cannot_answer_refuses_with_its_typed_error():
    """spec/presentation.md §6.1, §9: the store's ERR_REVOCATION_UNAVAILABLE passes through
    verification, token and presentation alike, and nothing is claimed for the presentation."""
    store = _Unreadable()
    assert refusal(lambda: verify(chain3(), roots=ROOTS, now=clock(), revocations=store)) == (
        "ERR_REVOCATION_UNAVAILABLE",
        None,
    )
    assert store.asked == 1  # asked for link 0, and verification stopped there
    replay = MemoryReplayCache()
    p = present(chain3(), C, aud=AUD, now=clock())
    assert refusal(
        lambda: verify_presentation_sync(
            p, roots=ROOTS, audience=AUD, now=clock(), revocations=store, replay=replay
        )
    ) == ("ERR_REVOCATION_UNAVAILABLE", None)
    assert len(replay) == 0


def test_limits_are_checked_by_name_type_and_range():
    with pytest.raises(ValueError):
        Limits(max_links=0)
    with pytest.raises(ValueError):
        Limits(max_links=2**53)
    with pytest.raises(TypeError):
        Limits(max_links=True)
    with pytest.raises(TypeError):
        Limits(max_links=2.0)
    with pytest.raises(TypeError):
        Limits(max_linkz=2)  # a misspelt limit is not silently ignored
    with pytest.raises(TypeError):
        verify(chain3(), roots=ROOTS, now=clock(), limits={"max_links": 2})
    assert refusal(
        lambda: verify(chain3(), roots=ROOTS, now=clock(), limits=Limits(max_links=2))
    ) == ("ERR_LIMIT", None)


def test_roots_must_be_a_mapping():
    with pytest.raises(TypeError):
        verify(chain3(), roots=[ROOT.public_key], now=clock())


# ---- verify: behaviour ----


def test_a_chain_verifies_from_string_bytes_and_token_object_alike():
    token = chain3()
    for form in (token, format_token(token), token.to_bytes()):
        chain = verify(form, roots=ROOTS, now=clock())
        assert chain.grant.usd_micros == 1
        assert chain.holder == C.public_key
        assert list(chain.link_ids) == link_ids(token)


def test_revoking_a_link_revokes_its_descendants_and_nothing_above():
    token = chain3()
    ids = link_ids(token)
    assert refusal(lambda: verify(token, roots=ROOTS, now=clock(), revocations={ids[1]})) == (
        "ERR_REVOKED",
        1,
    )
    parent = Token(token.root_kid, token.links[:1])
    assert verify(parent, roots=ROOTS, now=clock(), revocations={ids[1]}).link_ids == (ids[0],)


def test_expiry_and_skew():
    token = mint(ROOT, A.public_key, {"exp": NOW + 30}, nonce=b"\x01" * 8)
    assert verify(token, roots=ROOTS, now=clock(NOW + 60), skew_seconds=31)
    assert refusal(lambda: verify(token, roots=ROOTS, now=clock(NOW + 60), skew_seconds=30)) == (
        "ERR_EXPIRED",
        0,
    )


def test_a_root_kid_bound_to_a_key_with_another_thumbprint_is_an_unknown_root():
    """spec/format.md §8.2: a hand-made mapping cannot make one key stand for another's kid."""
    other = seeded(0xB0)
    payload = encode_payload(LinkGrant(A.public_key, b"\x07" * 8, Grant(exp=NOW + 60)))
    relabelled = Token(
        thumbprint(ROOT.public_key),
        (
            Link(
                payload,
                _ed25519.sign(other.seed, signing_input(thumbprint(ROOT.public_key), payload)),
            ),
        ),
    )
    misbound = {ROOT.kid: other.public_key}
    assert refusal(lambda: verify(relabelled, roots=misbound, now=clock())) == (
        "ERR_UNKNOWN_ROOT",
        0,
    )
    honest = Token(
        thumbprint(other.public_key),
        (
            Link(
                payload,
                _ed25519.sign(other.seed, signing_input(thumbprint(other.public_key), payload)),
            ),
        ),
    )
    assert verify(honest, roots=trusted_roots([other]), now=clock()).holder == A.public_key


def test_a_trusted_root_of_small_order_under_its_own_thumbprint_is_err_key():
    identity = bytes.fromhex("01" + "00" * 31)
    token = chain3()
    relabelled = Token(thumbprint(identity), token.links)
    assert refusal(lambda: verify(relabelled, roots={kid_of(identity): identity}, now=clock())) == (
        "ERR_KEY",
        0,
    )


def test_a_hand_built_token_object_gets_the_checks_of_its_bytes():
    token = chain3()
    assert refusal(
        lambda: verify(Token(token.root_kid[:31], token.links), roots=ROOTS, now=clock())
    ) == ("ERR_MALFORMED", None)
    many = Token(token.root_kid, token.links * 14)
    assert refusal(lambda: verify(many, roots=ROOTS, now=clock())) == ("ERR_LIMIT", None)
    with pytest.raises(TypeError):
        verify(Token(token.root_kid, ("not a link",)), roots=ROOTS, now=clock())
    with pytest.raises(TypeError):
        verify(12345, roots=ROOTS, now=clock())


def test_jwks_import_refuses_a_kid_that_is_not_the_thumbprint_a_private_key_and_weak_keys():
    jwks = export_jwks([ROOT])
    assert import_jwks(jwks) == ROOTS
    wrong = {"keys": [{**jwks["keys"][0], "kid": kid_of(A.public_key)}]}
    with pytest.raises(ValueError):
        import_jwks(wrong)
    with pytest.raises(ValueError):
        import_jwks({"keys": [{**jwks["keys"][0], "d": "AAAA"}]})
    identity = {"kty": "OKP", "crv": "Ed25519", "x": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
    with pytest.raises(ValueError):
        import_jwks({"keys": [identity]})
    assert import_jwks({"keys": [{"kty": "RSA", "n": "x"}]}) == {}


def test_a_jwks_entry_without_a_string_kty_is_malformed_and_other_key_types_are_skipped():
    good = export_jwks([ROOT])["keys"][0]
    for entry in ({"crv": "Ed25519", "x": good["x"]}, {"kty": 1}, {"kty": None}, {"kty": ["OKP"]}):
        with pytest.raises(TypeError):
            import_jwks({"keys": [good, entry]})
    for entry in (5, "OKP", ["OKP"], None):
        with pytest.raises(TypeError):
            import_jwks({"keys": [good, entry]})
    # A string kty of another type (and another OKP curve) is skipped, private part or not.
    for entry in (
        {"kty": "RSA", "n": "x", "e": "AQAB", "d": "x"},
        {"kty": "EC", "crv": "P-256", "use": "enc"},
        {"kty": "oct", "k": "AAAA"},
        {"kty": "okp", "crv": "Ed25519", "x": good["x"]},
        {"kty": "OKP", "crv": "X25519", "x": good["x"], "use": "enc"},
    ):
        assert import_jwks({"keys": [good, entry]}) == ROOTS


def test_an_okp_jwks_entry_without_a_string_crv_is_malformed_and_another_curve_is_skipped():
    # spec/format.md §8.2, as importJwks in packages/core/src/keys.ts: an OKP entry whose curve
    # cannot be read may be an Ed25519 root, so the whole set is refused rather than one skipped.
    good = export_jwks([ROOT])["keys"][0]
    for entry in (
        {"kty": "OKP", "x": "AAAA"},
        {"kty": "OKP", "crv": 5, "x": "AAAA"},
        {"kty": "OKP", "x": good["x"]},
        {"kty": "OKP", "crv": None, "x": good["x"]},
        {"kty": "OKP", "crv": ["Ed25519"], "x": good["x"]},
        {"kty": "OKP", "crv": b"Ed25519", "x": good["x"]},
    ):
        for keys in ([entry], [good, entry], [entry, good]):
            with pytest.raises(TypeError, match="crv"):
                import_jwks({"keys": keys})
    for crv in ("X25519", "Ed448", "ed25519", "Ed25519 ", ""):
        entry = {"kty": "OKP", "crv": crv, "x": good["x"], "d": "AAAA"}
        assert import_jwks({"keys": [good, entry]}) == ROOTS
        assert import_jwks({"keys": [entry]}) == {}
    # Every entry's kty is read before any key: a malformed entry after a bad Ed25519 one is
    # reported as what it is, as in TypeScript.
    with pytest.raises(TypeError, match="kty"):
        import_jwks({"keys": [{**good, "alg": "RS256"}, {"kty": 1}]})


@pytest.mark.parametrize(
    "members, error",
    [
        ({"d": "AAAA"}, ValueError),
        ({"use": "enc"}, ValueError),
        ({"use": "SIG"}, ValueError),
        ({"use": ""}, ValueError),
        ({"use": 1}, TypeError),
        ({"alg": "RS256"}, ValueError),
        ({"alg": "ES256"}, ValueError),
        ({"alg": "eddsa"}, ValueError),
        ({"alg": "none"}, ValueError),
        ({"alg": None}, TypeError),
        ({"key_ops": ["encrypt"]}, ValueError),
        ({"key_ops": ["sign"]}, ValueError),
        ({"key_ops": []}, ValueError),
        ({"key_ops": ["Verify"]}, ValueError),
        ({"key_ops": "verify"}, TypeError),
        ({"key_ops": ["verify", 1]}, TypeError),
        ({"key_ops": {"verify": True}}, TypeError),
        ({"key_ops": ["verify", "verify"]}, TypeError),  # spec/format.md §8.2: distinct
        ({"key_ops": ["sign", "verify", "sign"]}, TypeError),
        ({"kty": None}, TypeError),
        ({"kty": 7}, TypeError),
    ],
)
def test_a_jwk_for_another_use_algorithm_or_operation_is_refused(members, error):
    good = export_jwks([ROOT])["keys"][0]
    jwk = {**good, **members}
    with pytest.raises(error):
        import_public_jwk(jwk)
    with pytest.raises(error):
        import_jwks({"keys": [jwk]})


def test_a_jwk_for_verifying_ed25519_is_accepted_with_or_without_use_alg_and_key_ops():
    good = export_jwks([ROOT])["keys"][0]
    bare = {k: good[k] for k in ("kty", "crv", "x")}
    for members in (
        {},
        {"use": "sig"},
        {"alg": "EdDSA"},
        {"alg": "Ed25519"},
        {"key_ops": ["verify"]},
        {"key_ops": ["sign", "verify"]},
        {"use": "sig", "alg": "Ed25519", "key_ops": ["verify"], "kid": good["kid"]},
    ):
        assert import_public_jwk({**bare, **members}) == ROOT.public_key
        assert import_jwks({"keys": [{**bare, **members}]}) == ROOTS


# ---- issuing ----


def test_a_wider_child_is_refused_with_every_violation():
    token = mint(
        ROOT,
        A.public_key,
        {"exp": NOW + 60, "usdMicros": 10, "tools": ["search.*"], "depth": 3},
        nonce=b"\x01" * 8,
    )
    with pytest.raises(AllowanceError) as caught:
        attenuate(
            token,
            A,
            B.public_key,
            {"usdMicros": 11, "tools": ["email.send"], "exp": NOW + 61, "depth": 3},
        )
    assert caught.value.code == "ERR_WIDENED" and caught.value.link_index == 1
    assert [v.field for v in caught.value.violations] == ["depth", "exp", "usdMicros", "tools"]


def test_an_exp_or_nbf_in_milliseconds_is_refused_unless_allow_far_future_says_it_is_meant():
    ms = NOW * 1000 + 3_600_000
    with pytest.raises(ValueError, match="is it milliseconds"):
        mint(ROOT, A.public_key, {"exp": ms})
    with pytest.raises(ValueError, match='"nbf"'):
        mint(ROOT, A.public_key, {"exp": NOW + 60, "nbf": ms})
    # The edge: 10**11 - 1 is a time in seconds, 10**11 is not.
    mint(ROOT, A.public_key, {"exp": 10**11 - 1})
    with pytest.raises(ValueError, match='"exp"'):
        mint(ROOT, A.public_key, {"exp": 10**11})
    far = mint(ROOT, A.public_key, {"exp": 2**53 - 1}, allow_far_future=True)
    with pytest.raises(ValueError, match="is it milliseconds"):
        attenuate(far, A, B.public_key, {"exp": ms})
    attenuate(far, A, B.public_key, {"exp": ms}, allow_far_future=True)
    # A child that states no time inherits the far one without the option.
    attenuate(far, A, B.public_key, {})
    for bad in (None, 1, "yes"):
        # Checked before anything else, as the TypeScript library checks its options.
        with pytest.raises(TypeError, match="allow_far_future"):
            mint(ROOT, A.public_key, {}, allow_far_future=bad)
        with pytest.raises(TypeError, match="allow_far_future"):
            attenuate(far, C, B.public_key, {}, allow_far_future=bad)


def test_a_child_of_an_exhausted_depth_is_err_depth_and_restating_depth_is_widening():
    token = mint(ROOT, A.public_key, {"exp": NOW + 60, "depth": 1}, nonce=b"\x01" * 8)
    assert refusal(lambda: attenuate(token, A, B.public_key, {"depth": 1})) == ("ERR_WIDENED", 1)
    token = attenuate(token, A, B.public_key, {})
    assert refusal(lambda: attenuate(token, B, C.public_key, {})) == ("ERR_DEPTH", 2)


def test_only_the_leaf_holder_may_attenuate():
    token = chain3()
    assert refusal(lambda: attenuate(token, A, B.public_key, {})) == ("ERR_KEY", 2)


def test_an_unusable_holder_key_is_a_value_error():
    token = chain3()
    not_a_point = next(
        k for k in (bytes([i]) + bytes(31) for i in range(2, 255)) if not _ed25519.is_curve_point(k)
    )
    for holder in (
        bytes.fromhex("01" + "00" * 31),
        not_a_point,
        (2**255 - 19).to_bytes(32, "little"),
    ):
        with pytest.raises(ValueError):
            attenuate(token, C, holder, {})
        with pytest.raises(ValueError):
            mint(ROOT, holder, {"exp": NOW})
    with pytest.raises(TypeError):
        mint(ROOT, "not bytes", {"exp": NOW})


@pytest.mark.parametrize(
    "grant, error",
    [
        ({}, ValueError),  # a root needs exp
        ({"exp": NOW, "nbf": NOW}, ValueError),
        ({"exp": True}, TypeError),
        ({"exp": NOW, "usdMicros": 1.0}, TypeError),
        ({"exp": NOW, "usdMicros": -1}, ValueError),
        ({"exp": NOW, "usdMicros": 2**53}, ValueError),
        ({"exp": NOW, "depth": 256}, ValueError),
        ({"exp": NOW, "tools": ["a*"]}, ValueError),
        ({"exp": NOW, "tools": "search.*"}, TypeError),
        ({"exp": NOW, "models": ["a", "a"]}, ValueError),
        ({"exp": NOW, "aud": ["has space"]}, ValueError),
        ({"exp": NOW, "providers": [{"name": "Open"}]}, ValueError),
        ({"exp": NOW, "providers": [{"name": "a", "usd": 1}]}, TypeError),
        ({"exp": NOW, "rate": [{"seconds": 60}]}, ValueError),
        ({"exp": NOW, "rate": [{"seconds": 0, "requests": 1}]}, ValueError),
        ({"exp": NOW, "label": "\ud800"}, ValueError),
        ({"exp": NOW, "usd": 1}, TypeError),  # a misspelt field
    ],
)
def test_a_grant_outside_the_format_is_refused_before_signing(grant, error):
    with pytest.raises(error):
        mint(ROOT, A.public_key, grant)


def test_issuing_applies_the_limits():
    with pytest.raises(AllowanceError) as caught:
        mint(ROOT, A.public_key, {"exp": NOW, "models": [f"m{i}" for i in range(65)]})
    assert (caught.value.code, caught.value.link_index) == ("ERR_LIMIT", None)
    with pytest.raises(AllowanceError) as caught:
        mint(ROOT, A.public_key, {"exp": NOW, "label": "x" * 300})
    assert caught.value.code == "ERR_LIMIT"
    limits = Limits(max_payload_bytes=60)
    assert refusal(
        lambda: mint(ROOT, A.public_key, {"exp": NOW, "label": "x" * 40}, limits=limits)
    ) == ("ERR_LIMIT", 0)
    token = mint(ROOT, A.public_key, {"exp": NOW}, limits=Limits(max_links=1))
    assert refusal(lambda: attenuate(token, A, B.public_key, {}, limits=Limits(max_links=1))) == (
        "ERR_LIMIT",
        None,
    )


def test_nonces_are_random_unless_fixed_and_fixed_ones_are_8_to_32_bytes():
    first = mint(ROOT, A.public_key, {"exp": NOW})
    second = mint(ROOT, A.public_key, {"exp": NOW})
    assert link_ids(first) != link_ids(second)
    for nonce in (b"1234567", b"x" * 33):
        with pytest.raises(ValueError):
            mint(ROOT, A.public_key, {"exp": NOW}, nonce=nonce)


# ---- presentations ----


def presented(**extra):
    token = chain3()
    return token, present(
        token, C, aud=AUD, method="POST", path="/search", now=clock(), jti=b"j" * 16, **extra
    )


def check(p: str, **options):
    settings = dict(
        roots=ROOTS,
        audience=AUD,
        method="POST",
        path="/search",
        now=clock(),
        replay=MemoryReplayCache(),
    )
    settings.update(options)
    return verify_presentation_sync(p, **settings)


def test_a_presentation_is_accepted_once():
    _, p = presented()
    replay = MemoryReplayCache()
    assert check(p, replay=replay).claims.method == "POST"
    assert refusal(lambda: check(p, replay=replay)) == ("ERR_REPLAY", None)


def test_a_refused_presentation_does_not_use_up_its_id():
    _, p = presented()
    replay = MemoryReplayCache()
    assert refusal(lambda: check(p, replay=replay, path="/other")) == ("ERR_PRESENTATION", None)
    assert refusal(lambda: check(p, replay=replay, audience="https://tools.example/email")) == (
        "ERR_AUDIENCE",
        None,
    )
    assert check(p, replay=replay).chain.holder == C.public_key


def test_the_window_is_now_minus_skew_minus_max_age_exclusive_to_now_plus_skew():
    token = chain3()
    for iat, ok in ((NOW - 119, True), (NOW - 120, False), (NOW + 60, True), (NOW + 61, False)):
        p = present(token, C, aud=AUD, now=clock(iat), jti=b"k" * 16)
        if ok:
            assert check(p)
        else:
            assert refusal(lambda: check(p)) == ("ERR_STALE", None)


def test_only_the_leaf_holder_can_present():
    token = chain3()
    p = present(token, B, aud=AUD, now=clock())
    assert refusal(lambda: check(p)) == ("ERR_PRESENTATION", None)


def test_a_bound_method_is_compared_after_ascii_upper_casing_only():
    _, p = presented()
    assert check(p, method="post")
    assert refusal(lambda: check(p, method="poſt")) == ("ERR_PRESENTATION", None)
    assert refusal(lambda: check(p, method=None)) == ("ERR_PRESENTATION", None)
    with pytest.raises(ValueError):
        present(chain3(), C, aud=AUD, method="poſt")


def test_presentation_inputs_are_checked_before_the_replay_cache_is_touched():
    _, p = presented()

    class Counting:
        calls = 0

        def claim(self, id, expires_at, now):
            Counting.calls += 1
            return True

    for bad, error in (
        ({"audience": ""}, ValueError),
        ({"max_age_seconds": 3601}, ValueError),
        ({"skew_seconds": -1}, ValueError),
        ({"method": 5}, TypeError),
        ({"now": lambda: math.nan}, ValueError),
    ):
        with pytest.raises(error):
            check(p, replay=Counting(), **bad)
    assert Counting.calls == 0
    with pytest.raises(TypeError):
        check(p, replay=object())


def test_a_replay_cache_answering_anything_but_a_bool_is_not_trusted():
    _, p = presented()

    class Odd:
        def claim(self, id, expires_at, now):
            return 1

    with pytest.raises(TypeError):
        check(p, replay=Odd())


def test_an_asynchronous_replay_store_works_with_verify_presentation_and_not_the_sync_one():
    _, p = presented()
    seen: set[str] = set()

    class Store:
        async def claim(self, id, expires_at, now):
            first = id not in seen
            seen.add(id)
            return first

    options = dict(
        roots=ROOTS, audience=AUD, method="POST", path="/search", now=clock(), replay=Store()
    )
    assert asyncio.run(verify_presentation(p, **options)).claims.jti == "ampqampqampqampqampqag"
    with pytest.raises(AllowanceError):
        asyncio.run(verify_presentation(p, **options))
    with pytest.raises(TypeError):
        verify_presentation_sync(p, **options)


def test_the_memory_replay_cache_fails_closed_when_full_and_checks_its_arguments():
    cache = MemoryReplayCache(max_entries=2)
    assert cache.claim("a", 100, 0) and cache.claim("b", 100, 0)
    assert not cache.claim("c", 100, 0)  # full of live ids: refuse, never evict one
    assert cache.claim("c", 200, 100)  # a and b expired at 100: swept
    assert not cache.claim("c", 300, 150)
    for args in (("a", math.nan, 0), ("a", 1, -1), ("a", 2**53, 0), ("a", 1, True)):
        with pytest.raises((TypeError, ValueError)):
            cache.claim(*args)
    with pytest.raises(TypeError):
        cache.claim(5, 1, 0)
    with pytest.raises(TypeError):
        cache.claim("", 1, 0)  # an empty id is no one-time id
    with pytest.raises(ValueError):
        MemoryReplayCache(max_entries=0)


def test_a_full_replay_cache_is_swept_at_most_once_per_second_and_still_forgets_expired_ids():
    # As packages/verifier/src/replay.ts: a full cache scans its ids at most once per second of
    # `now`, so a flood of claims against a cache full of live ids costs no scan each.
    cache = MemoryReplayCache(max_entries=2)
    assert cache.claim("a", 5, 0)
    assert cache.claim("b", 5, 5)  # recorded already expired
    assert cache.claim("c", 100, 5)  # full: the sweep at 5 forgets a and b
    assert len(cache) == 1
    assert cache.claim("d", 5, 5)  # expired as it is recorded, after this second's sweep
    assert not cache.claim("e", 100, 5)  # full, and already swept at 5: refused, not scanned
    assert len(cache) == 2
    assert not cache.claim("c", 100, 5)  # a live id is still a replay
    assert cache.claim("e", 100, 6)  # the next second sweeps again: d is forgotten
    assert len(cache) == 2
    assert not cache.claim("f", 200, 6)  # full of live ids: refused, never evicted
    assert not cache.claim("f", 200, 99)
    assert cache.claim("f", 200, 100)  # c and e expire at 100: forgotten
    assert len(cache) == 1
    assert not cache.claim("f", 200, 150)


def test_a_replay_cache_full_of_live_ids_refuses_a_flood_and_forgets_them_once_expired():
    now = NOW
    cache = MemoryReplayCache(max_entries=20_000)
    for i in range(20_000):
        assert cache.claim(f"id{i}", now + 7200, now)
    assert not any(cache.claim(f"new{i}", now + 7200, now + 1 + i // 500) for i in range(1000))
    assert len(cache) == 20_000
    assert not cache.claim("id7", now + 9999, now + 7199)
    assert cache.claim("id7", now + 9999, now + 7200)  # every id expired: the sweep forgets them
    assert len(cache) == 1


def test_the_default_replay_cache_holds_ids_for_the_widest_window_any_verifier_may_use():
    # spec/presentation.md §5.3: every verifier given no cache shares the process's, whatever its
    # max_age and skew, so an id is held until iat + 3600 + 3600, not the first verifier's window.
    token = chain3(exp=NOW + 86_400)
    p = present(token, C, aud=AUD, now=clock())  # a random jti: the default cache is shared
    assert verify_presentation_sync(p, roots=ROOTS, audience=AUD, now=clock())
    later = dict(roots=ROOTS, audience=AUD, max_age_seconds=600, now=clock(NOW + 200))
    assert refusal(lambda: verify_presentation_sync(p, **later)) == ("ERR_REPLAY", None)
    # The widest window: still refused as a replay one second before it closes.
    widest = dict(roots=ROOTS, audience=AUD, max_age_seconds=3600, skew_seconds=3600)
    assert refusal(lambda: verify_presentation_sync(p, now=clock(NOW + 7199), **widest)) == (
        "ERR_REPLAY",
        None,
    )
    assert refusal(lambda: verify_presentation_sync(p, now=clock(NOW + 7200), **widest)) == (
        "ERR_STALE",
        None,
    )


def test_a_given_replay_cache_is_told_the_verifier_s_own_window():
    token = chain3()
    p = present(token, C, aud=AUD, now=clock(), jti=b"w" * 16)
    told: list[int] = []

    class Recording:
        def claim(self, id, expires_at, now):
            told.append(expires_at)
            return True

    verify_presentation_sync(
        p, roots=ROOTS, audience=AUD, now=clock(), max_age_seconds=600, replay=Recording()
    )
    assert told == [NOW + 600 + 60]


def test_a_presentation_for_another_token_of_the_same_holder_is_refused():
    token = chain3()
    sibling = attenuate(
        Token(token.root_kid, token.links[:2]), B, C.public_key, {"usdMicros": 2}, nonce=b"\x09" * 8
    )
    p = present(token, C, aud=AUD, now=clock(), jti=b"s" * 16)
    # Move the claims and signature onto the sibling's bytes: th no longer matches.
    from allowance import _cbor
    from allowance._b64 import b64encode

    _, payload, signature = _cbor.decode(b64decode(p[6:]))
    moved = "alwp1_" + b64encode(_cbor.encode([sibling.to_bytes(), payload, signature]))
    assert refusal(lambda: check(moved, method=None, path=None)) == ("ERR_PRESENTATION", None)
