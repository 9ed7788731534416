"""The scheduled digest function: `moderation.aws_lambda.digest.handler` (docs/deploy.md).

An EventBridge schedule invokes it at a fixed interval (15 minutes in the SAM template). Each run
writes the next digest of the S3 audit trail `MODERATION_AUDIT` names (`s3://bucket/prefix`),
signed with `MODERATION_AUDIT_KEY`: what `moderation audit digest` does. A run that fails raises,
so that the invocation fails where an alarm sees it; the next run covers what it did not.
"""

from __future__ import annotations

import logging
from typing import Any

from moderation.audit._digest import write_digest
from moderation.audit._jsonl import audit_key_bytes
from moderation.audit._s3read import S3Store, is_s3
from moderation.aws_lambda._log import install, log
from moderation.errors import ConfigurationError
from moderation.settings import Settings

__all__ = ["handler"]


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Write the next digest; the event (a schedule's) is not read. Returns what was written."""
    install()
    settings = Settings.from_env()
    if not is_s3(settings.audit):
        raise ConfigurationError(
            [
                "MODERATION_AUDIT: the digest function needs s3://bucket/prefix, not "
                f"{settings.audit!r}"
            ]
        )
    assert settings.audit is not None
    store = S3Store.open(settings.audit, region=settings.region)
    key = audit_key_bytes(settings.audit_key)
    if key is None:
        log(
            logging.WARNING, "no MODERATION_AUDIT_KEY: the digest is plain SHA-256", trail=store.uri
        )
    run = write_digest(store, key=key)
    result: dict[str, Any] = {
        "trail": store.uri,
        "digest": store.uri_of(run.key) if run.key else None,
        "seq": run.seq,
        "start": run.start.isoformat() if run.start else None,
        "end": run.end.isoformat(),
        "records": run.records,
        "vanished": [store.uri_of(k) for k in run.vanished],
        "skipped": run.skipped,
    }
    level = logging.WARNING if run.vanished else logging.INFO
    log(level, "digest written" if run.key else "no digest written", **result)
    return result
