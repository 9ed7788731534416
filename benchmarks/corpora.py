"""Where the real-world corpora are: the regression scripts' one rule for finding them.

A corpora folder holds `images/` (image files, any layout) and `events/` (AWS event documents, with
`derived/` beside them). It is named on the command line, or by $MODERATION_CORPORA; the
repository ships none (the suite keeps the files behind defects in tests/fixtures/).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV = "MODERATION_CORPORA"


def corpora(given: Path | None, part: str) -> Path:
    """`given` if named, else $MODERATION_CORPORA/`part`; exits 2 saying how when neither is."""
    if given is not None:
        return given
    root = os.environ.get(ENV)
    if not root:
        sys.exit(f"name the corpus folder: an argument, or {ENV}=DIR (holding images/ and events/)")
    return Path(root) / part
