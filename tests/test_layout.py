"""The package's layers, bottom to top, and that no import runs back up one (README: Layout)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lrsearch

PACKAGE = Path(lrsearch.__file__).parent

#: Each layer and what it holds; a module imports only from its own layer and the ones below it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("lrsearch.errors", "lrsearch.checks", "lrsearch.schema", "lrsearch.interrupts", "lrsearch.periodic")),
    ("engine", ("lrsearch.engine",)),
    ("storage", ("lrsearch.storage",)),
    ("spec", ("lrsearch.spec",)),
    ("search", ("lrsearch.search",)),
    ("review", ("lrsearch.review",)),
    ("api", ("lrsearch.api", "lrsearch.runs", "lrsearch.bench", "lrsearch.doctor", "lrsearch.problems", "lrsearch")),
    ("cli", ("lrsearch.cli", "lrsearch.__main__")),
]


def layer_of(module: str) -> int:
    """The layer of a module: the longest prefix that names one."""
    found = [
        (len(prefix), rank)
        for rank, (_, prefixes) in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    if not found:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and to the README's Layout table")
    return max(found)[1]


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(parts), path))
    return out


def imports(path: Path) -> set[str]:
    """Every lrsearch module ``path`` imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # ``from lrsearch.storage import tables`` imports the module lrsearch.storage.tables.
            found.update(
                f"{node.module}.{a.name}"
                for a in node.names
                if (PACKAGE.parent / node.module.replace(".", "/") / f"{a.name}.py").exists()
            )
    return {m for m in found if m == "lrsearch" or m.startswith("lrsearch.")}


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_no_import_runs_back_up_a_layer(module: str, path: Path) -> None:
    rank = layer_of(module)
    upward = sorted(m for m in imports(path) if layer_of(m) > rank)
    assert not upward, f"{module} ({LAYERS[rank][0]}) imports {upward} from a layer above it"


def test_every_module_is_in_the_readme_layout_table() -> None:
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Layout") :]
    missing = [
        str(path.relative_to(PACKAGE.parent))
        for _, path in modules()
        if path.name not in ("__init__.py", "__main__.py")
        and f"`{path.relative_to(PACKAGE.parent)}`" not in table
        and f"`{path.parent.relative_to(PACKAGE.parent)}/`" not in table  # a folder named as a whole (cli/)
    ]
    assert not missing, f"the README's Layout table does not name {missing}"


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from lrsearch.storage import tables\n    import lrsearch.search.runner\n")
    assert imports(module) == {"lrsearch.storage", "lrsearch.storage.tables", "lrsearch.search.runner"}
    assert layer_of("lrsearch.search.runner") > layer_of("lrsearch.engine.population") > layer_of("lrsearch.errors")
