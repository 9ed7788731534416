"""What the Lambda was asked to moderate: S3 objects out of S3, SQS, SNS and EventBridge events.

Pure (the standard library only). Three deliveries reach the handler:

- an S3 event notification, directly: `{"Records": [{"eventSource": "aws:s3", ...}]}`;
- SQS messages whose bodies are S3 event notifications, the same wrapped in an SNS envelope
  (`{"Type": "Notification", "Message": "<notification JSON>"}`), or EventBridge events (an
  EventBridge rule with an SQS target);
- an EventBridge `Object Created` event, directly.

Object keys arrive URL-encoded in S3 event notifications: the S3 User Guide's "Event message
structure" says "The object key name value is URL encoded. For example, 'red flower.jpg' becomes
'red+flower.jpg'"; they are decoded with `unquote_plus`. EventBridge events are documented
without an encoding: the S3 User Guide's "EventBridge event message structure" (its example events
and the "Event message detail field" list) gives `detail.object.key` as the key itself. An
EventBridge key is therefore the key as sent, so that `c+d.jpg` is never read as `c d.jpg` (or
`100%25.jpg` as `100%.jpg`). Because AWS's own Powertools decodes it like a notification's, the
handler keeps the decoded reading as a second candidate (`ObjectRef.decoded_key`): it is used only
when the key as sent names no object, or one whose ETag is not the event's while the decoded
key's is.

An object an event names must be one S3 can have (`S3Location`: S3's bucket-name rule, a key of
1 to 1,024 bytes): one that cannot (`{{{bucket}}}` from an unrendered template, `Not_A_Bucket!`)
is `Refused`, a permanent error that is reported and never retried.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote_plus

from moderation.errors import InvalidS3Location
from moderation.s3location import S3Location

__all__ = [
    "EventError",
    "Ignored",
    "ObjectRef",
    "Refused",
    "Trigger",
    "parse_document",
    "parse_sqs_body",
]

Trigger = Literal["s3", "sqs", "eventbridge"]


class EventError(ValueError):
    """An event (or an SQS message body) that is not one this handler knows how to read."""


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One S3 object an event says was created.

    `key` is the object's key (decoded from an S3 notification, as sent by EventBridge).
    `decoded_key` is, for an EventBridge key, its `unquote_plus` reading when that differs: the
    object to fall back on if `key` does not name the object the event describes (`etag`).
    `version_id` is None for an unversioned bucket. `etag` and `size` are what the event said
    (HEAD is what the handler trusts). `event_id` identifies the delivery (the SQS message id or
    the EventBridge event id) for logs and the decision context. `location` names the object;
    building an ObjectRef for one S3 cannot have raises `InvalidS3Location`.
    """

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    event_id: str | None = None
    decoded_key: str | None = None
    location: S3Location = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "location", S3Location(self.bucket, self.key, self.version_id))

    def candidates(self) -> tuple[S3Location, ...]:
        """The objects this may name, the key as sent first."""
        if self.decoded_key is None or self.decoded_key == self.key:
            return (self.location,)
        return (self.location, S3Location(self.bucket, self.decoded_key, self.version_id))


@dataclass(frozen=True, slots=True)
class Ignored:
    """Something in an event that is acknowledged and not moderated, and why."""

    what: str
    why: str


@dataclass(frozen=True, slots=True)
class Refused:
    """An object an event names that no S3 object can be (`why`): a permanent error, reported
    and never retried (a retry cannot make the name valid)."""

    bucket: str
    key: str
    why: str
    event_id: str | None = None


Parsed = ObjectRef | Ignored | Refused


def _created(
    bucket: str,
    key: str,
    obj: Mapping[str, Any],
    names: tuple[str, str, str],
    event_id: str | None,
    decoded_key: str | None = None,
) -> ObjectRef | Refused:
    """The object an ObjectCreated item names (`names`: the event's version, ETag and size
    fields), or why it cannot be one."""
    version, etag, size = names
    try:
        return ObjectRef(
            bucket=bucket,
            key=key,
            version_id=_version(obj.get(version)),
            etag=_etag(obj.get(etag)),
            size=_size(obj.get(size)),
            event_id=event_id,
            decoded_key=decoded_key if decoded_key != key else None,
        )
    except InvalidS3Location as exc:
        return Refused(bucket, key, str(exc), event_id)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise EventError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _version(value: Any) -> str | None:
    # S3 writes no versionId (or null) for an unversioned bucket; "null" is the version id S3
    # gives objects written while versioning was off: neither pins anything.
    if value is None or value == "" or value == "null":
        return None
    return str(value)


def _size(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _etag(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip('"'):
        return None
    return value.strip('"')


def _s3_records(records: list[Any], event_id: str | None) -> Iterator[Parsed]:
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise EventError(f"Records[{index}] is not an object")
        source = record.get("eventSource")
        name = str(record.get("eventName") or "")
        if source != "aws:s3":
            raise EventError(
                f"Records[{index}].eventSource is {source!r}; expected aws:s3 (an S3 event "
                "notification)"
            )
        s3 = record.get("s3")
        if not isinstance(s3, Mapping):
            raise EventError(f"Records[{index}] has no s3 object")
        bucket = _text((s3.get("bucket") or {}).get("name"), f"Records[{index}].s3.bucket.name")
        obj = s3.get("object") or {}
        raw = _text(obj.get("key"), f"Records[{index}].s3.object.key")
        key = unquote_plus(raw)
        if not name.startswith("ObjectCreated:"):
            yield Ignored(f"s3://{bucket}/{key}", f"event {name or '(none)'} is not ObjectCreated")
            continue
        yield _created(bucket, key, obj, ("versionId", "eTag", "size"), event_id)


def _eventbridge(event: Mapping[str, Any], event_id: str | None) -> Iterator[Parsed]:
    detail_type = event.get("detail-type")
    if event_id is None and isinstance(event.get("id"), str):
        event_id = event["id"]
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise EventError("EventBridge event has no detail object")
    bucket = _text((detail.get("bucket") or {}).get("name"), "detail.bucket.name")
    obj = detail.get("object") or {}
    key = _text(obj.get("key"), "detail.object.key")  # not URL-encoded: see the module's doc
    if detail_type != "Object Created":
        yield Ignored(f"s3://{bucket}/{key}", f"EventBridge {detail_type!r} is not Object Created")
        return
    names = ("version-id", "etag", "size")
    yield _created(bucket, key, obj, names, event_id, decoded_key=unquote_plus(key))


def parse_document(doc: Any, *, event_id: str | None = None, depth: int = 0) -> list[Parsed]:
    """The objects (and the ignored parts) of one S3 notification, S3 test event, SNS envelope or
    EventBridge event; EventError for anything else."""
    if not isinstance(doc, Mapping):
        raise EventError(f"expected a JSON object, got {type(doc).__name__}")
    if doc.get("Event") == "s3:TestEvent":
        bucket = doc.get("Bucket")
        return [Ignored(f"s3://{bucket}", "s3:TestEvent (sent when notifications are set up)")]
    if isinstance(doc.get("Records"), list):
        return list(_s3_records(doc["Records"], event_id))
    if doc.get("source") == "aws.s3" and "detail-type" in doc:
        return list(_eventbridge(doc, event_id))
    if doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str) and depth == 0:
        # SNS to SQS without raw message delivery: the S3 notification is the envelope's Message.
        inner = _json(doc["Message"], "the SNS envelope's Message")
        return parse_document(inner, event_id=event_id, depth=depth + 1)
    keys = ", ".join(sorted(str(k) for k in doc)[:8])
    raise EventError(
        "not an S3 event notification (Records), an s3:TestEvent, an SNS envelope of one, or an "
        f"EventBridge aws.s3 event; its keys: {keys or '(none)'}"
    )


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise EventError(f"{what} is not JSON: {exc}") from exc


def parse_sqs_body(body: str, message_id: str | None) -> list[Parsed]:
    """The objects of one SQS message body (an S3 notification, an SNS envelope of one, or an
    EventBridge event); EventError when the body is none of these."""
    return parse_document(_json(body, "the message body"), event_id=message_id)
