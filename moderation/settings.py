"""Configuration from the environment: read once, checked whole, shared by the engine and the CLI.

Every variable is one row of `VARIABLES` (name, field, parser, default, meaning), read by one
loop (`read_env`). `Settings.from_env()` reads every `MODERATION_*` variable (and `AWS_REGION`),
checks them all and raises one `ConfigurationError` naming every bad variable, so a deployment
learns everything that is wrong at cold start rather than one variable per redeploy.
`moderation.wiring` builds the engine's parts from the same object for the engine, every CLI
command and the Lambda; command-line options override single fields.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from moderation.errors import ConfigurationError, InvalidS3Location
from moderation.s3location import S3Prefix, bucket_problem

__all__ = [
    "ENV_VARS",
    "VARIABLES",
    "EnvReading",
    "Settings",
    "Variable",
    "is_file_sink",
    "policies_location",
    "read_env",
    "webhook_pair_problem",
    "webhook_url",
]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")

_TABLE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_DEDUPE = re.compile(r"^(?:off|memory(?::(?P<size>[0-9]+))?|dynamodb:(?P<table>.+))$")
_QUEUE_URL = re.compile(r"https?://[^/\s]+/[0-9]+/[A-Za-z0-9_-]{1,80}(\.fifo)?")


def policies_location(spec: str) -> Literal["dir", "s3", "appconfig"]:
    """What kind of place MODERATION_POLICIES (or --policies) names."""
    if spec.startswith("s3://"):
        return "s3"
    if spec.startswith("appconfig://"):
        return "appconfig"
    return "dir"


def _policies_problem(spec: str) -> str | None:
    kind = policies_location(spec)
    if kind == "s3":
        try:
            S3Prefix.parse(spec)
        except InvalidS3Location as exc:
            why = str(exc).removeprefix(f"{spec}: ")
            return f"must be s3://bucket/prefix with a valid bucket name, got {spec!r} ({why})"
    elif kind == "appconfig":
        parts = spec[len("appconfig://") :].split("/")
        if len(parts) != 3 or not all(p.strip() for p in parts):
            return (
                f"must be appconfig://application/environment/profile (names or ids), got {spec!r}"
            )
    return None


_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _byte_size(text: str) -> int | None:
    match = _SIZE.match(text)
    if match is None:
        return None
    size = int(match.group(1)) * _UNITS[match.group(2).lower()]
    return size if size > 0 else None


def is_file_sink(spec: str) -> bool:
    """True when an audit destination (MODERATION_AUDIT, --audit) names a file log."""
    return spec not in ("log", "stdout", "-", "stderr") and not spec.startswith("s3://")


# -- the parsers: each takes the variable's raw value and returns the field's value, or raises
# ValueError with what is wrong (the variable's name is put in front by `read_env`).


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("is set but empty (unset it for the default)")
    return value.strip()


def _policies(value: str) -> str:
    spec = _text(value)
    if (problem := _policies_problem(spec)) is not None:
        raise ValueError(problem)
    return spec


def _positive(unit: str) -> Callable[[str], float]:
    def parse(value: str) -> float:
        text = _text(value)
        try:
            number = float(text)
        except ValueError:
            number = float("nan")
        if not number > 0 or number == float("inf"):
            raise ValueError(f"must be a positive number of {unit}, got {text!r}")
        return number

    return parse


def _whole(unit: str) -> Callable[[str], int]:
    def parse(value: str) -> int:
        text = _text(value)
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"must be a whole number of {unit}, at least 1, got {text!r}")
        return int(text)

    return parse


def _tenant_fallback(value: str) -> bool:
    word = value.strip().lower()
    if word in ("default", *_TRUE):
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"must be `default` (fall back to the default policy) or unset, got {value!r}")


def _audit_key(value: str) -> str:
    if not value.strip():
        raise ValueError("is set but empty (unset it for no key)")
    return value  # as given: whitespace may be part of a secret


def _rotate_bytes(value: str) -> int:
    size = _byte_size(value)
    if size is None:
        raise ValueError(
            "must be a positive number of bytes, optionally with a K, M or G suffix (e.g. 100M), "
            f"got {value!r}"
        )
    return size


def _project_version(value: str) -> str:
    arn = _text(value)
    if not arn.startswith("arn:"):
        raise ValueError(
            f"must be a Rekognition project version ARN (arn:aws:rekognition:...), got {arn!r}"
        )
    return arn


def _judge(value: str) -> str:
    if value.strip() not in ("bedrock", "none"):
        raise ValueError(f"must be bedrock or none, got {value!r}")
    return value.strip()


def _dedupe(value: str) -> str:
    spec = _text(value)
    match = _DEDUPE.fullmatch(spec)
    if match is None or (match["size"] is not None and int(match["size"]) < 1):
        raise ValueError(
            f"must be memory, memory:N (N entries, at least 1), dynamodb:TABLE or off, got {spec!r}"
        )
    if match["table"] is not None and not _TABLE.fullmatch(match["table"]):
        raise ValueError(
            f"{match['table']!r} is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)"
        )
    return spec


def _queue_url(value: str) -> str:
    url = _text(value)
    if not _QUEUE_URL.fullmatch(url):
        raise ValueError(
            f"must be an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME), got {url!r}"
        )
    return url


def _desk_url(value: str) -> str:
    url = _text(value)
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        # Only the scheme is shown: a database URL may hold a password.
        scheme, sep, _ = url.partition("://")
        shown = f"{scheme}://..." if sep else "a value without a scheme"
        raise ValueError(
            f"must be a review desk URL, sqlite:///PATH or postgresql://..., got {shown}"
        )
    return url


def _review_secret(value: str) -> str:
    if len(value.strip()) < 32:
        raise ValueError(
            "must be at least 32 characters of random text (e.g. `python -c 'import secrets;"
            " print(secrets.token_urlsafe(32))'`); unset it for a random key per process"
        )
    return value  # as given: whitespace may be part of a secret


def _image_store(value: str) -> str:
    spec = _text(value)
    if spec.startswith("s3://"):
        S3Prefix.parse(spec)  # InvalidS3Location is a ValueError naming what is wrong
    return spec


def webhook_url(value: str) -> str:
    """`value` if it is an https:// or http:// URL with a host; ValueError naming only its
    scheme and host otherwise (the rest of a webhook URL may hold a token)."""
    from urllib.parse import urlsplit

    url = _text(value)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (a port that is not a number raises here)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname or " " in url:
        # Only the scheme and host are shown: the rest of a webhook URL may hold a token.
        shown = f"{parts.scheme}://{parts.hostname or ''}/..." if parts else "a malformed URL"
        raise ValueError(f"must be an https:// (or http://) URL with a host, got {shown}")
    return url


def _bucket(value: str) -> str:
    bucket = _text(value)
    if bucket_problem(bucket) is not None:
        raise ValueError(f"{bucket!r} is not a bucket name (3-63 of a-z 0-9 . -, no s3:// prefix)")
    return bucket


def _table(value: str) -> str:
    table = _text(value)
    if not _TABLE.fullmatch(table):
        raise ValueError(f"{table!r} is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)")
    return table


def _obsolete_strict(value: str) -> None:
    if value.strip().lower() not in _TRUE:
        raise ValueError(
            "no longer read (unknown tenants always raise UnknownTenant); to give them the "
            "default policy set MODERATION_TENANT_FALLBACK=default"
        )


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable: the `Settings` field it sets and how its value is read."""

    name: str
    #: The Settings field it sets; None for a variable that is only checked (an obsolete one).
    field: str | None
    #: The raw value -> the field's value; ValueError saying what is wrong.
    parse: Callable[[str], Any]
    #: The default as docs/configuration.md states it (its table's third column).
    default: str
    #: What it means, in one sentence or two.
    doc: str
    #: Another variable read when this one is unset (as given, stripped; empty is unset).
    fallback: str | None = None


_SECONDS = _positive("seconds")

#: Every variable this library reads, in the order docs/configuration.md lists them.
VARIABLES: tuple[Variable, ...] = (
    Variable(
        "MODERATION_POLICIES", "policies", _policies, "`policies`",
        "where the policies are: a directory (default ./policies), `s3://bucket/prefix` (the"
        " same layout under a prefix) or `appconfig://application/environment/profile` (an AWS"
        " AppConfig profile)",
    ),
    Variable(
        "MODERATION_POLICIES_TTL", "policies_ttl", _SECONDS,
        "`60` for S3 and AppConfig; a directory is read once unless this is set",
        "seconds between checks for new policies (a new version is validated whole before use;"
        " an invalid one is refused and the last good one stays)",
    ),
    Variable(
        "MODERATION_TENANT_FALLBACK", "tenant_fallback", _tenant_fallback, "unset",
        "`default`: a tenant with no policy file gets the default policy (recorded in the"
        " decision); unset: such a tenant raises UnknownTenant",
    ),
    Variable(
        "MODERATION_REGION", "region", _text,
        "`AWS_REGION`, else boto3's (`AWS_DEFAULT_REGION`, the config file)",
        "AWS region for S3, Rekognition and Bedrock",
        fallback="AWS_REGION",
    ),
    Variable(
        "MODERATION_AUDIT", "audit", _text,
        "`stdout` (`stderr` for `moderation check`, whose stdout is its report)",
        "`stdout` (JSON lines, as Lambda and containers collect them), `stderr`, `log` (the"
        " `moderation.audit` logger, which must be configured to emit INFO),"
        " `s3://bucket/prefix` (one object per decision, never overwritten), or a file path"
        " (hash-chained JSON lines, fsynced; docs/audit.md)",
    ),
    Variable(
        "MODERATION_AUDIT_KEY", "audit_key", _audit_key, "unset: plain SHA-256 chain",
        "secret that makes a file log's record hashes HMAC-SHA256 (`alg: hmac-sha256`), and"
        " signs the digests of an S3 trail (`moderation audit digest`);"
        " `moderation audit verify` needs it too. Never printed",
    ),
    Variable(
        "MODERATION_AUDIT_ROTATE_BYTES", "audit_rotate_bytes", _rotate_bytes,
        "unset: never rotate",
        "start a new file log file (the old one renamed to `<name>.N`) before a record would"
        " take it past this size; a number of bytes, or with a K, M or G suffix (1024-based)",
    ),
    Variable(
        "MODERATION_PROJECT_VERSION", "project_version", _project_version, "none",
        "ARN of a Rekognition custom moderation adapter",
    ),
    Variable(
        "MODERATION_JUDGE", "judge", _judge, "`bedrock`",
        "`bedrock` or `none` (borderline images go to review)",
    ),
    Variable(
        "MODERATION_REKOGNITION_TPS", "rekognition_tps", _positive("requests per second"),
        "found from the throttles, starting at 5/s",
        "Rekognition requests per second this process may send, shared by every thread (your"
        " account's DetectModerationLabels quota, or the share of it this process gets); backs"
        " off on throttling and creeps back",
    ),
    Variable(
        "MODERATION_BEDROCK_RPM", "bedrock_rpm", _positive("requests per minute"),
        "found from the throttles, starting at 60/min",
        "Bedrock Converse requests per minute this process may send, shared by every thread;"
        " backs off on throttling and creeps back",
    ),
    Variable(
        "MODERATION_JUDGE_WORKERS", "judge_workers", _whole("threads"), "`64`",
        "threads of the judge stage of `moderate_many`, `amoderate` and `moderation check`:"
        " escalations judged at once (each call still paced by the Bedrock limiter)",
    ),
    Variable(
        "MODERATION_ESCALATION_QUEUE", "escalation_queue", _whole("escalations"), "`256`",
        "the most escalations the judge stage holds, waiting or being judged; when full,"
        " detection waits for room (memory stays bounded however far the judge falls behind)",
    ),
    Variable(
        "MODERATION_DEDUPE", "dedupe", _dedupe, "`memory`",
        "`memory` (the same image with the same detector settings is detected once per"
        " process, LRU of 10,000), `memory:N` (N entries), `dynamodb:TABLE` (shared by every"
        " process; partition key `id`, TTL attribute `expiration`), or `off`",
    ),
    Variable(
        "MODERATION_DEDUPE_TTL", "dedupe_ttl", _SECONDS, "`604800` (7 days)",
        "seconds a cached detection stays usable",
    ),
    Variable(
        "MODERATION_REVIEW_QUEUE_URL", "review_queue_url", _queue_url, "none sent",
        "Lambda: SQS queue URL that `review` outcomes are sent to (docs/lambda.md has the"
        " message format)",
    ),
    Variable(
        "MODERATION_REVIEW", "review", _desk_url, "none: no items are made",
        "the review desk (`sqlite:///PATH` or `postgresql://...`) that every `review` decision,"
        " and each blind QA sample, becomes an item of; its verdicts go to the audit log"
        " (docs/review.md)",
    ),
    Variable(
        "MODERATION_REVIEW_IMAGES", "review_images", _image_store, "none: nothing is copied",
        "where the review desk keeps its copy of each image given as bytes or a file (a"
        " directory, or `s3://bucket/prefix`), keyed by sha256; an image in S3 is not copied"
        " (docs/review.md)",
    ),
    Variable(
        "MODERATION_REVIEW_WEBHOOK", "review_webhook", webhook_url, "none: no webhook",
        "https:// (or http://) URL that receives each final review verdict as a signed JSON"
        " POST, at least once (docs/review.md); needs MODERATION_REVIEW_WEBHOOK_KEY",
    ),
    Variable(
        "MODERATION_REVIEW_WEBHOOK_KEY", "review_webhook_key", _audit_key, "none",
        "secret the webhook's body is signed with (HMAC-SHA256, header `Moderation-Signature`);"
        " needs MODERATION_REVIEW_WEBHOOK. Never printed",
    ),
    Variable(
        "MODERATION_REVIEW_SECRET", "review_secret", _review_secret,
        "a random key per process: a restart logs every reviewer out",
        "the key that signs the review page's session cookies (at least 32 characters); the"
        " same on every process behind one address (docs/review.md)",
    ),
    Variable(
        "MODERATION_QUARANTINE_BUCKET", "quarantine_bucket", _bucket, "they stay, tagged",
        "Lambda: bucket that rejected and invalid objects are moved to, under the same key with"
        " their tags; the review desk moves an object a reviewer rejected there the same way",
    ),
    Variable(
        "MODERATION_IDEMPOTENCY_TABLE", "idempotency_table", _table,
        "in-memory only (one warm instance)",
        "Lambda: DynamoDB table (partition key: string `id`, TTL attribute `expiration`) that"
        " makes redelivered events return the first decision",
    ),
    Variable(
        "MODERATION_IDEMPOTENCY_TTL", "idempotency_ttl", _SECONDS, "`86400`",
        "Lambda: seconds a decision is remembered for redelivery",
    ),
    Variable(
        "MODERATION_IDEMPOTENCY_LOCK", "idempotency_lock", _SECONDS, "`60`",
        "Lambda: seconds an object being moderated is locked against a redelivery (refused as"
        " in progress, retried later); after that, a redelivery whose first moderation never"
        " stored its answer moderates it again",
    ),
    Variable(
        "MODERATION_STRICT_TENANTS", None, _obsolete_strict, "",
        "obsolete: unknown tenants always raise now; `1` is accepted",
    ),
)  # fmt: skip

#: Every variable this library reads, with what it means (docs/configuration.md has the table).
ENV_VARS: Mapping[str, str] = {v.name: v.doc for v in VARIABLES}

#: Variables that only a file audit log reads: an error beside any other MODERATION_AUDIT.
_FILE_LOG_ONLY = ("MODERATION_AUDIT_KEY", "MODERATION_AUDIT_ROTATE_BYTES")
#: ... except the key, which also signs an S3 trail's digests (`moderation audit digest`).
_S3_TOO = frozenset({"MODERATION_AUDIT_KEY"})


@dataclass(frozen=True, slots=True)
class Settings:
    """What the engine is built from. Every field has the default a fresh deployment gets."""

    policies: str = "policies"
    tenant_fallback: bool = False
    region: str | None = None
    audit: str | None = None  # None: the entry point's default (stdout; stderr for the CLI)
    project_version: str | None = None
    judge: Literal["bedrock", "none"] = "bedrock"
    # A secret: kept out of repr (and so out of logs and tracebacks that print the settings).
    audit_key: str | None = field(default=None, repr=False)
    audit_rotate_bytes: int | None = None
    policies_ttl: float | None = None  # None: 60 s for S3 and AppConfig, never for a directory
    rekognition_tps: float | None = None
    bedrock_rpm: float | None = None
    judge_workers: int = 64
    escalation_queue: int = 256
    dedupe: str = "memory"  # "off", "memory", "memory:N" or "dynamodb:TABLE"
    dedupe_ttl: float = 604800.0
    review_queue_url: str | None = None
    # A desk URL (`sqlite:///PATH`); a PostgreSQL one may hold a password: kept out of repr.
    review: str | None = field(default=None, repr=False)
    review_images: str | None = None
    # The webhook's URL may carry a token, and its key is a secret: both kept out of repr.
    review_webhook: str | None = field(default=None, repr=False)
    review_webhook_key: str | None = field(default=None, repr=False)
    # A secret: kept out of repr.
    review_secret: str | None = field(default=None, repr=False)
    quarantine_bucket: str | None = None
    idempotency_table: str | None = None
    idempotency_ttl: float = 86400.0
    idempotency_lock: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings in `env` (default: os.environ); ConfigurationError naming every bad one."""
        return read_env(env).checked()

    def with_options(self, **options: Any) -> Settings:
        """These settings with the options that are not None replaced (command-line overrides)."""
        return replace(self, **{k: v for k, v in options.items() if v is not None})


@dataclass(frozen=True, slots=True)
class EnvReading:
    """What `read_env` found: the settings of the good variables and a problem per bad one."""

    #: The settings; a bad variable's field keeps its default.
    settings: Settings
    #: One line per problem, `NAME: what is wrong`: unknown names first, then by name.
    problems: tuple[str, ...]
    #: The names of the variables that have a problem.
    bad: frozenset[str]

    def checked(self) -> Settings:
        """The settings, or ConfigurationError naming every bad variable."""
        if self.problems:
            raise ConfigurationError(self.problems)
        return self.settings


def read_env(env: Mapping[str, str] | None = None) -> EnvReading:
    """Every variable of `env` (default: os.environ) read and checked, none raising: the caller
    decides (`EnvReading.checked`), or adds what it finds later (the Lambda's cold start)."""
    env = os.environ if env is None else env
    found: list[tuple[str, str]] = []
    values: dict[str, Any] = {}
    for variable in VARIABLES:
        raw = env.get(variable.name)
        if raw is None and variable.fallback is not None:
            raw = env.get(variable.fallback, "").strip() or None
        if raw is None:
            continue
        try:
            value = variable.parse(raw)
        except ValueError as exc:
            found.append((variable.name, str(exc)))
            continue
        if variable.field is not None:
            values[variable.field] = value
    sink = values.get("audit")
    if sink is not None and not is_file_sink(sink):
        s3 = sink.startswith("s3://")
        for name in _FILE_LOG_ONLY:
            if env.get(name) is not None and not (s3 and name in _S3_TOO):
                found.append(
                    (name, f"applies only to a file audit log, but MODERATION_AUDIT is {sink!r}")
                )
    found.extend(_webhook_pair(env))
    found.sort(key=lambda problem: problem[0])
    problems = _unknown_names(env) + [f"{name}: {message}" for name, message in found]
    bad = frozenset(line.split(":", 1)[0] for line in problems)
    return EnvReading(Settings(**values), tuple(problems), bad)


_WEBHOOK_PAIR = ("MODERATION_REVIEW_WEBHOOK", "MODERATION_REVIEW_WEBHOOK_KEY")


def webhook_pair_problem(url: bool, key: bool) -> tuple[str, str] | None:
    """(the missing variable, what is wrong) when only one of the webhook's URL and key is set:
    a webhook is never sent unsigned, and a key without a URL signs nothing."""
    if url and not key:
        return _WEBHOOK_PAIR[1], f"is not set, but {_WEBHOOK_PAIR[0]} is: the body is signed"
    if key and not url:
        return _WEBHOOK_PAIR[0], f"is not set, but {_WEBHOOK_PAIR[1]} is: nothing to sign for"
    return None


def _webhook_pair(env: Mapping[str, str]) -> list[tuple[str, str]]:
    found = webhook_pair_problem(*(env.get(name) is not None for name in _WEBHOOK_PAIR))
    return [] if found is None else [found]


def _unknown_names(env: Mapping[str, str]) -> list[str]:
    """A problem for each `MODERATION_*` name this library does not read (a typo would otherwise
    do nothing), with the closest real name."""
    problems = []
    for name in sorted(k for k in env if k.startswith("MODERATION_")):
        if name not in ENV_VARS:
            close = difflib.get_close_matches(name, list(ENV_VARS), n=1, cutoff=0.7)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"{name}: not a setting of this library{hint}")
    return problems
