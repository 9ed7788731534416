"""Reading a Converse response into a `Judgment`. Pure; never raises.

Only the forced tool's input is read: free text is never searched for a verdict (a reply "I would
not APPROVE this" contains the word). Everything else (a refusal by the model's content filter or a
guardrail, a reply cut off at maxTokens, a malformed or missing tool call, an input that does not
match the schema exactly, a message not from the assistant, a body holding a key twice) becomes a
`Judgment` with status `blocked` or `invalid`, never a verdict.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, Literal

from moderation.decision import TokenUsage, Verdict, VerdictKind
from moderation.judge._prompt import RATIONALE_MAX_CHARS, TOOL_NAME
from moderation.ports import Judgment

__all__ = ["DUPLICATE_KEYS", "duplicate_keys", "interpret_converse"]

#: Where the transport records the keys the raw response body held more than once (a JSON reader
#: keeps the last of them, so `"verdict": "reject", "verdict": "approve"` would read as approve).
#: Not a Converse field: the Bedrock judge adds it from the raw body, before botocore parses it.
DUPLICATE_KEYS: Final = "moderationDuplicateKeys"

_VERDICT_STOPS: Final = frozenset({"tool_use", "end_turn", "stop_sequence"})
_BLOCKED_STOPS: Final[Mapping[str, str]] = {
    "content_filtered": "the model's content filter stopped the reply",
    "guardrail_intervened": "a Bedrock guardrail intervened",
}
_INVALID_STOPS: Final[Mapping[str, str]] = {
    "max_tokens": "the reply was cut off at maxTokens",
    "malformed_tool_use": "the model produced a malformed tool call",
    "malformed_model_output": "the model produced malformed output",
    "model_context_window_exceeded": "the request exceeded the model's context window",
}
_NoVerdict = Literal["blocked", "invalid"]
_TOOL_FIELDS: Final = frozenset({"verdict", "rationale", "categories"})
_VERDICTS: Final[Mapping[str, VerdictKind]] = {kind.value: kind for kind in VerdictKind}


def duplicate_keys(body: bytes | str) -> tuple[str, ...]:
    """The keys some object of the JSON document `body` holds more than once, in order of their
    second appearance; () for a document without any, or one that is not JSON at all."""
    found: dict[str, None] = {}

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                found.setdefault(key)
            seen.add(key)
        return dict(items)

    try:
        json.loads(body, object_pairs_hook=pairs)
    except ValueError:  # not JSON: the parser of the response reports that
        return ()
    return tuple(found)


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _usage(raw: Any) -> TokenUsage | None:
    if not isinstance(raw, Mapping):
        return None
    input_tokens = _count(raw.get("inputTokens")) or 0
    output_tokens = _count(raw.get("outputTokens")) or 0
    cache_read = _count(raw.get("cacheReadInputTokens")) or 0
    cache_write = _count(raw.get("cacheWriteInputTokens")) or 0
    total = _count(raw.get("totalTokens"))
    # Converse counts cached tokens outside inputTokens, and inside totalTokens.
    parts = input_tokens + output_tokens + cache_read + cache_write
    return TokenUsage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=parts if total is None else total,
        cache_read_input_tokens=cache_read,
        cache_write_input_tokens=cache_write,
    )


def _service_latency(metrics: Any) -> float | None:
    if not isinstance(metrics, Mapping):
        return None
    value = metrics.get("latencyMs")
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _message(response: Mapping[str, Any]) -> Mapping[str, Any] | str:
    """The reply's message, or what is wrong with it: only the assistant's message is an answer."""
    output = response.get("output")
    message = output.get("message") if isinstance(output, Mapping) else None
    if not isinstance(message, Mapping):
        return "the response has no output.message"
    role = message.get("role")
    if role != "assistant":
        return f"the message's role is {_short(role)}, not 'assistant'"
    return message


def _content(message: Mapping[str, Any]) -> list[Any] | None:
    content = message.get("content")
    return content if isinstance(content, list) else None


def _read_verdict(tool_input: Any) -> Verdict | str:
    """The validated verdict, or a sentence saying what is wrong with the tool input."""
    if not isinstance(tool_input, Mapping):
        return f"tool input is {_type_name(tool_input)}, not an object"
    extra = sorted(repr(k) for k in tool_input if k not in _TOOL_FIELDS)
    if extra:
        return f"tool input has unexpected field(s) {', '.join(extra)}"
    if "verdict" not in tool_input:
        return "tool input has no 'verdict'"
    raw_verdict = tool_input["verdict"]
    if not isinstance(raw_verdict, str) or raw_verdict not in _VERDICTS:
        allowed = ", ".join(_VERDICTS)
        return f"verdict {_short(raw_verdict)} is not one of {allowed} (case-sensitive)"
    if "rationale" not in tool_input:
        return "tool input has no 'rationale'"
    rationale = tool_input["rationale"]
    if not isinstance(rationale, str):
        return f"rationale is {_type_name(rationale)}, not a string"
    raw_categories = tool_input.get("categories", [])
    if not isinstance(raw_categories, list | tuple) or not all(
        isinstance(c, str) for c in raw_categories
    ):
        return f"categories is {_short(raw_categories)}, not a list of strings"
    categories = tuple(dict.fromkeys(c.strip() for c in raw_categories if c.strip()))
    rationale = rationale.strip()
    if len(rationale) > RATIONALE_MAX_CHARS:
        rationale = rationale[: RATIONALE_MAX_CHARS - 1] + "…"
    return Verdict(verdict=_VERDICTS[raw_verdict], categories=categories, rationale=rationale)


def _read_tool_call(content: list[Any] | None) -> Verdict | str:
    """The verdict of the one record_verdict call in `content`, or what is wrong with the reply."""
    if content is None:
        return "the response has no output.message.content"
    uses = [
        block["toolUse"] for block in content if isinstance(block, Mapping) and "toolUse" in block
    ]
    if not uses:
        has_text = any(
            isinstance(block, Mapping) and isinstance(block.get("text"), str) and block["text"]
            for block in content
        )
        return "text-only reply, no tool call" if has_text else "no tool call in the reply"
    names = [use.get("name") if isinstance(use, Mapping) else None for use in uses]
    if len(uses) > 1:
        listed = ", ".join(_short(name, 40) for name in names)
        return f"{len(uses)} tool calls ({listed}); exactly one {TOOL_NAME} call is required"
    use = uses[0]
    if not isinstance(use, Mapping):
        return f"toolUse block is {_type_name(use)}, not an object"
    if names[0] != TOOL_NAME:
        return f"the model called tool {_short(names[0], 40)}, not {TOOL_NAME!r}"
    return _read_verdict(use.get("input"))


def _read_reply(response: Mapping[str, Any], raw_stop: Any) -> Verdict | tuple[_NoVerdict, str]:
    """The verdict of a reply, or why it has none: ("blocked" or "invalid", what happened)."""
    duplicated = response.get(DUPLICATE_KEYS)
    if duplicated:
        keys = ", ".join(_short(k, 40) for k in duplicated)
        return "invalid", f"the response holds key(s) {keys} more than once: it has no one reading"
    stop = raw_stop if isinstance(raw_stop, str) else None
    if stop is not None and stop in _BLOCKED_STOPS:
        return "blocked", f"{stop}: {_BLOCKED_STOPS[stop]}"
    if stop is not None and stop in _INVALID_STOPS:
        return "invalid", f"{stop}: {_INVALID_STOPS[stop]}"
    if stop not in _VERDICT_STOPS:
        if raw_stop is None and response.get("output") is None:
            # What botocore makes of a 200 whose body is empty, cut short or an HTML page.
            return "invalid", "not a Converse answer: no stopReason and no output"
        if raw_stop is None:
            return "invalid", "no stopReason"
        return "invalid", f"unknown stopReason {_short(raw_stop)}"
    message = _message(response)
    if isinstance(message, str):
        return "invalid", message
    found = _read_tool_call(_content(message))
    return ("invalid", found) if isinstance(found, str) else found


def interpret_converse(
    response: Mapping[str, Any],
    *,
    model_id: str,
    prompt_sha256: str,
    latency_ms: float | None,
    attempts: int,
) -> Judgment:
    """A Converse response (as boto3 returns it, or as recorded) -> `Judgment`. Pure; never raises.

    `blocked` for stopReason content_filtered / guardrail_intervened. `invalid` for max_tokens,
    malformed_tool_use, malformed_model_output, model_context_window_exceeded, a missing or
    unknown stopReason, a message whose role is not `assistant`, no tool call, a call to another
    tool, more than one tool call, a tool input that is not exactly {verdict:
    approve|reject|unsure, rationale: str, categories?: [str]}, and a response whose raw body held
    a key twice (the transport lists them under `DUPLICATE_KEYS`).
    `verdict` otherwise. Free text is never read. Usage and stopReason are recorded whatever the
    status; latency is the service's metrics.latencyMs when present, else `latency_ms`.
    A rationale longer than RATIONALE_MAX_CHARS is clipped (with "…"), not refused.
    """
    if not isinstance(response, Mapping):
        return Judgment(
            status="invalid",
            detail=f"the response is {_type_name(response)}, not an object",
            model_id=model_id,
            prompt_sha256=prompt_sha256,
            latency_ms=latency_ms,
            attempts=attempts,
        )
    raw_stop = response.get("stopReason")
    stop = raw_stop if isinstance(raw_stop, str) else None
    service_latency = _service_latency(response.get("metrics"))
    common: dict[str, Any] = {
        "model_id": model_id,
        "prompt_sha256": prompt_sha256,
        "stop_reason": stop,
        "usage": _usage(response.get("usage")),
        "latency_ms": latency_ms if service_latency is None else service_latency,
        "attempts": attempts,
    }
    found = _read_reply(response, raw_stop)
    if isinstance(found, tuple):
        status, detail = found
        return Judgment(status=status, detail=detail, **common)
    return Judgment(status="verdict", verdict=found, **common)
