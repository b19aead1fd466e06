"""Every implementation of every pluggable interface in ``pagestream`` runs its contract suite.

The interfaces are found, not listed: each ABC defined in ``pagestream`` (and each Protocol with
two or more implementations there) must have a ``ContractSuite`` in ``tests/contracts``, and each
concrete implementation must be the ``subject`` of a ``Test…Contract`` class of that suite. A new
engine or object store therefore fails here until it passes the same contract as the others.
Event models are the other open family of classes: each must be in ``ALL_EVENTS``, which the
schema and round-trip tests (``tests/unit/test_events.py``) walk.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Protocol

import pytest

import pagestream
from pagestream.events.models import ALL_EVENTS, Event
from tests.contracts import ContractSuite

ROOT = Path(__file__).resolve().parents[2]


@cache
def pagestream_modules() -> tuple[ModuleType, ...]:
    """Every module of the package, imported (an implementation counts only once it is loaded)."""
    found = [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(pagestream.__path__, "pagestream.")
        if ".migrations" not in info.name
    ]
    return (pagestream, *found)


@cache
def pagestream_classes() -> tuple[type, ...]:
    """Classes defined (not merely imported) in ``pagestream``."""
    seen: dict[str, type] = {}
    for module in pagestream_modules():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                seen[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return tuple(seen.values())


def is_protocol(cls: type) -> bool:
    return Protocol in cls.__bases__


def abcs() -> list[type]:
    """The ABCs defined in ``pagestream`` (classes with abstract methods that are not Protocols)."""
    return [c for c in pagestream_classes() if inspect.isabstract(c) and not is_protocol(c)]


def protocols() -> list[type]:
    return [c for c in pagestream_classes() if is_protocol(c)]


def protocol_members(proto: type) -> dict[str, list[str]]:
    """The Protocol's methods and their parameter names."""
    return {
        n: list(inspect.signature(v).parameters)
        for n, v in vars(proto).items()
        if not n.startswith("_") and callable(v)
    }


def implements_protocol(cls: type, members: dict[str, list[str]]) -> bool:
    """True if ``cls`` has each method with the same parameters (a same-named method that takes
    other arguments, like a vendor wrapper's, is not an implementation)."""
    for member, params in members.items():
        method = getattr(cls, member, None)
        if not callable(method):
            return False
        try:
            if list(inspect.signature(method).parameters) != params:
                return False
        except (TypeError, ValueError):
            return False
    return True


def implementations(interface: type) -> set[type]:
    """Concrete classes in ``pagestream`` that implement ``interface`` (by subclassing an ABC, or
    by having every method of a Protocol)."""
    if is_protocol(interface):
        members = protocol_members(interface)
        return {
            c
            for c in pagestream_classes()
            if c is not interface and not is_protocol(c) and implements_protocol(c, members)
        }
    return {c for c in pagestream_classes() if issubclass(c, interface) and not inspect.isabstract(c)}


def contract_test_modules() -> list[str]:
    """Test modules that use a contract suite (found by their import of ``tests.contracts``)."""
    names = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if "tests.contracts" in path.read_text():
            names.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return names


@cache
def concrete_suites() -> tuple[type[ContractSuite], ...]:
    """Every ``Test…Contract`` class: a suite bound to the implementation it runs against."""
    for name in contract_test_modules():
        importlib.import_module(name)
    out: list[type[ContractSuite]] = []
    todo = list(ContractSuite.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__name__.startswith("Test"):
            out.append(cls)
    return tuple(out)


def subjects(interface: type) -> set[type]:
    return {s.subject for s in concrete_suites() if s.interface is interface}


def suite_interfaces() -> set[type]:
    return {s.interface for s in concrete_suites()}


def required_interfaces() -> list[type]:
    """Every ABC, and every Protocol that two or more classes implement (a plug-in point)."""
    return abcs() + [p for p in protocols() if len(implementations(p)) >= 2]


def name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def test_the_known_interfaces_are_found() -> None:
    # the discovery itself must see what is there, or the checks below pass on nothing
    from pagestream.ocr.engine import OcrEngine
    from pagestream.ocr.tesseract import TesseractEngine
    from pagestream.storage.base import ObjectStore
    from pagestream.storage.local import LocalObjectStore

    assert {OcrEngine, ObjectStore} <= set(abcs())
    assert TesseractEngine in implementations(OcrEngine)
    assert LocalObjectStore in implementations(ObjectStore)
    assert implementations(OcrEngine).isdisjoint(implementations(ObjectStore))
    assert {OcrEngine, ObjectStore} <= suite_interfaces()


@pytest.mark.parametrize("interface", required_interfaces(), ids=name)
def test_every_interface_has_a_contract_suite(interface: type) -> None:
    assert interface in suite_interfaces(), (
        f"{name(interface)} has implementations but no contract suite: add one to tests/contracts "
        "(a ContractSuite subclass with `interface = ...`) and run it against each implementation"
    )


@pytest.mark.parametrize("interface", required_interfaces(), ids=name)
def test_every_implementation_runs_the_contract(interface: type) -> None:
    missing = sorted(name(c) for c in implementations(interface) - subjects(interface))
    assert not missing, (
        f"{missing} implement {name(interface)} but no Test…Contract runs its suite against them: "
        "subclass the suite with `subject = <the class>` and a fixture that yields one"
    )


def test_every_concrete_suite_names_an_implementation_of_its_interface() -> None:
    suites = concrete_suites()
    assert len(suites) >= 5  # Tesseract, Vision, Textract, local files, S3
    for suite in suites:
        assert "subject" in vars(suite), f"{suite.__qualname__} does not say what it runs against"
        assert issubclass(suite.subject, suite.interface), suite.__qualname__
        assert not inspect.isabstract(suite.subject), suite.__qualname__


def test_every_contract_test_asserts_something() -> None:
    """A contract test that asserts nothing passes for every backend, right or wrong."""
    empty = []
    for path in sorted((ROOT / "tests" / "contracts").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                checks = [
                    n
                    for n in ast.walk(node)
                    if isinstance(n, ast.Assert)
                    or (isinstance(n, ast.Attribute) and n.attr == "raises")
                    or (isinstance(n, ast.Name) and n.id == "raises")
                ]
                if not checks:
                    empty.append(f"{path.name}::{node.name}")
    assert not empty, f"contract tests without an assertion: {empty}"


def test_every_event_model_is_walked_by_the_event_tests() -> None:
    pagestream_modules()
    models = {c for c in pagestream_classes() if issubclass(c, Event) and c is not Event}
    assert models, "no event models found"
    assert models == set(ALL_EVENTS), sorted(name(c) for c in models ^ set(ALL_EVENTS))
