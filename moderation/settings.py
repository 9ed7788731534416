"""Configuration from the environment: read once, checked whole, shared by the engine and the CLI.

`Settings.from_env()` reads every `MODERATION_*` variable (and `AWS_REGION`), checks them all and
raises one `ConfigurationError` naming every bad variable, so a deployment learns everything that
is wrong at cold start rather than one variable per redeploy. `Engine.from_settings()` and every
CLI command build from the same object; command-line options override single fields.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from moderation.errors import ConfigurationError, InvalidS3Location
from moderation.s3location import S3Prefix, bucket_problem

__all__ = ["ENV_VARS", "Settings", "is_file_sink", "policies_location"]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")

#: Every variable this library reads, with what it means (docs/configuration.md has the table).
ENV_VARS: Mapping[str, str] = {
    "MODERATION_POLICIES": "where the policies are: a directory (default ./policies),"
    " `s3://bucket/prefix` (the same layout under a prefix) or"
    " `appconfig://application/environment/profile` (an AWS AppConfig profile)",
    "MODERATION_POLICIES_TTL": "seconds between checks for new policies (a new version is"
    " validated whole before use; an invalid one is refused and the last good one stays)."
    " Default 60 for S3 and AppConfig; a directory is read once unless this is set",
    "MODERATION_TENANT_FALLBACK": "`default`: a tenant with no policy file gets the default policy"
    " (recorded in the decision); unset: such a tenant raises UnknownTenant",
    "MODERATION_REGION": "AWS region for S3, Rekognition and Bedrock (else AWS_REGION, else"
    " AWS_DEFAULT_REGION / the AWS config file)",
    "MODERATION_AUDIT": "`stdout` (default: JSON lines, as Lambda and containers collect them),"
    " `stderr`, `log` (the `moderation.audit` logger, which must be configured to emit INFO),"
    " `s3://bucket/prefix` (one object per decision, never overwritten), or a file path"
    " (hash-chained JSON lines, fsynced; docs/audit.md)",
    "MODERATION_AUDIT_KEY": "secret that makes a file log's record hashes HMAC-SHA256"
    " (`alg: hmac-sha256`); `moderation audit verify` needs it too. Never printed",
    "MODERATION_AUDIT_ROTATE_BYTES": "start a new file log file (the old one renamed to"
    " `<name>.N`) before a record would take it past this size; a number of bytes, or with a"
    " K, M or G suffix (1024-based)",
    "MODERATION_PROJECT_VERSION": "ARN of a Rekognition custom moderation adapter",
    "MODERATION_JUDGE": "`bedrock` (default) or `none` (borderline images go to review)",
    "MODERATION_REKOGNITION_TPS": "Rekognition requests per second this process may send,"
    " shared by every thread (your account's DetectModerationLabels quota, or the share of it"
    " this process gets); backs off on throttling and creeps back. Unset: no limit",
    "MODERATION_BEDROCK_RPM": "Bedrock Converse requests per minute this process may send,"
    " shared by every thread; backs off on throttling and creeps back. Unset: no limit",
    "MODERATION_DEDUPE": "`memory` (default: the same image with the same detector settings is"
    " detected once per process, LRU of 10,000), `memory:N` (N entries), `dynamodb:TABLE`"
    " (shared by every process; partition key `id`, TTL attribute `expiration`), or `off`",
    "MODERATION_DEDUPE_TTL": "seconds a cached detection stays usable (default 604800, 7 days)",
    "MODERATION_REVIEW_QUEUE_URL": "Lambda: SQS queue URL that `review` outcomes are sent to"
    " (docs/lambda.md has the message format). Unset: none are sent",
    "MODERATION_QUARANTINE_BUCKET": "Lambda: bucket that rejected and invalid objects are moved"
    " to, under the same key with their tags. Unset: they stay where they are, tagged",
    "MODERATION_IDEMPOTENCY_TABLE": "Lambda: DynamoDB table (partition key: string `id`, TTL"
    " attribute `expiration`) that makes redelivered events return the first decision",
    "MODERATION_IDEMPOTENCY_TTL": "Lambda: seconds a decision is remembered for redelivery"
    " (default 86400)",
    "MODERATION_STRICT_TENANTS": "obsolete: unknown tenants always raise now; `1` is accepted",
}


_TABLE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_DEDUPE = re.compile(r"^(?:off|memory(?::(?P<size>[0-9]+))?|dynamodb:(?P<table>.+))$")


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
    dedupe: str = "memory"  # "off", "memory", "memory:N" or "dynamodb:TABLE"
    dedupe_ttl: float = 604800.0
    review_queue_url: str | None = None
    quarantine_bucket: str | None = None
    idempotency_table: str | None = None
    idempotency_ttl: float = 86400.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings in `env` (default: os.environ); ConfigurationError naming every bad one."""
        env = os.environ if env is None else env
        problems: list[str] = []
        values: dict[str, Any] = {}

        for name in sorted(k for k in env if k.startswith("MODERATION_")):
            if name not in ENV_VARS:
                close = difflib.get_close_matches(name, list(ENV_VARS), n=1, cutoff=0.7)
                hint = f" (did you mean {close[0]}?)" if close else ""
                problems.append(f"{name}: not a setting of this library{hint}")

        def text(name: str) -> str | None:
            value = env.get(name)
            if value is None:
                return None
            if not value.strip():
                problems.append(f"{name}: is set but empty (unset it for the default)")
                return None
            return value.strip()

        if (policies := text("MODERATION_POLICIES")) is not None:
            if (problem := _policies_problem(policies)) is not None:
                problems.append(f"MODERATION_POLICIES: {problem}")
            values["policies"] = policies

        def positive(name: str, field_name: str, unit: str) -> None:
            value = text(name)
            if value is None:
                return
            try:
                number = float(value)
            except ValueError:
                number = float("nan")
            if not number > 0 or number == float("inf"):
                problems.append(f"{name}: must be a positive number of {unit}, got {value!r}")
            else:
                values[field_name] = number

        positive("MODERATION_POLICIES_TTL", "policies_ttl", "seconds")
        positive("MODERATION_REKOGNITION_TPS", "rekognition_tps", "requests per second")
        positive("MODERATION_BEDROCK_RPM", "bedrock_rpm", "requests per minute")
        positive("MODERATION_DEDUPE_TTL", "dedupe_ttl", "seconds")
        positive("MODERATION_IDEMPOTENCY_TTL", "idempotency_ttl", "seconds")
        if (dedupe := text("MODERATION_DEDUPE")) is not None:
            match = _DEDUPE.fullmatch(dedupe)
            if match is None or (match["size"] is not None and int(match["size"]) < 1):
                problems.append(
                    "MODERATION_DEDUPE: must be memory, memory:N (N entries, at least 1), "
                    f"dynamodb:TABLE or off, got {dedupe!r}"
                )
            elif match["table"] is not None and not _TABLE.fullmatch(match["table"]):
                problems.append(
                    f"MODERATION_DEDUPE: {match['table']!r} is not a DynamoDB table name "
                    "(3-255 of A-Z a-z 0-9 _ . -)"
                )
            else:
                values["dedupe"] = dedupe
        if (queue := text("MODERATION_REVIEW_QUEUE_URL")) is not None:
            if not re.fullmatch(r"https?://[^/\s]+/[0-9]+/[A-Za-z0-9_-]{1,80}(\.fifo)?", queue):
                problems.append(
                    "MODERATION_REVIEW_QUEUE_URL: must be an SQS queue URL "
                    f"(https://sqs.REGION.amazonaws.com/ACCOUNT/NAME), got {queue!r}"
                )
            values["review_queue_url"] = queue
        if (bucket := text("MODERATION_QUARANTINE_BUCKET")) is not None:
            if bucket_problem(bucket) is not None:
                problems.append(
                    f"MODERATION_QUARANTINE_BUCKET: {bucket!r} is not a bucket name "
                    "(3-63 of a-z 0-9 . -, no s3:// prefix)"
                )
            values["quarantine_bucket"] = bucket
        if (table := text("MODERATION_IDEMPOTENCY_TABLE")) is not None:
            if not _TABLE.fullmatch(table):
                problems.append(
                    f"MODERATION_IDEMPOTENCY_TABLE: {table!r} is not a DynamoDB table name "
                    "(3-255 of A-Z a-z 0-9 _ . -)"
                )
            values["idempotency_table"] = table
        fallback = env.get("MODERATION_TENANT_FALLBACK")
        if fallback is not None:
            if fallback.strip().lower() in ("default", *_TRUE):
                values["tenant_fallback"] = True
            elif fallback.strip().lower() not in _FALSE:
                problems.append(
                    f"MODERATION_TENANT_FALLBACK: must be `default` (fall back to the default "
                    f"policy) or unset, got {fallback!r}"
                )
        strict = env.get("MODERATION_STRICT_TENANTS")
        if strict is not None and strict.strip().lower() not in _TRUE:
            problems.append(
                "MODERATION_STRICT_TENANTS: no longer read (unknown tenants always raise "
                "UnknownTenant); to give them the default policy set MODERATION_TENANT_FALLBACK="
                "default"
            )
        region = text("MODERATION_REGION") or env.get("AWS_REGION", "").strip() or None
        values["region"] = region
        if (audit := text("MODERATION_AUDIT")) is not None:
            values["audit"] = audit
        key = env.get("MODERATION_AUDIT_KEY")
        if key is not None:
            if not key.strip():
                problems.append("MODERATION_AUDIT_KEY: is set but empty (unset it for no key)")
            else:
                values["audit_key"] = key  # as given: whitespace may be part of a secret
        rotate = env.get("MODERATION_AUDIT_ROTATE_BYTES")
        if rotate is not None:
            size = _byte_size(rotate)
            if size is None:
                problems.append(
                    "MODERATION_AUDIT_ROTATE_BYTES: must be a positive number of bytes, "
                    f"optionally with a K, M or G suffix (e.g. 100M), got {rotate!r}"
                )
            else:
                values["audit_rotate_bytes"] = size
        sink = values.get("audit")
        if sink is not None and not is_file_sink(sink):
            for name in ("MODERATION_AUDIT_KEY", "MODERATION_AUDIT_ROTATE_BYTES"):
                if env.get(name) is not None:
                    problems.append(
                        f"{name}: applies only to a file audit log, but MODERATION_AUDIT is "
                        f"{sink!r}"
                    )
        if (project := text("MODERATION_PROJECT_VERSION")) is not None:
            if not project.startswith("arn:"):
                problems.append(
                    f"MODERATION_PROJECT_VERSION: must be a Rekognition project version ARN "
                    f"(arn:aws:rekognition:...), got {project!r}"
                )
            values["project_version"] = project
        judge = env.get("MODERATION_JUDGE")
        if judge is not None:
            if judge.strip() in ("bedrock", "none"):
                values["judge"] = judge.strip()
            else:
                problems.append(f"MODERATION_JUDGE: must be bedrock or none, got {judge!r}")
        if problems:
            raise ConfigurationError(problems)
        return cls(**values)

    def with_options(self, **options: Any) -> Settings:
        """These settings with the options that are not None replaced (command-line overrides)."""
        return replace(self, **{k: v for k, v in options.items() if v is not None})
