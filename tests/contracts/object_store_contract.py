"""The ``ObjectStore`` contract, backend-agnostic. Subclass as ``Test<Backend>Contract`` and provide
a ``store`` fixture: an empty store whose objects the test may write and delete.
"""

from __future__ import annotations

import pytest

from pagestream.storage.base import ObjectStore, content_key
from pagestream.storage.errors import InvalidObjectKeyError, ObjectNotFoundError, ObjectTooLargeError
from tests.contracts import ContractSuite

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 4 + b"\n%%EOF\n"
KEY = content_key("ab" + "0" * 62)


class ObjectStoreContract(ContractSuite):
    """Behaviour every object store must show; not collected by itself (no ``Test`` prefix)."""

    interface = ObjectStore

    @pytest.fixture
    def store(self) -> ObjectStore:  # pragma: no cover - subclasses provide it
        raise NotImplementedError("subclasses provide an empty `store` fixture")

    @pytest.fixture
    def subject_under_test(self, store: ObjectStore) -> ObjectStore:
        return store

    def test_get_returns_the_bytes_put(self, store: ObjectStore) -> None:
        uri = store.put(KEY, PDF, "application/pdf")
        assert store.handles(uri)
        assert store.get(uri) == PDF

    def test_put_is_idempotent_for_the_same_key_and_bytes(self, store: ObjectStore) -> None:
        first = store.put(KEY, PDF, "application/pdf")
        second = store.put(KEY, PDF, "application/pdf")
        assert first == second
        assert store.get(second) == PDF

    def test_empty_object_round_trips(self, store: ObjectStore) -> None:
        uri = store.put("documents/empty", b"", "application/octet-stream")
        assert store.get(uri) == b""
        assert store.get_bounded(uri, 0) == b""

    def test_exists_says_whether_the_object_is_there(self, store: ObjectStore) -> None:
        uri = store.put(KEY, PDF, "application/pdf")
        assert store.exists(uri)
        store.delete(uri)
        assert not store.exists(uri)

    def test_get_of_a_missing_object_raises_object_not_found(self, store: ObjectStore) -> None:
        uri = store.put(KEY, PDF, "application/pdf")
        store.delete(uri)
        with pytest.raises(ObjectNotFoundError):
            store.get(uri)
        with pytest.raises(ObjectNotFoundError):
            store.get_bounded(uri, 1 << 20)

    def test_delete_of_a_missing_object_is_a_no_op(self, store: ObjectStore) -> None:
        uri = store.put(KEY, PDF, "application/pdf")
        store.delete(uri)
        store.delete(uri)
        assert not store.exists(uri)

    def test_get_bounded_refuses_an_object_over_the_limit(self, store: ObjectStore) -> None:
        uri = store.put(KEY, PDF, "application/pdf")
        assert store.get_bounded(uri, len(PDF)) == PDF
        with pytest.raises(ObjectTooLargeError) as raised:
            store.get_bounded(uri, len(PDF) - 1)
        assert raised.value.limit == len(PDF) - 1

    @pytest.mark.parametrize(
        "key", ["../escaped", "documents/../../escaped", "/etc/escaped", "", "documents//x", "documents/"]
    )
    def test_keys_cannot_escape_the_root(self, store: ObjectStore, key: str) -> None:
        with pytest.raises(InvalidObjectKeyError):
            store.put(key, PDF, "application/pdf")
