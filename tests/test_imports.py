"""The package's shape, checked statically: boto3 only under moderation/aws/, and no import cycle.

Both tests read every module with `ast` (nothing is imported), so an import inside a function, or
one under `if TYPE_CHECKING:`, counts as much as one at the top of the file.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "moderation"

#: Where boto3 and botocore may be imported: the AWS transports, the Lambda handler (it runs on
#: AWS and builds its clients there), and the test kit's wire endpoint (it serves real clients).
BOTO_ALLOWED = ("moderation.aws", "moderation.aws_lambda", "moderation.testing.endpoint")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imported_names(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(dotted name imported, line) for every import node in the file, and every
    `importlib.import_module("...")` / `__import__("...")` with a literal name. A `from x import y`
    yields `x.y` (resolved later to the submodule when `y` is one, else to `x`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if is_package(path) else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id == "__import__")
            )
        ):
            yield node.args[0].value, node.lineno


def boto_allowed(module: str) -> bool:
    return any(module == a or module.startswith(a + ".") for a in BOTO_ALLOWED)


def test_no_module_outside_the_aws_transports_imports_boto3_or_botocore():
    found = sorted(
        {
            f"{module} (line {line}) imports {name.split('.')[0]}"
            for module, path in modules().items()
            if not boto_allowed(module)
            for name, line in imported_names(module, path)
            if name.split(".")[0] in ("boto3", "botocore") or name.startswith("mypy_boto3_")
        }
    )
    assert not found, "boto3/botocore outside moderation/aws/:\n" + "\n".join(found)


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports (a `from pkg import sub` edge goes to the
    submodule when `sub` is one, else to `pkg`)."""
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for module, path in known.items():
        for name, _ in imported_names(module, path):
            if not name.startswith("moderation"):
                continue
            target = name
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module:
                graph[module].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_and_passes_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_import_graph_sees_function_level_and_from_package_imports():
    graph = import_graph()
    # `from moderation.aws.rekognition import ...` inside a function of the package's __init__.
    assert "moderation.aws.rekognition" in graph["moderation"]
    # `from moderation.policy import ...` names the package, whose __init__ runs.
    assert "moderation.policy" in graph["moderation.engine"]


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_production_module_imports_the_test_kit():
    # `moderation check --offline` answers from recordings (moderation.recorded), not the test kit.
    found = sorted(
        {
            f"{module} (line {line}) imports {name}"
            for module, path in modules().items()
            if not module.startswith("moderation.testing")
            for name, line in imported_names(module, path)
            if name == "moderation.testing" or name.startswith("moderation.testing.")
        }
    )
    assert not found, "the test kit imported by the library:\n" + "\n".join(found)
