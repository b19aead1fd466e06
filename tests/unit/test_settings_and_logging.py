"""Secrets never reach logs or settings dumps; Kafka security settings pass through."""

from __future__ import annotations

import io
import json
import logging

from pagestream.logging import JsonFormatter, redact
from pagestream.settings import Settings, redact_url


def test_redact_url_hides_only_the_password() -> None:
    assert (
        redact_url("postgresql://app:s3cr3t@db:5432/x?sslmode=require")
        == "postgresql://app:***@db:5432/x?sslmode=require"
    )
    assert redact_url("postgresql://db/x") == "postgresql://db/x"


def test_settings_dump_hides_secrets() -> None:
    s = Settings(
        DATABASE_URL="postgresql://app:hunter2@db/x", KAFKA_SASL_PASSWORD="kpass", PAGESTREAM_API_KEY="ps_k"
    )
    dumped = json.dumps(s.as_dict())
    assert "hunter2" not in dumped and "kpass" not in dumped and "ps_k" not in dumped
    assert "hunter2" not in repr(s)


def test_kafka_security_is_passed_through() -> None:
    s = Settings(
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        KAFKA_SASL_USERNAME="ocr",
        KAFKA_SASL_PASSWORD="pw",
        KAFKA_SSL_CA_LOCATION="/ca.pem",
    )
    conf = s.kafka_client_config()
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (
        conf["sasl.username"] == "ocr"
        and conf["sasl.password"] == "pw"
        and conf["ssl.ca.location"] == "/ca.pem"
    )


def test_sslmode_in_database_url_is_kept() -> None:
    s = Settings(DATABASE_URL="postgresql+psycopg2://a:b@h/d?sslmode=verify-full")
    assert s.database_dsn() == "postgresql://a:b@h/d?sslmode=verify-full"


def test_log_lines_are_json_and_redacted() -> None:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(JsonFormatter("test"))
    log = logging.getLogger("pagestream.test.redact")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning(
            "cannot connect to postgresql://u:topsecret@h/db",
            extra={"dsn": "kafka://x:pw9@b", "password": "p"},
        )
        log.error("password=abc123 in text")
    finally:
        log.removeHandler(handler)
    out = buf.getvalue()
    assert "topsecret" not in out and "pw9" not in out and "abc123" not in out
    first = json.loads(out.splitlines()[0])
    assert first["service"] == "test" and first["level"] == "warning"
    assert redact("sasl.password=zzz") == "sasl.password=***"
