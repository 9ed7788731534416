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
from moderation.judge._verdict import interpret_converse

__all__ = [
    "RATIONALE_MAX_CHARS",
    "SYSTEM_PROMPT",
    "TOOL_NAME",
    "TOOL_SCHEMA",
    "build_converse_request",
    "interpret_converse",
    "prompt_sha256",
]
