"""The human review desk: items for people to judge, leases, verdicts, consensus and appeals.

docs/review.md documents the items, the ordering and consensus rules and the desk URLs.
"""

from moderation.errors import LeaseLost, ReviewError, UnknownItem
from moderation.review._audit_sink import APPEAL_FILED_BY, AuditRecordSink, audit_record
from moderation.review._backfill import BackfillCount, backfill, item_kind
from moderation.review._desk import (
    DEFAULT_LEASE_SECONDS,
    DeskRecord,
    ReviewDesk,
    ReviewRecordSink,
)
from moderation.review._images import (
    DirectoryImageStore,
    ImageStore,
    PurgeCount,
    S3ImageStore,
    open_image_store,
    purge_closed_images,
)
from moderation.review._ingest import (
    IngestCount,
    MessageQueue,
    ReviewMessage,
    ingest,
    message_rules,
    parse_review_message,
)
from moderation.review._model import (
    ALL_TENANTS,
    Appeal,
    DeskRules,
    ItemFinding,
    ItemImage,
    ItemKind,
    ItemState,
    NewItem,
    QueueDepth,
    Reviewer,
    ReviewItem,
    ReviewVerdict,
    Role,
    Skip,
    Then,
    VerdictChoice,
    settle,
)
from moderation.review._open import open_desk
from moderation.review._reviewers import (
    ReviewerEntry,
    Reviewers,
    ReviewersFile,
    add_reviewer,
    load_reviewers,
)
from moderation.review._rules import desk_rules
from moderation.review._sqlite import SQLiteReviewDesk

__all__ = [
    "ALL_TENANTS",
    "APPEAL_FILED_BY",
    "DEFAULT_LEASE_SECONDS",
    "Appeal",
    "AuditRecordSink",
    "BackfillCount",
    "DeskRecord",
    "DeskRules",
    "DirectoryImageStore",
    "ImageStore",
    "IngestCount",
    "ItemFinding",
    "ItemImage",
    "ItemKind",
    "ItemState",
    "LeaseLost",
    "MessageQueue",
    "NewItem",
    "PurgeCount",
    "QueueDepth",
    "ReviewDesk",
    "ReviewError",
    "ReviewItem",
    "ReviewMessage",
    "ReviewRecordSink",
    "ReviewVerdict",
    "Reviewer",
    "ReviewerEntry",
    "Reviewers",
    "ReviewersFile",
    "Role",
    "S3ImageStore",
    "SQLiteReviewDesk",
    "Skip",
    "Then",
    "UnknownItem",
    "VerdictChoice",
    "add_reviewer",
    "audit_record",
    "backfill",
    "desk_rules",
    "ingest",
    "item_kind",
    "load_reviewers",
    "message_rules",
    "open_desk",
    "open_image_store",
    "parse_review_message",
    "purge_closed_images",
    "settle",
]
