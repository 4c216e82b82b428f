"""The import rules of docs/architecture.md: core imports no service, and no
service imports another (they talk through clients)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "onestack"
ASSEMBLERS = {"server.py", "cli.py", "__main__.py", "__init__.py"}


def packages() -> list[str]:
    return sorted(p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists())


def imported_packages(path: Path) -> set[str]:
    """Top-level onestack sub-packages that ``path`` imports."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "onestack" and len(parts) > 1:
                out.add(parts[1])
    return out


def violations() -> list[str]:
    services = set(packages()) - {"core"}
    found = []
    for pkg in packages():
        for path in (SRC / pkg).rglob("*.py"):
            for imported in imported_packages(path) & (services | {"core"}):
                if imported == pkg or imported == "core":
                    continue
                found.append(f"{path.relative_to(SRC)} imports onestack.{imported}")
    return found


def test_core_and_services_keep_their_boundaries() -> None:
    assert violations() == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    # a test that cannot fail is a defect: make sure the parser really finds imports
    bad = tmp_path / "bad.py"
    bad.write_text("from onestack.identity.models import User\nimport onestack.core.db\n")
    assert imported_packages(bad) == {"identity", "core"}


def test_only_assemblers_import_services_at_top_level() -> None:
    services = set(packages()) - {"core"}
    for path in SRC.glob("*.py"):
        if path.name not in ASSEMBLERS:
            assert not imported_packages(path) & services, path.name
