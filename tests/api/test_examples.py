"""Every operation documents an example, and every recorded example answer fits its operation's schema."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from api.app import create_app
from api.examples import EXAMPLES
from api.settings import Settings


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The app's OpenAPI document: it depends on the routes only, not on any store."""
    app = create_app(Settings(database_url="sqlite:///file:openapi-examples?mode=memory&cache=shared"))
    return app.openapi()


def examples_of(content: dict[str, Any], schemas: dict[str, Any]) -> list[Any]:
    """The examples a response's or body's media types give, in place or on the schema they name."""
    found = []
    for media in content.values():
        found += [media["example"]] if "example" in media else []
        found += [example["value"] for example in media.get("examples", {}).values()]
        name = media.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
        found += schemas.get(name, {}).get("examples", [])
    return found


def test_every_operation_has_an_example_of_its_request_or_its_answer(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    without = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            contents = [operation.get("requestBody", {}).get("content", {})] + [
                answer.get("content", {})
                for status, answer in operation["responses"].items()
                if status.startswith("2")
            ]
            if not any(examples_of(content, schemas) for content in contents):
                without.append(f"{method.upper()} {path}")
    assert without == []


@pytest.mark.parametrize("operation", sorted(EXAMPLES))
def test_each_recorded_example_fits_its_operations_answer_schema(
    document: dict[str, Any], operation: str
) -> None:
    example = EXAMPLES[operation]
    method, path = operation.split(" ", 1)
    answer = document["paths"][path][method.lower()]["responses"][example["status"]]
    media = answer["content"][example["media_type"]]
    assert media["example"] == example["value"]
    if not example["media_type"].endswith("json"):
        assert isinstance(example["value"], str)
        assert example["value"]
        return
    schema = media.get("schema", {}) | {"components": document["components"]}
    errors = [error.message for error in Draft202012Validator(schema).iter_errors(example["value"])]
    assert errors == []
