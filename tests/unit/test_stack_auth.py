"""The embedded stack runs without API keys only when every part is embedded and the API is on loopback."""

from __future__ import annotations

import pytest

from pagestream.stack.supervisor import decide_auth, is_loopback

ALL_EMBEDDED = {"broker_embedded": True, "database_embedded": True, "storage_embedded": True}


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_all_embedded_on_loopback_disables_auth(host: str) -> None:
    decision = decide_auth({"PAGESTREAM_HTTP_HOST": host}, **ALL_EMBEDDED)
    assert decision.disabled and decision.reasons == ()


def test_default_host_is_loopback() -> None:
    assert decide_auth({}, **ALL_EMBEDDED).disabled


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "10.1.2.3", "192.168.0.7", "pagestream.example.com", "myhost"]
)
def test_a_non_loopback_bind_requires_keys(host: str) -> None:
    decision = decide_auth({"PAGESTREAM_HTTP_HOST": host}, **ALL_EMBEDDED)
    assert not decision.disabled
    assert decision.reasons == (f"the API binds to {host} (PAGESTREAM_HTTP_HOST), not a loopback address",)


@pytest.mark.parametrize(
    ("part", "reason"),
    [
        ("broker_embedded", "Kafka is external (KAFKA_BOOTSTRAP_SERVERS is set)"),
        ("database_embedded", "PostgreSQL is external (DATABASE_URL is set)"),
        ("storage_embedded", "the object store is external (STORAGE_URL is set)"),
    ],
)
def test_any_external_part_requires_keys(part: str, reason: str) -> None:
    decision = decide_auth({"PAGESTREAM_HTTP_HOST": "127.0.0.1"}, **{**ALL_EMBEDDED, part: False})
    assert not decision.disabled and decision.reasons == (reason,)


@pytest.mark.parametrize("value", ["enabled", "disabled"])
def test_an_explicit_setting_is_honoured(value: str) -> None:
    decision = decide_auth({"PAGESTREAM_AUTH": value, "PAGESTREAM_HTTP_HOST": "0.0.0.0"}, **ALL_EMBEDDED)
    assert decision.explicit and decision.disabled == (value == "disabled")


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("LOCALHOST")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback("localhost.evil.com")
