"""The canonical CBOR of spec/format.md §3: one test per row of the §3.3 summary table, the first
violation of a depth-first walk, and round trips through the encoder."""

from __future__ import annotations

import random

import pytest

from allowance._cbor import decode, encode
from allowance.errors import AllowanceError


def code(data: bytes) -> str:
    try:
        decode(data)
    except AllowanceError as error:
        return error.code
    return "ok"


@pytest.mark.parametrize(
    "hex_, expected",
    [
        ("", "ERR_MALFORMED"),  # nothing to read
        ("18", "ERR_MALFORMED"),  # argument past the end
        ("43 0102", "ERR_MALFORMED"),  # content past the end
        ("20", "ERR_MALFORMED"),  # negative integer
        ("38 05", "ERR_MALFORMED"),  # negative and non-shortest: still malformed, tested first
        ("3f", "ERR_MALFORMED"),
        ("c1 00", "ERR_MALFORMED"),  # tag
        ("f4", "ERR_MALFORMED"),  # false
        ("f5", "ERR_MALFORMED"),  # true
        ("f6", "ERR_MALFORMED"),  # null
        ("f7", "ERR_MALFORMED"),  # undefined
        ("f0", "ERR_MALFORMED"),  # simple value
        ("ff", "ERR_MALFORMED"),  # break
        ("1c", "ERR_MALFORMED"),  # reserved additional information 28-30
        ("5d", "ERR_MALFORMED"),
        ("1f", "ERR_MALFORMED"),  # ai 31 on an unsigned integer
        ("1b 0020000000000000", "ERR_MALFORMED"),  # 2^53
        ("1b 001fffffffffffff", "ok"),  # 2^53 - 1
        ("62 c328", "ERR_MALFORMED"),  # invalid UTF-8
        ("63 eda080", "ERR_MALFORMED"),  # a surrogate in UTF-8
        ("62 c0af", "ERR_MALFORMED"),  # overlong
        ("64 f4908080", "ERR_MALFORMED"),  # above U+10FFFF
        ("a1 40 00", "ERR_MALFORMED"),  # byte-string key
        ("a1 f9 0000 00", "ERR_MALFORMED"),  # a float key is malformed, not non-canonical
        ("00 00", "ERR_MALFORMED"),  # trailing bytes
        ("f9 0000", "ERR_NON_CANONICAL"),
        ("fa 00000000", "ERR_NON_CANONICAL"),
        ("fb 0000000000000000", "ERR_NON_CANONICAL"),
        ("5f ff", "ERR_NON_CANONICAL"),  # indefinite lengths
        ("7f ff", "ERR_NON_CANONICAL"),
        ("9f ff", "ERR_NON_CANONICAL"),
        ("bf ff", "ERR_NON_CANONICAL"),
        ("18 17", "ERR_NON_CANONICAL"),  # 23 in two bytes
        ("19 00ff", "ERR_NON_CANONICAL"),
        ("1a 0000ffff", "ERR_NON_CANONICAL"),
        ("1b 00000000ffffffff", "ERR_NON_CANONICAL"),
        ("58 01 00", "ERR_NON_CANONICAL"),  # a length not shortest
        ("a2 02 00 01 00", "ERR_NON_CANONICAL"),  # keys out of order
        ("a2 01 00 01 00", "ERR_NON_CANONICAL"),  # a duplicate key
        ("a2 61 62 00 61 61 00", "ERR_NON_CANONICAL"),  # text keys bytewise
        ("a2 62 6161 00 61 62 00", "ERR_NON_CANONICAL"),  # shorter text first
        ("a2 61 61 00 01 00", "ERR_NON_CANONICAL"),  # integers before text
        ("a2 01 00 61 61 00", "ok"),
        ("63 efbbbf", "ok"),  # a byte order mark is an ordinary character
        # More elements or pairs than bytes left: refused at the head, before the float inside.
        ("84 f9 0000", "ERR_MALFORMED"),
        ("83 f9 0000", "ERR_NON_CANONICAL"),  # as many as bytes left: the walk reaches the float
        ("a5 01 f9 0000", "ERR_MALFORMED"),
        ("82 00 84 f9 0000", "ERR_MALFORMED"),  # nested: the inner count decides
        ("82 f9 0000 84 00", "ERR_NON_CANONICAL"),  # the float comes before the inner count
    ],
)
def test_the_summary_table(hex_, expected):
    assert code(bytes.fromhex(hex_.replace(" ", ""))) == expected


def test_a_leading_byte_order_mark_is_kept():
    assert decode(bytes.fromhex("64efbbbf78")) == "\ufeffx"


def test_nesting_eight_is_accepted_and_nine_refused():
    assert code(bytes([0x81] * 8 + [0x00])) == "ok"
    assert code(bytes([0x81] * 9 + [0x00])) == "ERR_MALFORMED"
    # A map's keys and values are one level deeper than the map.
    assert code(bytes([0x81] * 7 + [0xA1, 0x00, 0x00])) == "ok"
    assert code(bytes([0x81] * 8 + [0xA1, 0x00, 0x00])) == "ERR_MALFORMED"


def test_the_first_violation_of_a_depth_first_walk_decides():
    # A non-shortest integer before a float: non-canonical; a negative before a float: malformed.
    assert code(bytes.fromhex("82 1817 f90000".replace(" ", ""))) == "ERR_NON_CANONICAL"
    assert code(bytes.fromhex("82 20 f90000".replace(" ", ""))) == "ERR_MALFORMED"
    # Keys out of order are found before a malformed value that follows them.
    assert code(bytes.fromhex("a2 02 00 01 20".replace(" ", ""))) == "ERR_NON_CANONICAL"


def test_the_error_carries_the_link_index_it_was_given():
    with pytest.raises(AllowanceError) as caught:
        decode(b"\x20", link_index=3)
    assert caught.value.link_index == 3


def test_encoding_is_canonical_and_round_trips():
    rng = random.Random(11)

    def value(depth: int):
        kind = rng.randrange(6 if depth < 4 else 3)
        if kind == 0:
            return rng.choice(
                [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53 - 1]
            )
        if kind == 1:
            return rng.randbytes(rng.randrange(30))
        if kind == 2:
            return "".join(rng.choice("aé😀\ufeff") for _ in range(rng.randrange(5)))
        if kind == 3:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        keys = {rng.choice([0, 1, 24, 300, "a", "bb", "é"]) for _ in range(rng.randrange(4))}
        return {k: value(depth + 1) for k in keys}

    for _ in range(500):
        v = value(0)
        data = encode(v)
        assert encode(decode(data)) == data
        assert code(data) == "ok"


@pytest.mark.parametrize("bad", [-1, 2**53, True, 1.5, None, "\ud800"])
def test_the_encoder_refuses_what_has_no_canonical_encoding(bad):
    with pytest.raises((TypeError, ValueError, UnicodeEncodeError)):
        encode(bad)
