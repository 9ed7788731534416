"""The labelled image set: a CSV with the header `file,expected[,category]`, read and checked."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from moderation.errors import ModerationError

__all__ = ["LabelledImage", "LabelsError", "read_labels"]

_EXPECTED: Final = {
    "approve": False,
    "approved": False,
    "reject": True,
    "rejected": True,
}
_COLUMNS: Final = ("file", "expected", "category")


class LabelsError(ModerationError):
    """The labels CSV cannot be used: the message names the file, the line and what is wrong."""


@dataclass(frozen=True, slots=True)
class LabelledImage:
    """One row of the labels: the image, whether it should be rejected, its category (or None).

    `line` is the row's line number in the CSV (the header is line 1).
    """

    file: str
    path: Path
    harmful: bool
    category: str | None
    line: int


def _header(row: list[str] | None, where: str) -> list[str]:
    names = [cell.strip().lower() for cell in row or []]
    if names[:2] != ["file", "expected"] or len(names) > 3 or names[2:] not in ([], ["category"]):
        raise LabelsError(
            f"{where}:1: the header must be `file,expected` or `file,expected,category`, got "
            f"{','.join(row or []) or 'an empty file'!r}"
        )
    return names


def _row(cells: list[str], names: list[str], images: Path, where: str) -> LabelledImage:
    if len(cells) != len(names):
        raise LabelsError(
            f"{where}: {len(cells)} column(s), the header has {len(names)} ({','.join(names)})"
        )
    values = dict(zip(names, (cell.strip() for cell in cells), strict=True))
    file, expected = values["file"], values["expected"].lower()
    if not file:
        raise LabelsError(f"{where}: the file name is empty")
    if expected not in _EXPECTED:
        raise LabelsError(
            f"{where}: unknown verdict {values['expected']!r} for {file}; expected is one of "
            "approve, reject (or approved, rejected)"
        )
    path = images / file
    if not path.is_file():
        raise LabelsError(f"{where}: {file}: no such file in {images}")
    return LabelledImage(file, path, _EXPECTED[expected], values.get("category") or None, 0)


def read_labels(
    labels: str | os.PathLike[str], images: str | os.PathLike[str]
) -> list[LabelledImage]:
    """Every row of `labels`, each image checked to exist under `images`; LabelsError naming the
    line of the first bad row (a wrong header, a missing file, an unknown verdict, a file named
    twice). Blank lines are skipped."""
    source, root = Path(labels), Path(images)
    if not root.is_dir():
        raise LabelsError(f"images directory not found: {root}")
    try:
        with source.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            names = _header(next(reader, None), str(source))
            # reader.line_num is the line a row ends on: right even after a quoted line break.
            rows = [(reader.line_num, cells) for cells in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LabelsError(f"{source}: cannot read the labels: {exc}") from exc
    out: list[LabelledImage] = []
    seen: dict[str, int] = {}
    for number, cells in rows:
        if not any(cell.strip() for cell in cells):
            continue
        where = f"{source}:{number}"
        item = _row(cells, names, root, where)
        if item.file in seen:
            raise LabelsError(f"{where}: {item.file} is labelled twice (line {seen[item.file]})")
        seen[item.file] = number
        out.append(LabelledImage(item.file, item.path, item.harmful, item.category, number))
    if not out:
        raise LabelsError(f"{source}: no labelled images (only a header)")
    return out
