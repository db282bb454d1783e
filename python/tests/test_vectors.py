"""Every conformance vector of spec/vectors (spec/format.md §11) and spec/vectors/presentations
(spec/presentation.md §10), read directly from the files. A vector this implementation fails fails
the suite. spec/vectors/usage is for the meter (spec/usage.md), not the token format."""

import asyncio
import json

import pytest
from conftest import SPEC_VECTORS

from allowance import AllowanceError, MemoryReplayCache, import_jwks, verify, verify_presentation
from allowance.arguments import check_arguments_json, read_args

TOKEN_VECTORS = sorted(SPEC_VECTORS.glob("*.json"))
PRESENTATION_VECTORS = sorted((SPEC_VECTORS / "presentations").glob("*.json"))
ARGUMENT_VECTORS = sorted((SPEC_VECTORS / "arguments").glob("*.json"))


def evaluate(vector: dict) -> dict:
    try:
        chain = verify(
            vector["token"],
            roots=import_jwks(vector["roots"]),
            now=lambda: vector["now"] * 1000,
            skew_seconds=vector["skew"],
            audience=vector.get("audience"),
            revocations=set(vector["revoked"]) if "revoked" in vector else None,
        )
    except AllowanceError as error:
        return {"valid": False, "code": error.code, "linkIndex": error.link_index}
    return {"valid": True, "grant": chain.grant.to_json(), "linkIds": list(chain.link_ids)}


def evaluate_presentation(vector: dict) -> dict:
    replay = MemoryReplayCache()
    result: dict = {}
    for _ in range(vector["uses"]):
        try:
            verified = asyncio.run(
                verify_presentation(
                    vector["presentation"],
                    roots=import_jwks(vector["roots"]),
                    audience=vector["audience"],
                    method=vector.get("method"),
                    path=vector.get("path"),
                    body=vector.get("body"),
                    require_body_binding=vector.get("requireBodyBinding", False),
                    now=lambda: vector["now"] * 1000,
                    skew_seconds=vector["skew"],
                    max_age_seconds=vector["maxAge"],
                    replay=replay,
                )
            )
            result = {
                "valid": True,
                "holder": verified.chain.grant.to_json()["holder"],
                "claims": verified.claims.to_json(),
            }
        except AllowanceError as error:
            result = {"valid": False, "code": error.code}
    return result


def test_the_vector_directories_are_there_and_full():
    assert len(TOKEN_VECTORS) >= 43
    assert len(PRESENTATION_VECTORS) >= 17
    assert len(ARGUMENT_VECTORS) >= 77


@pytest.mark.parametrize("path", TOKEN_VECTORS, ids=lambda p: p.stem)
def test_token_vector(path):
    vector = json.loads(path.read_text("utf-8"))
    assert vector["name"] == path.stem
    assert evaluate(vector) == vector["expected"]


@pytest.mark.parametrize("path", PRESENTATION_VECTORS, ids=lambda p: p.stem)
def test_presentation_vector(path):
    vector = json.loads(path.read_text("utf-8"))
    assert vector["name"] == path.stem
    assert evaluate_presentation(vector) == vector["expected"]


@pytest.mark.parametrize("path", ARGUMENT_VECTORS, ids=lambda p: p.stem)
def test_argument_vector(path):
    """spec/arguments.md §8: the effective args, a tool, the arguments as JSON text, a decision."""
    vector = json.loads(path.read_text("utf-8"))
    assert vector["name"] == path.stem
    denial = check_arguments_json(read_args(vector["args"]), vector["tool"], vector["arguments"])
    assert (None if denial is None else denial.to_json()) == vector["expected"]
