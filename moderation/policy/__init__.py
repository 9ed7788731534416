"""The policy language: per-tenant YAML files, validated once, resolved into immutable `Policy`s.

`PolicyStore(dir)` reads and checks every file; `store.get(tenant)` hands out a resolved `Policy`.
`PolicyStore.load(location)` reads a directory, an S3 prefix or an AWS AppConfig profile (the
`PolicySource`s `DirectorySource`, `S3Source`, `AppConfigSource`) and checks it for new versions.
`PolicyFile` (with `RuleFile`, `PlainRuleFile`, `EscalationFile`, `BudgetFile`, `ReviewFile`,
`QaSampleFile`) is the file format, from which `policy_schema()` is generated. `Policy.review_rules`
(`ReviewRules`) is a tenant's review desk rules. See docs/policy.md for the language.
"""

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
