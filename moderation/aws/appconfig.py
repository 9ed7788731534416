"""AWS AppConfig Data, for the AppConfig policy source: a configuration session, polled.

Every failure leaves as `AWSError`, classified by the one table (a configuration that does not
exist is `not found`, a missing permission `denied`); an expired or refused token is
`BadRequestException`, for which the caller starts a new session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from moderation.aws.transport import CONNECTION_ERRORS, AWSService

__all__ = ["MIN_POLL_SECONDS", "AppConfigData", "Configuration"]

#: AppConfig refuses a minimum poll interval under 15 seconds.
MIN_POLL_SECONDS: Final = 15


@dataclass(frozen=True, slots=True)
class Configuration:
    """One GetLatestConfiguration answer: the body (empty: unchanged since the last token), the
    token for the next call, the seconds to wait before it, and the version label if any."""

    body: bytes
    next_token: str
    poll_seconds: float
    version_label: str | None


class AppConfigData(AWSService):
    """One configuration profile of an application's environment, read through a session."""

    service = "appconfigdata"
    iam_prefix = "appconfig"

    def __init__(
        self,
        application: str,
        environment: str,
        profile: str,
        client: Any | None = None,
        **kwargs: Any,
    ) -> None:
        self.application = application
        self.environment = environment
        self.profile = profile
        super().__init__(client, **kwargs)

    def __repr__(self) -> str:
        return f"AppConfigData({self.application!r}, {self.environment!r}, {self.profile!r})"

    @property
    def name(self) -> str:
        """`appconfig:application/environment/profile`."""
        return f"appconfig:{self.application}/{self.environment}/{self.profile}"

    def start(self) -> str:
        """A new session's first token (StartConfigurationSession)."""
        params = {
            "ApplicationIdentifier": self.application,
            "EnvironmentIdentifier": self.environment,
            "ConfigurationProfileIdentifier": self.profile,
            "RequiredMinimumPollIntervalInSeconds": MIN_POLL_SECONDS,
        }
        answer = self.call(
            "StartConfigurationSession",
            lambda: self._client.start_configuration_session(**params),
            self.name,
        )
        return str(answer["InitialConfigurationToken"])

    def latest(self, token: str, *, limit: int) -> Configuration:
        """GetLatestConfiguration with `token`: at most `limit` bytes of the body."""

        def poll() -> Mapping[str, Any]:
            answer = dict(self._client.get_latest_configuration(ConfigurationToken=token))
            stream = answer.get("Configuration")
            body = b""
            if stream is not None:
                try:
                    body = bytes(stream.read(limit))
                finally:
                    stream.close()
            answer["Configuration"] = body
            return answer

        # A token is good for one call: a lost answer cannot be asked for again with it.
        answer = self.invoke("GetLatestConfiguration", poll, self.name).value
        label = answer.get("VersionLabel")
        return Configuration(
            body=answer["Configuration"],
            next_token=str(answer["NextPollConfigurationToken"]),
            poll_seconds=float(answer.get("NextPollIntervalInSeconds") or MIN_POLL_SECONDS),
            version_label=str(label) if label else None,
        )

    def retryable(self, exc: BaseException) -> bool:
        """A token is spent by the call that used it, so a lost answer is not asked again with
        it: connection failures are not retried here (the caller starts a new session)."""
        return not isinstance(exc, CONNECTION_ERRORS) and super().retryable(exc)
