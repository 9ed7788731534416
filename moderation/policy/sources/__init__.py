"""Where the policies come from: a directory, an S3 prefix, or one AWS AppConfig document.

A `PolicySource` hands the store a `Snapshot`: a version and the policy files as the store reads
them (policy name -> (the name shown in messages, the bytes or why they could not be read)).
`fetch(known)` returns None while the version `known` is still the current one, so that polling is
cheap: an S3 prefix is one ListObjectsV2 (the version is a digest of the keys and ETags; when it
changed, only the objects whose ETag changed are read) and an AppConfig session one
GetLatestConfiguration that answers with nothing when nothing changed.

A source never half-reads: any failure to reach the store's backend raises `PolicyError` naming
the place, what the AWS transport said and what to fix (a missing bucket, a missing IAM
permission); no AWS region at all is a `ConfigurationError`. Sources are not thread-safe; the
`PolicyStore` calls `fetch` from one thread at a time. The S3 and AppConfig sources reach AWS only
through `moderation.aws` (boto3 is imported when their transport is first built).
"""

from typing import TYPE_CHECKING, Any

from moderation._lazy import by_name, load

if TYPE_CHECKING:
    from moderation.policy._yaml import Excerpt
    from moderation.policy.sources._appconfig import MAX_APPCONFIG_BYTES, AppConfigSource
    from moderation.policy.sources._directory import DirectorySource, read_dir, read_file
    from moderation.policy.sources._s3 import S3Source
    from moderation.policy.sources._snapshot import (
        Content,
        Entry,
        PolicySource,
        Snapshot,
        files_version,
    )

_MODULES: dict[str, tuple[str, ...]] = {
    "moderation.policy._yaml": ("Excerpt",),
    "moderation.policy.sources._appconfig": (
        "MAX_APPCONFIG_BYTES",
        "AppConfigSource",
    ),
    "moderation.policy.sources._directory": (
        "DirectorySource",
        "read_dir",
        "read_file",
    ),
    "moderation.policy.sources._s3": ("S3Source",),
    "moderation.policy.sources._snapshot": (
        "Content",
        "Entry",
        "PolicySource",
        "Snapshot",
        "files_version",
    ),
}
_LAZY = by_name(_MODULES)

__all__ = [
    "MAX_APPCONFIG_BYTES",
    "AppConfigSource",
    "Content",
    "DirectorySource",
    "Entry",
    "Excerpt",
    "PolicySource",
    "S3Source",
    "Snapshot",
    "files_version",
    "read_dir",
    "read_file",
]


def __getattr__(name: str) -> Any:
    return load(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
