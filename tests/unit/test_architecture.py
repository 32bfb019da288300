"""Dependencies point one way (STYLE.md lesson 1): the core never imports an adapter.

Core modules may import the standard library, cryptography, fastavro, rfc8785 and other core
modules. Kafka, faust, SQLAlchemy, click, rich and the adapter modules are off limits to them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ADAPTER_MODULES = {
    "ledger.cli",
    "ledger.config",
    "ledger.sqlstore",
    "ledger.store",
    "ledger.transport",
    "ledger.wiring",
    "verification.demo",  # runs the real commands as subprocesses and writes files
}
ADAPTER_PACKAGES = ("producers", "consumers")
FORBIDDEN_THIRD_PARTY = (
    "kafka",
    "aiokafka",
    "faust",
    "mode",
    "sqlalchemy",
    "psycopg",
    "click",
    "rich",
    "alembic",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_adapter(module: str) -> bool:
    top = module.split(".", maxsplit=1)[0]
    return (
        top in ADAPTER_PACKAGES
        or any(module == a or module.startswith(a + ".") for a in ADAPTER_MODULES)
        or module.endswith(".cli")
        or ".store" in module
    )


def core_modules() -> list[Path]:
    paths = []
    for package in ("ledger", "schemas", "verification"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if not _is_adapter(_module_name(path)):
                paths.append(path)
    return paths


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", core_modules(), ids=_module_name)
def test_core_module_imports_no_adapter(path: Path) -> None:
    bad = sorted(
        name
        for name in _imports(path)
        if name.split(".")[0] in FORBIDDEN_THIRD_PARTY or _is_adapter(name)
    )
    assert not bad, f"{_module_name(path)} (core) imports adapter code: {bad}"


def test_the_check_sees_the_core() -> None:
    names = {_module_name(p) for p in core_modules()}
    assert "ledger.errors" in names
    assert "ledger.transport" not in names
