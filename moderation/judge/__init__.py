"""The judge's side of escalation that needs no network: the prompt, and reading the answer.

`build_converse_request` gives the exact `converse(**kwargs)` for one judgment;
`interpret_converse` turns a Converse response (live or recorded) into a `Judgment`.
"""

from moderation.judge._prompt import (
    RATIONALE_MAX_CHARS,
    SYSTEM_PROMPT,
    TOOL_NAME,
    TOOL_SCHEMA,
    build_converse_request,
    prompt_sha256,
)
from moderation.judge._verdict import DUPLICATE_KEYS, duplicate_keys, interpret_converse

__all__ = [
    "DUPLICATE_KEYS",
    "RATIONALE_MAX_CHARS",
    "SYSTEM_PROMPT",
    "TOOL_NAME",
    "TOOL_SCHEMA",
    "build_converse_request",
    "duplicate_keys",
    "interpret_converse",
    "prompt_sha256",
]
