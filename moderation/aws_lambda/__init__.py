"""The AWS Lambda entry point: `moderation.aws_lambda.handler` (docs/lambda.md).

S3 `ObjectCreated` events, delivered directly, through SQS (also SNS-wrapped) or through
EventBridge, are moderated once per object version and the outcome applied to the object: tags,
and optionally a quarantine bucket and a review queue. Needs the `lambda` extra
(`pip install 'moderation[lambda]'`: Powertools for AWS Lambda), which `import moderation` never
loads.
"""

try:
    import aws_lambda_powertools  # noqa: F401  (only to say how to install it when it is missing)
except ImportError as exc:
    raise ImportError(
        "moderation.aws_lambda needs Powertools for AWS Lambda, which the `lambda` extra installs: "
        "pip install 'moderation[lambda]'",
        name=exc.name,
    ) from exc

from moderation.aws.s3outcome import TAG_DECISION, TAG_OUTCOME, TAG_REASON, merge_tags, tag_value
from moderation.aws_lambda._events import EventError, ObjectRef
from moderation.aws_lambda._handler import (
    DEFAULT_TENANT,
    TENANT_METADATA,
    RetryLater,
    handler,
    reset,
)
from moderation.aws_lambda._idempotency import MemoryPersistenceLayer

__all__ = [
    "DEFAULT_TENANT",
    "TAG_DECISION",
    "TAG_OUTCOME",
    "TAG_REASON",
    "TENANT_METADATA",
    "EventError",
    "MemoryPersistenceLayer",
    "ObjectRef",
    "RetryLater",
    "handler",
    "merge_tags",
    "reset",
    "tag_value",
]
