"""The policy language: per-tenant YAML files, validated once, resolved into immutable `Policy`s.

`PolicyStore(dir)` reads and checks every file; `store.get(tenant)` hands out a resolved `Policy`.
`PolicyStore.load(location)` reads a directory, an S3 prefix or an AWS AppConfig profile (the
`PolicySource`s `DirectorySource`, `S3Source`, `AppConfigSource`) and checks it for new versions.
`PolicyFile` (with `RuleFile`, `PlainRuleFile`, `EscalationFile`, `BudgetFile`, `ReviewFile`,
`QaSampleFile`) is the file format, from which `policy_schema()` is generated. `Policy.review_rules`
(`ReviewRules`) is a tenant's review desk rules. See docs/policy.md for the language.
"""

from typing import TYPE_CHECKING, Any

from moderation._lazy import by_name, load

if TYPE_CHECKING:
    from moderation.policy._file import (
        BudgetFile,
        EscalationFile,
        PlainRuleFile,
        PolicyFile,
        QaSampleFile,
        ReviewFile,
        RuleFile,
    )
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
        QaSample,
        ReviewRules,
        Thresholds,
        validate_tenant,
    )
    from moderation.policy._schema import policy_schema
    from moderation.policy._store import PolicyStore
    from moderation.policy.sources import (
        AppConfigSource,
        DirectorySource,
        Excerpt,
        PolicySource,
        S3Source,
        Snapshot,
    )

_MODULES: dict[str, tuple[str, ...]] = {
    "moderation.policy._file": (
        "BudgetFile",
        "EscalationFile",
        "PlainRuleFile",
        "PolicyFile",
        "QaSampleFile",
        "ReviewFile",
        "RuleFile",
    ),
    "moderation.policy._model": (
        "DEFAULT_POLICY",
        "Band",
        "Budget",
        "CategoryRule",
        "ContentTypeName",
        "EscalationPolicy",
        "FrozenDict",
        "Policy",
        "PolicyRef",
        "QaSample",
        "ReviewRules",
        "Thresholds",
        "validate_tenant",
    ),
    "moderation.policy._schema": ("policy_schema",),
    "moderation.policy._store": ("PolicyStore",),
    "moderation.policy.sources": (
        "AppConfigSource",
        "DirectorySource",
        "Excerpt",
        "PolicySource",
        "S3Source",
        "Snapshot",
    ),
}
_LAZY = by_name(_MODULES)

__all__ = [
    "DEFAULT_POLICY",
    "AppConfigSource",
    "Band",
    "Budget",
    "BudgetFile",
    "CategoryRule",
    "ContentTypeName",
    "DirectorySource",
    "EscalationFile",
    "EscalationPolicy",
    "Excerpt",
    "FrozenDict",
    "PlainRuleFile",
    "Policy",
    "PolicyFile",
    "PolicyRef",
    "PolicySource",
    "PolicyStore",
    "QaSample",
    "QaSampleFile",
    "ReviewFile",
    "ReviewRules",
    "RuleFile",
    "S3Source",
    "Snapshot",
    "Thresholds",
    "policy_schema",
    "validate_tenant",
]


def __getattr__(name: str) -> Any:
    return load(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
