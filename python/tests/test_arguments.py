"""Tool-argument constraints (spec/arguments.md) beyond the vectors: hostile spellings checked by
both implementations, which must decide alike; and the reading of ``args`` from a caller."""

from __future__ import annotations

import json

import pytest

from allowance import KeyPair, attenuate, mint, verify, trusted_roots
from allowance.arguments import check_arguments, check_arguments_json, read_args

ARGS = [
    {
        "tool": "t",
        "constraints": [
            {
                "name": "email",
                "kind": "emailDomain",
                "domains": ["example.com", "*.corp.example"],
                "optional": True,
            },
            {"name": "glob", "kind": "glob", "glob": "/srv/data/*.txt", "optional": True},
            {"name": "deep", "kind": "glob", "glob": "out/**", "optional": True},
            {
                "name": "url",
                "kind": "url",
                "urls": [
                    "https://api.example.com/v1",
                    "http://10.0.0.1:8080/",
                    "https://*.cdn.example/a/",
                ],
                "optional": True,
            },
            {"name": "prefix", "kind": "prefix", "prefix": "/tmp/", "optional": True},
            {"name": "exact", "kind": "exact", "value": "café", "optional": True},
            {"name": "n", "kind": "range", "min": 1, "max": 10, "optional": True},
            {"name": "short", "kind": "maxLength", "max": 8, "optional": True},
        ],
    }
]
GOOD = {
    "email": ["bob@example.com", "a.b+c@x.corp.example"],
    "glob": ["/srv/data/report.txt"],
    "deep": ["out/a", "out/a/b.c"],
    "url": [
        "https://api.example.com/v1/x?y=1#z",
        "http://10.0.0.1:8080/",
        "https://img.cdn.example/a/b",
    ],
    "prefix": ["/tmp/x"],
    "exact": ["café"],
    "n": [1, 10, 5.0],
    "short": ["12345678", [1, 2]],
}
SPOILERS = [
    " ",
    "\\",
    "%",
    "%2e",
    "%2F",
    "%41",
    "..",
    ".",
    "/",
    "//",
    "@",
    "#",
    "?",
    ":",
    "*",
    "~",
    "\t",
    "\u212a",
    "ｅ",
    "\u00e9",
    "e\u0301",
    "\u0000",
    "\u200b",
    "\ud800",
    "[",
    "]",
    "0x",
    "%00",
    ",",
    "\u017f",
    "\u0130",
    "A",
    "-",
    "_",
    "'",
]


def spellings():
    for name, values in GOOD.items():
        for value in values:
            yield name, value
            if not isinstance(value, str):
                continue
            for spoiler in SPOILERS:
                for at in sorted({0, 1, len(value) // 2, len(value) - 1, len(value)}):
                    yield name, value[:at] + spoiler + value[at:]
                    if at < len(value):
                        yield name, value[:at] + spoiler + value[at + 1 :]


def test_every_spelling_gets_the_same_decision_from_both_implementations(ts):
    args = read_args(ARGS)
    decided = {"allowed": 0, "refused": 0}
    for text in dict.fromkeys(json.dumps({name: value}) for name, value in spellings()):
        ours = check_arguments_json(args, "t", text)
        theirs = ts("checkArguments", args=ARGS, tool="t", arguments=text)["result"]["denial"]
        assert (None if ours is None else ours.to_json()) == theirs, text
        decided["allowed" if ours is None else "refused"] += 1
    # Every good value passes, and most spoilt ones do not.
    assert decided["allowed"] >= sum(len(v) for v in GOOD.values())
    assert decided["refused"] > 1000, decided


def test_the_good_values_pass_and_known_attacks_are_refused():
    args = read_args(ARGS)
    for name, values in GOOD.items():
        for value in values:
            assert check_arguments(args, "t", {name: value}) is None, (name, value)
    for name, value in [
        ("email", "bob@example.com.evil"),
        ("email", "bob@EXAMPLE.com\u212a"),
        ("email", "user%evil.example@example.com"),
        ("email", "Bob <bob@example.com>"),
        ("email", "bob@[127.0.0.1]"),
        ("glob", "/srv/data/../etc/passwd.txt"),
        ("glob", "/srv/data/a/b.txt"),
        ("deep", "out"),
        ("url", "https://api.example.com@evil.example/v1"),
        ("url", "https://api.example.com/v10"),
        ("url", "https://api.example.com/v1/%2e%2e/admin"),
        ("url", "http://0x0a.0.0.1:8080/"),
        ("url", "http://10.1:8080/"),
        ("url", "https://cdn.example/a/"),
        ("exact", "cafe\u0301"),
        ("n", 11),
        ("n", True),
        ("n", "5"),
        ("short", "123456789"),
    ]:
        denial = check_arguments(args, "t", {name: value})
        assert denial is not None and denial.reason == "value", (name, value)


def test_a_caller_grant_with_bad_args_is_a_type_or_value_error():
    root, a = KeyPair(b"\x01" * 32), KeyPair(b"\x02" * 32)
    for args, error in (
        (
            [{"tool": "t", "constraints": [{"name": "x", "kind": "regex", "regex": "."}]}],
            ValueError,
        ),
        (
            [{"tool": "t", "constraints": [{"name": "x", "kind": "range", "min": 3, "max": 2}]}],
            ValueError,
        ),
        (
            [{"tool": "t", "constraints": [{"name": "x", "kind": "forbidden", "optional": True}]}],
            ValueError,
        ),
        (
            [
                {
                    "tool": "t",
                    "constraints": [
                        {"name": "x", "kind": "url", "urls": ["https://API.example.com/"]}
                    ],
                }
            ],
            ValueError,
        ),
        (
            [
                {
                    "tool": "t",
                    "constraints": [{"name": "x", "kind": "emailDomain", "domains": ["10.0.0.1"]}],
                }
            ],
            ValueError,
        ),
        (
            [{"tool": "t", "constraints": [{"name": "x", "kind": "oneOf", "values": [1, 1]}]}],
            ValueError,
        ),
        ([{"tool": "t", "constraints": []}, {"tool": "t", "constraints": []}], ValueError),
        ([{"tool": "t", "constraints": [{"name": "x", "kind": "exact"}]}], TypeError),
        ([{"tool": "t", "constraints": [], "allowUnnamed": False}], ValueError),
        ("not a list", TypeError),
    ):
        with pytest.raises(error):
            mint(root, a.public_key, {"exp": 4_000_000_000, "args": args})


def test_one_is_not_true_and_a_narrower_child_may_not_open_a_closed_entry():
    root, a, b = KeyPair(b"\x01" * 32), KeyPair(b"\x02" * 32), KeyPair(b"\x03" * 32)
    parent = [{"tool": "t", "constraints": [{"name": "flag", "kind": "exact", "value": True}]}]
    token = mint(root, a.public_key, {"exp": 4_000_000_000, "args": parent})
    args = verify(token, roots=trusted_roots([root])).grant.args
    assert check_arguments(args, "t", {"flag": 1}).reason == "value"
    assert check_arguments(args, "t", {"flag": True}) is None
    opened = [{**parent[0], "allowUnnamed": True}]
    with pytest.raises(Exception) as caught:
        attenuate(token, a, b.public_key, {"args": opened})
    assert caught.value.code == "ERR_WIDENED"
    assert [v.field for v in caught.value.violations] == ["args.t.*"]


@pytest.mark.parametrize(
    "arguments",
    [{1: "x"}, {"to": "a", 2: "x"}, {"to": "a", b"x": 1}, {"to": "a", None: 1}, {("to",): "a"}],
)
def test_arguments_with_a_member_name_that_is_no_string_are_refused_not_an_error(arguments):
    # No JSON object has such a name; TypeScript refuses a non-plain object with reason
    # "arguments" and never throws for a call's arguments, whether the entry is open or closed.
    for args in (
        [{"tool": "t", "constraints": [], "allowUnnamed": True}],
        [{"tool": "t", "constraints": [{"name": "to", "kind": "exact", "value": "a"}]}],
    ):
        denial = check_arguments(read_args(args), "t", arguments)
        assert denial is not None
        assert (denial.reason, denial.argument, denial.pattern) == ("arguments", None, "t")


def test_numbers_of_any_length_get_the_same_decision_from_both_implementations(ts):
    # RFC 8259 sets no limit on a number's digits. CPython's int() refuses over 4300 of them;
    # JavaScript reads such text as a double (Infinity past 1e308). Both must decide alike.
    safe = 2**53 - 1
    numbers = [
        "1" * 4301,
        "1" * 5000,
        "-" + "9" * 4301,
        "1" * 20_000,
        "1" * 309,
        "1" * 308,
        str(safe),
        str(safe + 1),
        str(safe + 2),
        "-" + str(safe),
        "-" + str(safe + 1),
        "1" + "0" * 16,
        "9" * 17,
        "9" * 18,
        str(safe) + ".0000001",
        str(safe) + "0e-1",
        "1" * 4301 + "e-4300",
        "0." + "0" * 5000 + "1",
        "5." + "0" * 5000,
        "-0",
        "7",
    ]
    args_list = [
        [{"tool": "t", "constraints": [], "allowUnnamed": True}],
        [{"tool": "t", "constraints": [{"name": "n", "kind": "range", "min": 0, "max": safe}]}],
        [{"tool": "t", "constraints": [{"name": "n", "kind": "range", "min": 5, "max": 7}]}],
        [{"tool": "t", "constraints": [{"name": "n", "kind": "exact", "value": safe}]}],
        [{"tool": "t", "constraints": [{"name": "n", "kind": "oneOf", "values": [0, 5, safe]}]}],
        [{"tool": "t", "constraints": [{"name": "n", "kind": "maxLength", "max": 2}]}],
    ]
    decided = {"allowed": 0, "refused": 0}
    for args in args_list:
        for number in numbers:
            for text in ('{"n": %s}' % number, '{"n": [%s, {"m": %s}]}' % (number, number)):
                ours = check_arguments_json(read_args(args), "t", text)
                theirs = ts("checkArguments", args=args, tool="t", arguments=text)
                assert (None if ours is None else ours.to_json()) == theirs["result"]["denial"], (
                    args,
                    text[:60],
                )
                decided["allowed" if ours is None else "refused"] += 1
    assert decided["allowed"] > 20 and decided["refused"] > 20, decided
    # A long integer is valid JSON: an open entry allows it, and it is no integer (§6.1).
    open_entry = read_args(args_list[0])
    assert check_arguments_json(open_entry, "t", '{"n": %s}' % ("1" * 4301)) is None
    assert check_arguments_json(read_args(args_list[1]), "t", '{"n": %s}' % ("1" * 4301)).reason
