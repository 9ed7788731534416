"""The `moderation` command line: one module per command group.

Exit codes of `moderation check`: 0 every image approved; 1 at least one rejected or sent to review;
2 usage error; 3 at least one image could not be moderated (not an image, detector failure, no
recording); 4 the policies are invalid; 130 interrupted (Ctrl-C). `moderation policy …`: 0 ok,
1 invalid input, 2 usage. `moderation review ...`: see its help.
"""

from __future__ import annotations

import click

from moderation.cli.audit import audit
from moderation.cli.check import check
from moderation.cli.eval import eval_command
from moderation.cli.policy import policy
from moderation.cli.replay import replay
from moderation.cli.review import review
from moderation.cli.tune import tune_command

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="moderation")
def main() -> None:
    """Decide whether uploaded images may be published."""


main.add_command(check)
main.add_command(policy)
main.add_command(audit)
main.add_command(replay)
main.add_command(review)
main.add_command(eval_command)
main.add_command(tune_command)
