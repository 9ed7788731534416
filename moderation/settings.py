"""Configuration from the environment: read once, checked whole, shared by the engine and the CLI.

`Settings.from_env()` reads every `MODERATION_*` variable (and `AWS_REGION`), checks them all and
raises one `ConfigurationError` naming every bad variable, so a deployment learns everything that
is wrong at cold start rather than one variable per redeploy. `Engine.from_settings()` and every
CLI command build from the same object; command-line options override single fields.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from moderation.errors import ConfigurationError

__all__ = ["ENV_VARS", "Settings"]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")

#: Every variable this library reads, with what it means (docs/configuration.md has the table).
ENV_VARS: Mapping[str, str] = {
    "MODERATION_POLICIES": "policy directory (default ./policies)",
    "MODERATION_TENANT_FALLBACK": "`default`: a tenant with no policy file gets the default policy"
    " (recorded in the decision); unset: such a tenant raises UnknownTenant",
    "MODERATION_REGION": "AWS region for S3, Rekognition and Bedrock (else AWS_REGION, else"
    " AWS_DEFAULT_REGION / the AWS config file)",
    "MODERATION_AUDIT": "`stdout` (default: JSON lines, as Lambda and containers collect them),"
    " `stderr`, `log` (the `moderation.audit` logger, which must be configured to emit INFO),"
    " or a file path (JSON lines, fsynced)",
    "MODERATION_PROJECT_VERSION": "ARN of a Rekognition custom moderation adapter",
    "MODERATION_JUDGE": "`bedrock` (default) or `none` (borderline images go to review)",
    "MODERATION_STRICT_TENANTS": "obsolete: unknown tenants always raise now; `1` is accepted",
}


@dataclass(frozen=True, slots=True)
class Settings:
    """What the engine is built from. Every field has the default a fresh deployment gets."""

    policies: str = "policies"
    tenant_fallback: bool = False
    region: str | None = None
    audit: str | None = None  # None: the entry point's default (stdout; stderr for the CLI)
    project_version: str | None = None
    judge: Literal["bedrock", "none"] = "bedrock"

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
            values["policies"] = policies
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
