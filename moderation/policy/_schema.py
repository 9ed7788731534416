"""The JSON Schema of a policy file, for editors that validate YAML as people type."""

from __future__ import annotations

from typing import Any

from moderation.taxonomy import TAXONOMY

__all__ = ["policy_schema"]

_THRESHOLD = {"type": "number", "minimum": 0, "maximum": 100}
_NULLABLE_THRESHOLD = {"oneOf": [_THRESHOLD, {"type": "null"}]}


def _band(overrides: bool) -> dict[str, Any]:
    props: dict[str, Any] = dict.fromkeys(("reject", "review", "escalate"), _NULLABLE_THRESHOLD)
    if overrides:
        props["animated"] = {"$ref": "#/$defs/plainRule"}
        props["illustrated"] = {"$ref": "#/$defs/plainRule"}
    return {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": props,
    }


def policy_schema() -> dict[str, Any]:
    """The JSON Schema of one policy YAML file (draft 2020-12)."""
    names = ", ".join(TAXONOMY.names())
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/moderation/moderation/docs/policy.schema.json",
        "title": "moderation policy",
        "description": "One tenant's moderation policy (policies/default.yaml or "
        "policies/tenants/<tenant>.yaml). Category names match case-insensitively.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "description": "Must equal the file's tenant name."},
            "description": {"type": ["string", "null"]},
            "extends": {
                "type": ["string", "null"],
                "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$",
                "description": "The policy this one overrides; tenants extend `default` "
                "unless they say otherwise.",
            },
            "min_confidence": {
                **_NULLABLE_THRESHOLD,
                "description": "MinConfidence sent to Rekognition; labels below never arrive.",
            },
            "content_type_min_confidence": {
                **_NULLABLE_THRESHOLD,
                "description": "Confidence at which an Animated/Illustrated content type "
                "switches a rule to its override.",
            },
            "default": {"$ref": "#/$defs/plainRule"},
            "categories": {
                "type": ["object", "null"],
                "description": f"Taxonomy {TAXONOMY.version} category -> rule. Names: {names}.",
                "additionalProperties": {"$ref": "#/$defs/rule"},
            },
            "escalation": {
                "type": ["object", "null"],
                "additionalProperties": False,
                "properties": {
                    "judge": {"enum": ["bedrock", "none", None]},
                    "model_id": {"type": ["string", "null"], "minLength": 1},
                    "guidance": {"type": ["string", "null"]},
                    "on_error": {"enum": ["review", "reject", None]},
                    "on_blocked": {"enum": ["review", "reject", None]},
                    "budget": {
                        "type": ["object", "null"],
                        "additionalProperties": False,
                        "required": ["calls", "per"],
                        "properties": {
                            "calls": {"type": "integer", "minimum": 0},
                            "per": {
                                "oneOf": [
                                    {"type": "number", "exclusiveMinimum": 0},
                                    {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[smhd]\s*$"},
                                ]
                            },
                        },
                    },
                },
            },
            "on_detector_error": {"enum": ["raise", "review", None]},
        },
        "$defs": {
            "plainRule": {"oneOf": [{"const": "allow"}, {"type": "null"}, _band(False)]},
            "rule": {"oneOf": [{"const": "allow"}, {"type": "null"}, _band(True)]},
        },
    }
