"""`desk_work`: how every `moderation review` command ends when the desk fails, and that the desk
is closed however the command ends."""

from __future__ import annotations

from typing import Any

import click
import pytest

from moderation.cli._desk import EXIT_DESK, EXIT_NOT_FOUND, desk_work
from moderation.errors import ModerationError, UnknownItem


class Desk:
    closed = False

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("error", "kwargs", "code", "said"),
    [
        (UnknownItem("no item d1"), {}, EXIT_NOT_FOUND, "error: no item d1"),
        (ModerationError("locked"), {}, EXIT_DESK, "error: locked"),
        (
            ModerationError("locked"),
            {"failed": "the desk failed: {}; run again"},
            EXIT_DESK,
            "error: the desk failed: locked; run again",
        ),
        (FileNotFoundError("no log"), {"missing": (FileNotFoundError,)}, EXIT_NOT_FOUND, "no log"),
        (OSError("disk full"), {"also": (OSError,)}, EXIT_DESK, "error: disk full"),
    ],
)
def test_a_failure_exits_with_its_code_and_message_and_closes_the_desk(
    error: Exception,
    kwargs: dict[str, Any],
    code: int,
    said: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    desk = Desk()
    with pytest.raises(click.exceptions.Exit) as exited, desk_work(desk, **kwargs):  # type: ignore[arg-type]
        raise error
    assert exited.value.exit_code == code
    assert said in capsys.readouterr().err
    assert desk.closed


def test_anything_else_goes_through_and_the_desk_is_closed() -> None:
    desk = Desk()
    with pytest.raises(OSError, match="not the desk's"), desk_work(desk):  # type: ignore[arg-type]
        raise OSError("not the desk's")
    assert desk.closed
    usage = Desk()
    with pytest.raises(click.UsageError), desk_work(usage):  # type: ignore[arg-type]
        raise click.UsageError("bad option")
    assert usage.closed
