"""Holding answers to the OpenAPI document: the operation a request hits, and what in an answer the
document does not describe (its status, its content type, its JSON body's shape)."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib.resources import files
from typing import Any

from jsonschema import Draft202012Validator

PARAMETER = re.compile(r"\{[^}]+\}")


@cache
def document() -> dict[str, Any]:
    return json.loads(files("hub").joinpath("openapi.json").read_text())


def template_of(path: str) -> str:
    """The document's path that a concrete request path falls under."""
    for template in document()["paths"]:
        pattern = PARAMETER.sub("[^/]+", re.escape(template).replace(r"\{", "{").replace(r"\}", "}"))
        if re.fullmatch(pattern, path):
            return template
    raise AssertionError(f"{path} is not in the document")


def resolved(node: dict[str, Any]) -> dict[str, Any]:
    """A response object, its `$ref` (to components) followed."""
    while "$ref" in node:
        target: Any = document()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    """The schema with the document's components beside it, where its `#/components/...` references point."""
    return Draft202012Validator({**schema, "components": document()["components"]})


def problems(method: str, path: str, status: int, content_type: str, body: bytes) -> list[str]:
    """What the document does not say of this answer; empty when it describes it."""
    where = f"{method} {path} -> {status}"
    operation = document()["paths"][template_of(path)].get(method.lower())
    if operation is None:
        return [f"{where}: the method is not documented"]
    response = operation["responses"].get(str(status))
    if response is None:
        return [f"{where}: the status is not documented"]
    content = resolved(response).get("content")
    if not content:
        return []
    media_type = content_type.split(";")[0].strip()
    if media_type not in content:
        return [f"{where}: {media_type} is not a documented content type ({', '.join(content)})"]
    schema = content[media_type].get("schema")
    if media_type != "application/json" or schema is None:
        return []
    answer = json.loads(body)
    return [f"{where}: {error.json_path}: {error.message}" for error in validator(schema).iter_errors(answer)]
