"""Reusable contract suites, subclassed per backend.

Every suite derives from ``ContractSuite`` and names the interface it checks; every concrete
``Test<Backend>Contract`` names the implementation it runs against (``subject``).
``tests/unit/test_contract_coverage.py`` fails when an implementation of an ABC in
``pagestream`` is no suite's subject, so a new backend cannot ship without passing the contract.
"""

from __future__ import annotations

from typing import ClassVar

import pytest


class ContractSuite:
    """Base of the contract suites; not collected by itself (no ``Test`` prefix)."""

    #: the ABC (or Protocol) whose documented behaviour the suite checks
    interface: ClassVar[type]
    #: the implementation a concrete ``Test…Contract`` runs the suite against
    subject: ClassVar[type]

    @pytest.fixture
    def subject_under_test(self) -> object:  # pragma: no cover - each suite provides it
        """The object the suite's tests get (each suite returns its own fixture's value)."""
        raise NotImplementedError("the suite provides `subject_under_test`")

    def test_runs_against_its_declared_subject(self, subject_under_test: object) -> None:
        # the coverage test trusts `subject`; this keeps it honest
        assert type(subject_under_test) is self.subject
        assert isinstance(subject_under_test, self.interface)
