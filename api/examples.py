"""An example answer for every operation that declares none, in the OpenAPI document.

`examples.json` holds real answers of this API, recorded from the test world (a township case
registered and accepted over HTTP, a meeting, a dispute, an inquiry, a webhook endpoint) and
trimmed to one or two items per list. `tests/api/test_examples.py` checks each against its
operation's response schema, so an answer that changes shape fails a test instead of leaving
a stale example behind. To refresh one, replace its `value` with a real answer of the changed
operation (from `make run` and curl, say), trimmed to an item or two per list.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import orjson

EXAMPLES: dict[str, dict[str, Any]] = orjson.loads(files("api").joinpath("examples.json").read_bytes())
"""`"METHOD /path"` → the success `status`, its `media_type`, and the example `value`."""


def add_examples(document: dict[str, Any]) -> dict[str, Any]:
    """Give each recorded operation's success answer its example, unless the route declares one."""
    for operation, example in EXAMPLES.items():
        method, path = operation.split(" ", 1)
        response = document["paths"][path][method.lower()]["responses"][example["status"]]
        media = response.setdefault("content", {}).setdefault(example["media_type"], {})
        if "example" not in media and "examples" not in media:
            media["example"] = example["value"]
    return document
