"""The Bedrock judge: a borderline image and its findings, sent to a multimodal model via Converse.

The prompt and the reading of the answer are pure and live in `moderation.judge`
(`build_converse_request`, `interpret_converse`), shared with recorded and offline judges.
`BedrockJudge` adds the transport: one retry owner, timeouts for LLM latency, and `JudgeError`
for every service or transport failure, whatever botocore raised.
"""

from __future__ import annotations

from typing import Any, Final

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from moderation.aws.transport import (
    AWSTransport,
    RetryPolicy,
    any_of,
    codes,
    error_code,
    instances,
    plural_attempts,
)
from moderation.errors import InvalidImage, JudgeError, ModerationError
from moderation.image import PreparedImage
from moderation.judge import (
    DUPLICATE_KEYS,
    build_converse_request,
    duplicate_keys,
    interpret_converse,
    prompt_sha256,
)
from moderation.ports import JudgeRequest, Judgment

__all__ = ["RETRYABLE_CODES", "BedrockJudge"]

RETRYABLE_CODES: Final = (
    "ThrottlingException",
    "ServiceUnavailableException",
    "InternalServerException",
    "ModelNotReadyException",
)

# Connection failures are retried; a read timeout is not: the model call behind it was made and is
# billed, so another attempt doubles cost and latency. ConnectTimeoutError means no request left.
_RETRYABLE = any_of(
    codes(*RETRYABLE_CODES),
    instances((EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError)),
)


def _flag_duplicate_keys(response_dict: Any, customized_response_dict: Any, **_: Any) -> None:
    """botocore's before-parse hook: lists the keys the raw body holds twice, which its JSON
    parser would silently collapse to the last value, under `DUPLICATE_KEYS` in the response."""
    body = response_dict.get("body") if isinstance(response_dict, dict) else None
    if isinstance(body, bytes) and (found := duplicate_keys(body)):
        customized_response_dict[DUPLICATE_KEYS] = list(found)


def _watch_duplicate_keys(client: Any) -> None:
    """Registers the hook on `client`, once (a unique id; the call is cheap when it is there)."""
    events = getattr(getattr(client, "meta", None), "events", None)
    if events is not None:
        events.register(
            "before-parse.bedrock-runtime.Converse",
            _flag_duplicate_keys,
            unique_id="moderation-duplicate-keys",
        )


class BedrockJudge(AWSTransport):
    """`moderation.ports.Judge` on Amazon Bedrock Runtime's Converse API.

    One retry owner, never two:

    - Without `client`, the judge builds, on its first call,
      `session.client("bedrock-runtime", region_name=region, config=...)` (the session of the
      enclosing `one_session()` block, else one of its own: `AWSTransport`)
      with botocore's retries off (`retries={"total_max_attempts": 1}`), `connect_timeout`,
      `read_timeout` (default 120 s, not botocore's 60: a multimodal model can take that long)
      and a `moderation/<version>` user agent. Retries are then this library's, with `retry`
      (default `RetryPolicy()`: 4 attempts, exponential backoff with full jitter, a deadline).
    - An injected `client` keeps its own configuration (timeouts, endpoint, retries). If it
      retries by itself (botocore's default, or any `retries` other than one attempt), the judge
      makes exactly ONE attempt per judgment and leaves the retrying to botocore; if it was built
      with `retries={"total_max_attempts": 1}`, the judge retries with `retry`. Note that
      botocore's own retry modes also retry read timeouts, which are billed.

    Retried: ThrottlingException, ServiceUnavailableException, InternalServerException,
    ModelNotReadyException, and connection failures (EndpointConnectionError, ConnectTimeoutError,
    ConnectionClosedError). Not retried: a read timeout (the model call was made and is billed),
    ModelTimeoutException, ModelErrorException, ValidationException, AccessDeniedException,
    ResourceNotFoundException and every other error. Once retries are over, `judge` raises
    `JudgeError` (with `code` and `attempts`, the botocore error chained as its cause). A reply
    that arrives but is not a verdict is not an error: it is a `Judgment` with status `blocked` or
    `invalid` (see `interpret_converse`).
    """

    service = "bedrock-runtime"
    default_connect_timeout = 5.0
    default_read_timeout = 120.0

    def __init__(
        self,
        client: Any | None = None,
        *,
        session: boto3.Session | None = None,
        region: str | None = None,
        retry: RetryPolicy | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 120.0,
        max_tokens: int = 512,
        temperature: float = 0.0,
    ) -> None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        if not 0.0 <= temperature <= 1.0:
            raise ValueError(f"temperature must be between 0 and 1, got {temperature}")
        super().__init__(
            client,
            session=session,
            region=region,
            retry=retry,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,  # LLM latency: above botocore's 60 s default
        )
        self._max_tokens = max_tokens
        self._temperature = temperature

    def failure(self, message: str) -> Exception:
        """A judge that cannot be built or whose failure cannot be read fails as a JudgeError."""
        return JudgeError(message)

    def retryable(self, exc: BaseException) -> bool:
        """Throttling, unavailability and connection failures; never a (billed) read timeout."""
        return _RETRYABLE(exc)

    def judge(self, image: PreparedImage, request: JudgeRequest) -> Judgment:
        """Ask `request.model_id` about `image` (downscaled for the judge) and `request.findings`.

        Returns a `Judgment` for every reply the service gave; raises `JudgeError` when the image
        cannot be prepared for the model or the service fails after retries.
        """
        try:
            image_format, image_bytes = image.judge_image()
        except (InvalidImage, ModerationError) as exc:
            raise JudgeError(
                f"could not prepare the image for the judge: {exc}",
                code=getattr(exc, "code", None),
            ) from exc
        kwargs = build_converse_request(
            request,
            image_format,
            image_bytes,
            max_tokens=self._max_tokens,
            temperature=self._temperature,
        )
        digest = prompt_sha256(kwargs)
        done = self.invoke("Converse", lambda: self._converse(kwargs), request.model_id)
        return interpret_converse(
            done.value,
            model_id=request.model_id,
            prompt_sha256=digest,
            latency_ms=done.latency_ms,
            attempts=done.requests,
        )

    def _converse(self, kwargs: dict[str, Any]) -> Any:
        # The hook goes on whichever client is in use: `ensure_pool` may have swapped it.
        client = self._client
        _watch_duplicate_keys(client)
        return client.converse(**kwargs)

    def translate(
        self, exc: BaseException, operation: str, requests: int, context: Any = None
    ) -> Exception:
        """`JudgeError` for every failure, with what to do about the common ones."""
        model_id = str(context)
        attempts = requests
        tried = plural_attempts(attempts)
        code = error_code(exc)
        if isinstance(exc, ClientError):
            message = _refusal_message(exc, code, model_id, tried)
        elif isinstance(exc, ReadTimeoutError):
            # getattr all the way: an injected stand-in client need not have botocore's meta.
            config = getattr(getattr(self._client, "meta", None), "config", None)
            timeout = getattr(config, "read_timeout", None)
            within = (
                f" within the {timeout:g} s read timeout"
                if isinstance(timeout, int | float)
                else ""
            )
            message = (
                f"Bedrock model {model_id!r} gave no answer{within} (read timeout, {tried}; not"
                " retried: a timed-out model call is still billed)"
            )
        elif isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ConnectionClosedError):
            message = f"could not reach Bedrock for {model_id!r} ({tried}): {exc}"
        elif isinstance(exc, BotoCoreError):
            message = f"Bedrock Converse on {model_id!r} failed ({type(exc).__name__}): {exc}"
        else:
            # botocore's parser raises ResponseParserError (not a BotoCoreError) or plain
            # exceptions on a garbled body, and so would a bug of ours: name it, don't guess.
            message = (
                f"Bedrock Converse on {model_id!r} failed unexpectedly ({tried}; an unreadable"
                f" response or a bug): {type(exc).__name__}: {exc}"
            )
        return JudgeError(message, code=code, attempts=attempts)


def _refusal_message(exc: ClientError, code: str | None, model_id: str, tried: str) -> str:
    """What to do about an error Bedrock answered with, in its own words too."""
    said = exc.response.get("Error", {}).get("Message") or str(exc)
    if code == "AccessDeniedException":
        return (
            f"Bedrock denied access to {model_id!r} (AccessDeniedException, {tried}):"
            f" the caller needs the IAM permission bedrock:InvokeModel on {model_id}"
            " (for an inference profile, also on the foundation models it routes to),"
            f" and model access to {model_id} must be enabled in this account and region."
            f" Bedrock said: {said}"
        )
    if code == "ResourceNotFoundException":
        return (
            f"Bedrock has no model {model_id!r} here (ResourceNotFoundException, {tried}):"
            f" check the model id or inference profile and the region. Bedrock said: {said}"
        )
    if code in ("ModelTimeoutException", "ModelErrorException"):
        return (
            f"Bedrock model {model_id!r} failed ({code}, {tried}; not retried: the"
            f" model call was made and may be billed): {said}"
        )
    return f"Bedrock Converse on {model_id!r} failed ({code}, {tried}): {said}"
