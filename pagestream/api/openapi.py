"""The app's OpenAPI document, corrected to say what the handlers really do."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from pagestream.api.problems import Problem, problem


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document (built once, then cached on the app).

    FastAPI's defaults are corrected here: validation errors are ``Problem`` documents (not
    ``HTTPValidationError``), and an optional query or header parameter is absent, never ``null``
    (a query string cannot send a JSON null).
    """
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            for param in op.get("parameters", []):
                schema = param.get("schema", {})
                variants = [v for v in schema.get("anyOf", []) if v != {"type": "null"}]
                if "anyOf" in schema and len(variants) == 1:
                    del schema["anyOf"]
                    schema.update(variants[0])
            for status, response in op.get("responses", {}).items():
                content = response.get("content", {})
                if status.startswith(("4", "5")) and "application/json" in content:
                    response.update(problem(response.get("description", "error")))
    app.openapi_schema = doc
    return doc
