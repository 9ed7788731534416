"""Every policy in one AWS AppConfig document, read through the AWS transport
(`moderation.aws.appconfig.AppConfigData`) and cut into policies by `split_document`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from moderation.errors import AWSError, PolicyError, Problem
from moderation.policy._model import DEFAULT_POLICY
from moderation.policy._yaml import MAX_DOCUMENT_BYTES, split_document
from moderation.policy.sources._aws import build, unreadable
from moderation.policy.sources._snapshot import Entry, Snapshot, digest

if TYPE_CHECKING:
    from moderation.aws.appconfig import AppConfigData, Configuration

__all__ = ["MAX_APPCONFIG_BYTES", "AppConfigSource"]

#: The largest AppConfig document read (AppConfig's own limit is lower unless raised).
MAX_APPCONFIG_BYTES = MAX_DOCUMENT_BYTES
#: AppConfig refuses a minimum poll interval under 15 seconds.
MIN_POLL_SECONDS = 15


class AppConfigSource:
    """One AWS AppConfig configuration profile holding every policy, read with AppConfig Data.

    The configuration is one YAML (or JSON) document, `{default: <policy>, tenants: {<tenant id>:
    <policy>, ...}}`. A session is started (StartConfigurationSession) on the first check and each
    check then calls GetLatestConfiguration with the token the last call returned: an empty
    answer means unchanged. A token that expired (or a refused call) starts a new session; a check
    made before AppConfig's poll interval has passed is answered as unchanged, without a call.
    The version is the hosted configuration's VersionLabel when it has one, else a digest.
    The role needs `appconfig:StartConfigurationSession` and `appconfig:GetLatestConfiguration`.
    """

    def __init__(
        self,
        application: str,
        environment: str,
        profile: str,
        *,
        client: Any | None = None,
        region: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for what, value in (
            ("application", application),
            ("environment", environment),
            ("profile", profile),
        ):
            if not value or not value.strip() or len(value) > 128:
                raise PolicyError(
                    [
                        Problem(
                            f"appconfig://{application}/{environment}/{profile}",
                            "",
                            f"the {what} must be a name or id of 1 to 128 characters",
                            "write appconfig://application/environment/profile",
                        )
                    ]
                )
        self.application = application
        self.environment = environment
        self.profile = profile
        self._given = client
        self._region = region
        self._transport: AppConfigData | None = None
        self._clock = clock
        self._token: str | None = None
        self._next_poll = float("-inf")
        self._last: Snapshot | None = None
        self._last_body: bytes | None = None

    def __repr__(self) -> str:
        return f"AppConfigSource({self.application!r}, {self.environment!r}, {self.profile!r})"

    def describe(self) -> str:
        """`appconfig:application/environment/profile`: also the start of every shown name."""
        return f"appconfig:{self.application}/{self.environment}/{self.profile}"

    @property
    def transport(self) -> AppConfigData:
        """The AWS transport the calls go through (built on first use)."""
        if self._transport is None:
            from moderation.aws.appconfig import AppConfigData

            def factory(client: Any | None, **options: Any) -> AppConfigData:
                return AppConfigData(
                    self.application, self.environment, self.profile, client, **options
                )

            self._transport = build(self.describe(), factory, self._given, self._region)
        return self._transport

    @property
    def client(self) -> Any:
        """The AppConfig Data client (built on first use unless one was given)."""
        return self._given if self._given is not None else self.transport.client

    def _fail(self, exc: AWSError) -> PolicyError:
        if exc.kind == "not found":
            hint = (
                f"check the application '{self.application}', environment "
                f"'{self.environment}' and profile '{self.profile}' (names or ids), and "
                "that a configuration was deployed to that environment"
            )
        elif exc.kind == "denied":
            hint = (
                "the role needs appconfig:StartConfigurationSession and "
                "appconfig:GetLatestConfiguration on arn:aws:appconfig:REGION:ACCOUNT:"
                "application/APP_ID/environment/ENV_ID/configuration/PROFILE_ID"
            )
        else:
            hint = None
        return unreadable(self.describe(), exc, hint)

    def _poll(self) -> Configuration:
        """One GetLatestConfiguration answer, on a new session if the current token is refused."""
        while True:
            fresh = self._token is None
            try:
                token = self._token if self._token is not None else self.transport.start()
                self._token = None  # a token is good for one call, whatever happens to it
                answer = self.transport.latest(token, limit=MAX_APPCONFIG_BYTES + 1)
            except AWSError as exc:
                if exc.code == "BadRequestException" and not fresh:
                    continue  # an expired token, or a call too early: a new session answers
                raise self._fail(exc) from exc
            self._token = answer.next_token
            self._next_poll = self._clock() + answer.poll_seconds
            return answer

    def _unchanged(self, known: str | None) -> Snapshot | None:
        last = self._last
        return None if last is None or last.version == known else last

    def fetch(self, known: str | None) -> Snapshot | None:
        """The deployed configuration, or None if AppConfig says it is unchanged and the last
        one this source returned was `known`."""
        if self._last is not None and self._token is not None and self._clock() < self._next_poll:
            return self._unchanged(known)
        answer = self._poll()
        body = answer.body
        if not body and self._last is not None:
            return self._unchanged(known)
        if body == self._last_body:  # a new session's first answer repeats what we have
            return self._unchanged(known)
        label, hashed = answer.version_label, digest([("configuration", body)])
        version = label or hashed
        if self._last is not None and version == self._last.version:
            version = f"{version}+{hashed}"  # the same label on other content: still a change
        self._last, self._last_body = Snapshot(version, _files(body, self.describe())), body
        return None if version == known else self._last


def _files(body: bytes, where: str) -> dict[str, Entry]:
    if body:
        return dict(split_document(body, where))
    return {
        DEFAULT_POLICY: (
            where,
            Problem(
                where,
                "",
                "the configuration is empty",
                "deploy {default: <policy>, tenants: {...}} to the environment",
            ),
        )
    }
