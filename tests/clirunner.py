"""A click test runner that keeps stdout and stderr apart on every supported click version."""

from __future__ import annotations

import inspect

from click.testing import CliRunner


def runner() -> CliRunner:
    """click before 8.2 mixes stderr into stdout unless told not to; 8.2 removed the switch and
    always keeps them apart. Stdout must stay parseable, so keep them apart on every version."""
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    return CliRunner()
