"""No product module imports, at module or function level, a module that imports it back (directly or through
others): read from the source with `ast`, so a late import inside a function cannot hide a circle. Imports under
`if TYPE_CHECKING:` never run and do not count."""

import ast
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]
PACKAGES = ("overrides", "registry", "portal")


def product_modules() -> dict[str, Path]:
    """Dotted name -> file of every product module (migrations excluded: Django loads them, nothing imports them)."""
    modules = {}
    for package in PACKAGES:
        for path in (BASE_DIR / package).rglob("*.py"):
            parts = path.relative_to(BASE_DIR).with_suffix("").parts
            if "migrations" in parts:
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The product modules `name` imports anywhere in its file (`from a import b` counts `a.b` when it is a
    module, else `a`; a package's `__init__` counts as the package)."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    type_only = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node.test)
                 for statement in node.body for inner in ast.walk(statement)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {module for module in found if module in known and module != name}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph() -> dict[str, set[str]]:
    modules = product_modules()
    return {name: imported_modules(name, path, set(modules)) for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan): each is at least one import circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_reader_sees_module_and_function_level_imports():
    graph = import_graph()
    assert "overrides.polling.checks" in graph["overrides.offers"]  # module level
    assert "overrides.cluster.client" in graph["overrides.views.overrides"]  # inside a function
    assert "registry.auth" in graph["registry.transport"]  # relative
    assert "registry.transport" not in graph["registry.failures"]  # only under TYPE_CHECKING
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_product_module_imports_one_that_imports_it_back():
    graph = import_graph()
    found = circles(graph)
    described = ["; ".join(f"{m} imports {', '.join(sorted(graph[m] & set(group)))}" for m in group)
                 for group in found]
    assert not found, "import circles:\n" + "\n".join(described)
