"""The JSON Schema of a policy file, generated from `PolicyFile`, for editors that check YAML as
people type (docs/policy.schema.json is this, committed; a test keeps them equal)."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

from moderation.policy._file import PolicyFile
from moderation.taxonomy import TAXONOMY

__all__ = ["policy_schema"]


class _FileSchema(GenerateJsonSchema):
    """Pydantic's generator without per-key titles ("Min Confidence") or `default: null`.

    An editor completing a key with a schema default of null would write `reject: null`, which in
    a tenant file removes the inherited threshold.
    """

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> Any:
        return self.generate_inner(schema["schema"])


def policy_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one policy YAML file, as a dict."""
    body = PolicyFile.model_json_schema(schema_generator=_FileSchema)
    names = ", ".join(TAXONOMY.names())
    categories = body["properties"]["categories"]
    categories["description"] = (
        f"Taxonomy {TAXONOMY.version} category -> rule; `null` removes an inherited rule. Names "
        f"match case-insensitively, `&`/`and` alike: {names}."
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/moderation/moderation/docs/policy.schema.json",
        **body,
        "title": "moderation policy",
        "description": "One tenant's moderation policy (policies/default.yaml or "
        "policies/tenants/<tenant>.yaml). Every key may be null, which in a tenant file removes "
        "what its parent set.",
    }
