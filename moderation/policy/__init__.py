"""The policy language: per-tenant YAML files, validated once, resolved into immutable `Policy`s.

`PolicyStore(dir)` reads and checks every file; `store.get(tenant)` hands out a resolved `Policy`.
`PolicyFile` (with `RuleFile`, `PlainRuleFile`, `EscalationFile`, `BudgetFile`) is the file format,
from which `policy_schema()` is generated. See docs/policy.md for the language.
"""

from moderation.policy._file import BudgetFile, EscalationFile, PlainRuleFile, PolicyFile, RuleFile
from moderation.policy._model import (
    DEFAULT_POLICY,
    Band,
    Budget,
    CategoryRule,
    ContentTypeName,
    EscalationPolicy,
    FrozenDict,
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
    "BudgetFile",
    "CategoryRule",
    "ContentTypeName",
    "EscalationFile",
    "EscalationPolicy",
    "FrozenDict",
    "PlainRuleFile",
    "Policy",
    "PolicyFile",
    "PolicyRef",
    "PolicyStore",
    "RuleFile",
    "Thresholds",
    "policy_schema",
    "validate_tenant",
]
