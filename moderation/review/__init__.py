"""The human review desk: items for people to judge, leases, verdicts, consensus and appeals.

docs/review.md documents the items, the ordering and consensus rules, the desk URLs and what a
final verdict does (S3 tags and quarantine, the signed webhook).
"""

from moderation.errors import LeaseLost, ReviewError, UnknownItem
from moderation.review._audit_sink import APPEAL_FILED_BY, AuditRecordSink, audit_record
from moderation.review._backfill import BackfillCount, backfill, item_kind
from moderation.review._desk import (
    DEFAULT_CLAIM_SECONDS,
    DEFAULT_LEASE_SECONDS,
    DeskRecord,
    ReviewDesk,
    ReviewRecordSink,
)
from moderation.review._effects import (
    DELIVERY_HEADER,
    RETRY_SCHEDULE,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveringDesk,
    DeliveryCount,
    Effects,
    Webhook,
    WebhookError,
    retry_delay,
    sign,
    webhook_body,
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
    Delivery,
    DeskRules,
    ItemFinding,
    ItemImage,
    ItemKind,
    ItemState,
    NewItem,
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
from moderation.review._postgres import PostgresReviewDesk
from moderation.review._rules import desk_rules
from moderation.review._sqlite import SQLiteReviewDesk

__all__ = [
    "ALL_TENANTS",
    "APPEAL_FILED_BY",
    "DEFAULT_CLAIM_SECONDS",
    "DEFAULT_LEASE_SECONDS",
    "DELIVERY_HEADER",
    "RETRY_SCHEDULE",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Appeal",
    "AuditRecordSink",
    "BackfillCount",
    "DeliveringDesk",
    "Delivery",
    "DeliveryCount",
    "DeskRecord",
    "DeskRules",
    "DirectoryImageStore",
    "Effects",
    "ImageStore",
    "IngestCount",
    "ItemFinding",
    "ItemImage",
    "ItemKind",
    "ItemState",
    "LeaseLost",
    "MessageQueue",
    "NewItem",
    "PostgresReviewDesk",
    "PurgeCount",
    "ReviewDesk",
    "ReviewError",
    "ReviewItem",
    "ReviewMessage",
    "ReviewRecordSink",
    "ReviewVerdict",
    "Reviewer",
    "Role",
    "S3ImageStore",
    "SQLiteReviewDesk",
    "Skip",
    "Then",
    "UnknownItem",
    "VerdictChoice",
    "Webhook",
    "WebhookError",
    "audit_record",
    "backfill",
    "desk_rules",
    "ingest",
    "item_kind",
    "message_rules",
    "open_desk",
    "open_image_store",
    "parse_review_message",
    "purge_closed_images",
    "retry_delay",
    "settle",
    "sign",
    "webhook_body",
]
