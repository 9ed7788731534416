"""No function in the package is too long to read top-down.

Past about 60 lines a reader loses the thread of a function; its steps should have names. The
test reads every module with `ast` (nothing is imported) and counts each function's lines from its
`def` to its end, signature included, docstring excluded. Nested functions count on their own
too, and also as lines of the function that holds them.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "moderation"

#: The most lines a function may have, not counting its docstring.
MAX_LINES = 60

Function = ast.FunctionDef | ast.AsyncFunctionDef


def code_lines(function: Function) -> int:
    """The lines from `def` to the function's last line, less those of its docstring."""
    assert function.end_lineno is not None
    lines = function.end_lineno - function.lineno + 1
    first = function.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        assert first.end_lineno is not None
        lines -= first.end_lineno - first.lineno + 1
    return lines


def long_functions(root: Path, limit: int) -> list[str]:
    """`path:line name (n lines)` for every function under `root` longer than `limit`."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        functions = (node for node in ast.walk(tree) if isinstance(node, Function))
        for node in sorted(functions, key=lambda f: f.lineno):
            if (n := code_lines(node)) > limit:
                where = path.relative_to(root.parent)
                found.append(f"{where}:{node.lineno} {node.name} ({n} lines)")
    return found


def test_no_function_is_longer_than_60_lines() -> None:
    # GIVEN every module of the package
    # WHEN each function's lines are counted without its docstring
    too_long = long_functions(PACKAGE, MAX_LINES)
    # THEN none is past the bound: split the ones named into named steps
    assert not too_long, (
        f"functions over {MAX_LINES} lines (docstring excluded); name their steps:\n  "
        + "\n  ".join(too_long)
    )


def test_the_count_leaves_out_the_docstring_only(tmp_path: Path) -> None:
    # GIVEN a module with a 3-line function under a 3-line docstring, and one without a docstring
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "m.py").write_text(
        'def documented(a: int) -> int:\n    """Line one.\n\n    Line three."""\n'
        "    b = a + 1\n    return b\n\n\n"
        "def bare(a: int) -> int:\n    b = a + 1\n    return b\n",
        encoding="utf-8",
    )
    # WHEN the bound is 2 lines
    # THEN both are named, each counted as its def line and two lines of code
    assert long_functions(package, 2) == [
        "pkg/m.py:1 documented (3 lines)",
        "pkg/m.py:9 bare (3 lines)",
    ]
    assert long_functions(package, 3) == []
