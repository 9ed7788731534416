"""The audit record format (version 1): one JSON object per line, hash-chained.

A line is the bytes

    {"audit":1,"seq":N,"prev":"<64 hex>","alg":"sha256","kind":"decision",
     "decision":{...},"hash":"<64 hex>"}                     (on one line)

in exactly this key order, with no whitespace between the record's own keys, and a final `\\n`.
`kind` is `decision` (the body is the Decision's JSON object), `review` or `appeal` (a person's
verdict on a decision, or an appeal of one: `moderation.review_records`), `file` (a file header)
or `torn` (a note that the line before it is a torn record, kept in place). The body is held
under the key named by `kind`.

`hash` covers the line's bytes from its first `{` up to, not including, `,"hash":"`: the record is
hashed exactly as stored, so a verifier in any language needs no JSON canonicalisation. It is the
hex SHA-256 of those bytes (`alg: sha256`), or their HMAC-SHA256 under a secret key
(`alg: hmac-sha256`). `prev` is the previous record's `hash` (64 zeros for the first record of a
log), and `seq` counts records from 1, across rotated files. docs/audit.md documents the format,
with its JSON Schema.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from moderation.decision import SCHEMA_VERSION, Decision
from moderation.review_records import REVIEW_SCHEMA_VERSION, AppealRecord, ReviewRecord

__all__ = [
    "FORMAT_VERSION",
    "GENESIS",
    "AuditRecord",
    "Entry",
    "FileHeader",
    "RecordError",
    "TornNote",
    "encode_record",
    "exact_decision",
    "hashed_record",
    "json_bytes",
    "kind_of",
    "not_a_crash",
    "parse_line",
    "record_hash",
    "signed_prefix",
]

FORMAT_VERSION = 1
GENESIS = "0" * 64
Alg = Literal["sha256", "hmac-sha256"]
Kind = Literal["decision", "review", "appeal", "file", "torn"]
#: What a log line holds besides headers and notes: a decision, or a person's record about one.
Entry = Decision | ReviewRecord | AppealRecord
_BODIES = ("decision", "review", "appeal", "file", "torn")
_PERSON_RECORDS: dict[str, type[ReviewRecord] | type[AppealRecord]] = {
    "review": ReviewRecord,
    "appeal": AppealRecord,
}
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
_HASH_KEY = b',"hash":"'
_SUFFIX = len(_HASH_KEY) + 64 + len(b'"}')  # what follows the signed prefix on a line
_HASH_SUFFIX = re.compile(re.escape(_HASH_KEY) + rb'[0-9a-f]{64}"}')  # those bytes, hash and all
#: A decision, review or appeal record in the writer's exact form, up to its body (the groups:
#: seq, prev, alg, kind): what readers that need no more than that take without parsing the
#: record whole (anything else they parse with `parse_line`).
EXACT_RECORD = re.compile(
    rb'\{"audit":1,"seq":([1-9][0-9]*),"prev":"([0-9a-f]{64})","alg":"(sha256|hmac-sha256)",'
    rb'"kind":"(decision|review|appeal)","\4":'
)
_RECORD_START = b'{"audit":'
_DECODER = json.JSONDecoder()
# Where a record starts: its fixed keys up to its body's opening brace. Nothing inside a body can
# look like this (a decision's context holds only scalars, a review's note is a JSON string whose
# quotes are escaped, and no model has a field named after a kind), so two of these on one line
# are two records.
_RECORD_HEAD = re.compile(
    rb'\{"audit":\d+,"seq":\d+,"prev":"[0-9a-f]{64}","alg":"[a-z0-9-]+",'
    rb'"kind":"(decision|review|appeal|file|torn)","\1":\{'
)
# A crash's torn bytes hold one record start (a decision's context may add one more, as a key):
# past this many, the bytes are not a crash's leftovers, whatever they parse to.
_MAX_RECORD_STARTS = 64


class RecordError(ValueError):
    """A line that is not a readable audit record (or bare decision); the message says why."""


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FileHeader(_Body):
    """The first record of every log file: when it was started, and which file it continues."""

    created_at: AwareDatetime
    # The rotated file (base name) whose chain this file continues; None for a new log.
    continues: str | None = None
    engine_version: str


class TornNote(_Body):
    """Says that the line before it is a torn record (a writer stopped mid-line), kept as it is."""

    line: int = Field(ge=1)  # 1-based line of the torn bytes in this file
    offset: int = Field(ge=0)  # byte offset of the torn bytes in this file
    length: int = Field(ge=1)  # how many bytes were torn (the newline added after them excluded)
    sha256: Hex64  # of the torn bytes
    found_at: AwareDatetime


class AuditRecord(BaseModel):
    """One line of a chained audit log, parsed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    audit: Literal[1]
    seq: int = Field(ge=1)
    prev: Hex64
    alg: Alg
    kind: Kind
    decision: Decision | None = None
    review: ReviewRecord | None = None
    appeal: AppealRecord | None = None
    file: FileHeader | None = None
    torn: TornNote | None = None
    hash: Hex64

    @model_validator(mode="after")
    def _one_body(self) -> AuditRecord:
        present = [k for k in _BODIES if getattr(self, k) is not None]
        if present != [self.kind]:
            raise ValueError(f"a {self.kind!r} record holds exactly its {self.kind!r} body")
        return self

    @property
    def entry(self) -> Entry | None:
        """The decision, review or appeal this record holds; None for a header or torn note."""
        for body in (self.decision, self.review, self.appeal):
            if body is not None:
                return body
        return None


def kind_of(entry: Entry) -> Kind:
    """The record kind that holds `entry`: `decision`, `review` or `appeal`."""
    if isinstance(entry, Decision):
        return "decision"
    return entry.kind


def json_bytes(model: BaseModel) -> bytes:
    """The UTF-8 bytes of `model.model_dump_json()`, without decoding them to text first."""
    return model.__pydantic_serializer__.to_json(model)


def record_hash(prefix: bytes, key: bytes | None) -> str:
    """The hex hash of a record's signed prefix: SHA-256, or HMAC-SHA256 with a key."""
    if key is None:
        return hashlib.sha256(prefix).hexdigest()
    return hmac.digest(key, prefix, "sha256").hex()


def encode_record(*, seq: int, prev: str, kind: Kind, body_json: str, key: bytes | None) -> bytes:
    """One complete line (ending in a newline) for a record whose body is `body_json`."""
    return hashed_record(seq=seq, prev=prev, kind=kind, body_json=body_json, key=key)[0]


def hashed_record(
    *, seq: int, prev: str, kind: Kind, body_json: str | bytes, key: bytes | None
) -> tuple[bytes, str]:
    """`encode_record`'s line and the hash it states (the next record's `prev`), so that a writer
    need not read back what it has just encoded. `body_json` may be UTF-8 bytes, as a model's
    serializer gives them, so that a record's body is not decoded only to be encoded again."""
    alg = "hmac-sha256" if key is not None else "sha256"
    head = (
        f'{{"audit":{FORMAT_VERSION},"seq":{seq},"prev":"{prev}","alg":"{alg}",'
        f'"kind":"{kind}","{kind}":'
    ).encode()
    body = body_json if isinstance(body_json, bytes) else body_json.encode()
    if key is None:  # the signed prefix hashed in two parts: the body is not copied to hash it
        hasher = hashlib.sha256(head)
        hasher.update(body)
        digest = hasher.hexdigest()
    else:
        digest = record_hash(head + body, key)
    return b"".join((head, body, b',"hash":"', digest.encode(), b'"}\n')), digest


def signed_prefix(line: bytes) -> tuple[bytes, str] | None:
    """The bytes a line's hash covers and the hash it states; None if it has no hash suffix."""
    end = _signed_end(line)
    if end < 0:
        return None
    start = end + len(_HASH_KEY)
    return line[:end], line[start : start + 64].decode()


def _signed_end(line: bytes) -> int:
    """Where the bytes a line's hash covers end (`signed_prefix`); -1 without a hash suffix."""
    # Looked at in place, not searched nor sliced: a record's line is long (replay reads millions),
    # and its hash sits at a fixed place at its end.
    body = len(line)
    while body and line[body - 1] == 0x0A:  # the line without its trailing newlines
        body -= 1
    end = body - _SUFFIX
    if end < 0 or _HASH_SUFFIX.fullmatch(line, end, body) is None:
        return -1
    return end


def _newer(data: object) -> str | None:
    if not isinstance(data, dict):
        return None
    version = data.get("audit")
    if isinstance(version, int) and version > FORMAT_VERSION:
        return f"audit record format {version} is newer than this engine reads ({FORMAT_VERSION})"
    kind = data.get("kind") if "audit" in data else None
    body = data.get(kind, data) if isinstance(kind, str) else data.get("decision", data)
    if not isinstance(body, dict):
        return None
    what = body.get("kind") if body.get("kind") in _PERSON_RECORDS else "decision"
    known = REVIEW_SCHEMA_VERSION if what != "decision" else SCHEMA_VERSION
    schema = body.get("schema_version")
    if isinstance(schema, int) and schema > known:
        return (
            f"{what} schema_version {schema} is newer than this engine reads "
            f"({known}); upgrade moderation to read it"
        )
    return None


def _explain(line: bytes, exc: ValidationError, what: str) -> RecordError:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as bad:
        return RecordError(f"not JSON ({bad.msg} at column {bad.colno})")
    except ValueError as bad:  # not UTF-8
        return RecordError(f"not JSON ({bad})")
    newer = _newer(data)
    if newer is not None:
        return RecordError(newer)
    if not isinstance(data, dict):
        return RecordError(f"not a JSON object but {type(data).__name__}")
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return RecordError(f"not a valid {what}: {where}: {first['msg']} ({exc.error_count()} errors)")


def parse_line(line: bytes) -> AuditRecord | Entry:
    """A chained record, or a bare Decision, ReviewRecord or AppealRecord (what the stdout and
    logger sinks write, and what file logs held before they were chained); RecordError naming
    what is wrong otherwise."""
    text = line.rstrip(b"\n")
    if not text.strip():
        raise RecordError("empty line")
    model: type[AuditRecord] | type[Entry] = Decision
    what = "decision"
    if text.startswith(_RECORD_START):
        model, what = AuditRecord, "audit record"
    else:
        for kind, person in _PERSON_RECORDS.items():
            if text.startswith(b'{"kind":"%s"' % kind.encode()):
                model, what = person, f"{kind} record"
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise _explain(text, exc, what) from None


def exact_decision(line: bytes) -> Decision | None:
    """The decision of a decision record in the writer's exact form (`EXACT_RECORD`, then its
    hash), validated as `parse_line` validates it but without the record around it; None for
    any other line, or one that does not validate (`parse_line` then says why)."""
    match = EXACT_RECORD.match(line)
    if match is None or match[4] != b"decision" or not line.endswith(b"\n"):
        return None
    end = _signed_end(line)
    if end < 0:
        return None
    try:
        # What `Decision.model_validate_json` calls, without the wrapper's keyword handling
        # (about 0.5 µs a record; replay reads millions).
        found: Decision = Decision.__pydantic_validator__.validate_json(line[match.end() : end])
        return found
    except ValidationError:
        return None


def not_a_crash(raw: bytes) -> str | None:
    """Why `raw` is not what a crash leaves, or None when it could be.

    A writer stopped mid-record leaves a prefix of the one line it was writing: never a whole
    record, since a record's object closes only at the end of its line, and never two record
    starts on one line. So bytes holding a whole chained record anywhere (lines joined into one,
    a record hidden after garbage, a whole record that is not the next link), or a line where a
    second record starts (records joined, their closing bytes cut), were put there by someone:
    tampering, not a crash. The answer names the byte offset of what was found.
    """
    offset = 0
    for line in raw.split(b"\n"):
        starts = [m.start() for m in _RECORD_HEAD.finditer(line)]
        if len(starts) > 1:
            return (
                f"{len(starts)} records starting on one line (the second at byte "
                f"{offset + starts[1]} of them)"
            )
        offset += len(line) + 1
    position = raw.find(_RECORD_START)
    for _ in range(_MAX_RECORD_STARTS):
        if position == -1:
            return None
        rest = raw[position:].decode("utf-8", "replace")
        try:
            _, end = _DECODER.raw_decode(rest)
            parsed = parse_line(rest[:end].encode())
        except (ValueError, RecordError):
            parsed = None
        if isinstance(parsed, AuditRecord):
            return f"a whole audit record (seq {parsed.seq}) at byte {position} of them"
        position = raw.find(_RECORD_START, position + 1)
    return f"more than {_MAX_RECORD_STARTS} record starts"
