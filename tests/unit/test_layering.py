"""The one-way chain of layers (STYLE.md), enforced on the import graph."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "pagestream"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _files(base: Path) -> list[Path]:
    return [p for p in base.rglob("*.py") if "migrations" not in p.parts]


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def test_core_never_imports_services() -> None:
    bad = [_rel(p) for p in _files(CORE) if any(i.startswith("services") for i in _imports(p))]
    assert not bad


def test_services_never_import_each_other() -> None:
    bad = []
    for svc in (ROOT / "services").iterdir():
        if svc.is_dir():
            for p in _files(svc):
                bad += [
                    f"{_rel(p)} -> {i}"
                    for i in _imports(p)
                    if i.startswith("services.") and not i.startswith(f"services.{svc.name}")
                ]
    assert not bad


def test_only_kafka_package_imports_confluent_kafka() -> None:
    bad = [
        _rel(p)
        for p in _files(CORE) + _files(ROOT / "services")
        if any(i.startswith("confluent_kafka") for i in _imports(p)) and (CORE / "kafka") not in p.parents
    ]
    assert not bad


def test_only_db_package_imports_sqlalchemy() -> None:
    bad = [
        _rel(p)
        for p in _files(CORE) + _files(ROOT / "services")
        if any(i.startswith("sqlalchemy") for i in _imports(p)) and (CORE / "db") not in p.parents
    ]
    assert not bad


def test_ocr_engines_never_see_kafka_events_or_the_database() -> None:
    forbidden = (
        "confluent_kafka",
        "sqlalchemy",
        "psycopg2",
        "pagestream.events",
        "pagestream.kafka",
        "pagestream.db",
    )
    engine_files = [p for p in (CORE / "ocr").glob("*.py") if p.name != "factory.py"]
    bad = [f"{_rel(p)} -> {i}" for p in engine_files for i in _imports(p) if i.startswith(forbidden)]
    assert not bad


def test_leaf_modules_import_no_adapters() -> None:
    leaves = ["errors.py", "settings.py", "metrics.py", "logging.py", "layout.py", "engine_names.py"]
    adapters = (
        "pagestream.kafka",
        "pagestream.db",
        "pagestream.cdc",
        "pagestream.storage",
        "pagestream.ocr",
        "pagestream.events",
        "pagestream.api",
        "pagestream.workers",
    )
    bad = [f"{leaf} -> {i}" for leaf in leaves for i in _imports(CORE / leaf) if i.startswith(adapters)]
    assert not bad
