"""The faust persist app gets the same Kafka security settings as the confluent-kafka clients."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest

from pagestream.settings import Settings
from pagestream.workers.persister import broker_credentials


def _ca(tmp_path: Path) -> str:
    """A CA bundle file that ``ssl`` can load (the system bundle, copied)."""
    paths = ssl.get_default_verify_paths()
    src = Path(paths.cafile or "/etc/ssl/certs/ca-certificates.crt")
    if not src.is_file():
        pytest.skip("no system CA bundle to load")
    dst = tmp_path / "ca.pem"
    dst.write_bytes(src.read_bytes())
    return str(dst)


def test_plaintext_means_no_credentials() -> None:
    assert broker_credentials(Settings()) is None


def test_sasl_scram_over_tls(tmp_path: Path) -> None:
    s = Settings(
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        KAFKA_SASL_USERNAME="persist",
        KAFKA_SASL_PASSWORD="pw",
        KAFKA_SSL_CA_LOCATION=_ca(tmp_path),
    )
    creds = broker_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == "SASL_SSL" and creds.mechanism.value == "SCRAM-SHA-512"
    assert (creds.username, creds.password) == ("persist", "pw")
    assert isinstance(creds.ssl_context, ssl.SSLContext)
    assert creds.ssl_context.verify_mode == ssl.CERT_REQUIRED and creds.ssl_context.check_hostname
    assert "pw" not in repr(creds)


def test_sasl_plaintext_scram_256() -> None:
    s = Settings(
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        KAFKA_SASL_MECHANISM="SCRAM-SHA-256",
        KAFKA_SASL_USERNAME="u",
        KAFKA_SASL_PASSWORD="p",
    )
    creds = broker_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == "SASL_PLAINTEXT" and creds.mechanism.value == "SCRAM-SHA-256"
    assert creds.ssl_context is None


def test_sasl_without_a_mechanism_is_plain_for_every_client() -> None:
    """librdkafka's own default is GSSAPI, faust's PLAIN: the settings decide once, for both."""
    s = Settings(
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_USERNAME="u", KAFKA_SASL_PASSWORD="secret"
    )
    assert s.kafka_client_config()["sasl.mechanism"] == "PLAIN"
    creds = broker_credentials(s)
    assert isinstance(creds, faust.SASLCredentials) and creds.mechanism.value == "PLAIN"
    assert "secret" not in repr(s.kafka_security())


def test_tls_only(tmp_path: Path) -> None:
    creds = broker_credentials(Settings(KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CA_LOCATION=_ca(tmp_path)))
    assert isinstance(creds, faust.SSLCredentials)
    assert creds.protocol.value == "SSL" and isinstance(creds.context, ssl.SSLContext)


def test_tls_without_ca_uses_system_trust() -> None:
    creds = broker_credentials(Settings(KAFKA_SECURITY_PROTOCOL="SSL"))
    assert isinstance(creds, faust.SSLCredentials)
    assert creds.context.verify_mode == ssl.CERT_REQUIRED


def test_persist_app_is_built_with_them(tmp_path: Path) -> None:
    """create_app hands the credentials to faust, which maps them to aiokafka's arguments."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from pagestream.workers.persister import PersistState, create_app

    s = Settings(
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        KAFKA_SASL_USERNAME="persist",
        KAFKA_SASL_PASSWORD="pw",
        KAFKA_SSL_CA_LOCATION=_ca(tmp_path),
        DATABASE_URL="postgresql://a:b@127.0.0.1:1/x",
    )
    app = create_app(s, PersistState())
    auth = credentials_to_aiokafka_auth(app.conf.broker_credentials)
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert auth["sasl_plain_username"] == "persist" and auth["sasl_plain_password"] == "pw"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)
