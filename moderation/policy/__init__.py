"""The policy language: per-tenant YAML files, validated once, resolved into immutable `Policy`s.

`PolicyStore(dir)` reads and checks every file; `store.get(tenant)` hands out a resolved `Policy`.
See docs/policy.md for the language.
"""

from moderation.policy._model import (
    DEFAULT_POLICY,
    Band,
    Budget,
    CategoryRule,
    ContentTypeName,
    EscalationPolicy,
    Policy,
    PolicyRef,
    Thresholds,
    validate_tenant,
)
from moderation.policy._schema import policy_schema
from moderation.policy._store import PolicyStore

__all__ = [
    "DEFAULT_POLICY",
    "Band",
    "Budget",
    "CategoryRule",
    "ContentTypeName",
    "EscalationPolicy",
    "Policy",
    "PolicyRef",
    "PolicyStore",
    "Thresholds",
    "policy_schema",
    "validate_tenant",
]
