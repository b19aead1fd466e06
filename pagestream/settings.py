"""Configuration, read from the environment once at each entry point and passed down.

Every variable any pagestream process reads is declared here (and documented in
README.md); nothing deeper in the code touches ``os.environ``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pagestream.engine_names import DEFAULT_ENGINE, EngineName


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (safe for logs and errors)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{user}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class KafkaSecurity:
    """How Kafka clients encrypt and authenticate: the one reading of ``KAFKA_SECURITY_PROTOCOL``,
    ``KAFKA_SASL_*`` and ``KAFKA_SSL_CA_LOCATION`` that both client libraries are configured from
    (librdkafka via ``librdkafka_config()``, faust/aiokafka in ``workers/persister.py``)."""

    protocol: str
    #: the connection is TLS (SSL, SASL_SSL); the CA is ``ca_location`` or the system trust store
    tls: bool
    #: None without SASL; PLAIN when SASL is on and no mechanism was set (the same for every client)
    sasl_mechanism: str | None
    sasl_username: str | None
    sasl_password: SecretStr | None
    ca_location: str | None

    def librdkafka_config(self) -> dict[str, Any]:
        """The librdkafka (confluent-kafka) keys for these settings, password included."""
        conf: dict[str, Any] = {"security.protocol": self.protocol}
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.tls and self.ca_location:
            conf["ssl.ca.location"] = self.ca_location
        return conf


class Settings(BaseSettings):
    """All pagestream settings. Frozen: build once, pass down."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    # --- infrastructure (unset = the embedded stack provides it) ---
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", alias="KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_mechanism: str | None = Field(None, alias="KAFKA_SASL_MECHANISM")
    kafka_sasl_username: str | None = Field(None, alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(None, alias="KAFKA_SASL_PASSWORD")
    kafka_ssl_ca_location: str | None = Field(None, alias="KAFKA_SSL_CA_LOCATION")
    # many small partitions spread one big document's pages evenly over the OCR workers
    kafka_topic_partitions: int = Field(12, alias="PAGESTREAM_TOPIC_PARTITIONS")
    kafka_replication_factor: int = Field(1, alias="PAGESTREAM_TOPIC_REPLICATION_FACTOR")

    database_url: SecretStr = Field(
        SecretStr("postgresql://pagestream@127.0.0.1:5432/pagestream"), alias="DATABASE_URL"
    )
    storage_url: str = Field("file://./.pagestream/objects", alias="STORAGE_URL")
    s3_endpoint_url: str | None = Field(None, alias="S3_ENDPOINT_URL")

    # --- this process ---
    state_dir: Path = Field(Path(".pagestream"), alias="PAGESTREAM_STATE_DIR")
    http_host: str = Field("127.0.0.1", alias="PAGESTREAM_HTTP_HOST")
    http_port: int = Field(0, alias="PAGESTREAM_HTTP_PORT")
    api_url: str = Field("http://127.0.0.1:8000", alias="PAGESTREAM_API_URL")
    api_key: SecretStr | None = Field(None, alias="PAGESTREAM_API_KEY")
    auth: Literal["enabled", "disabled"] = Field("enabled", alias="PAGESTREAM_AUTH")
    log_level: str = Field("INFO", alias="PAGESTREAM_LOG_LEVEL")

    # --- ingest limits ---
    max_upload_bytes: int = Field(100 * 1024 * 1024, alias="PAGESTREAM_MAX_UPLOAD_BYTES")
    max_pages: int = Field(2000, alias="PAGESTREAM_MAX_PAGES")
    max_image_pixels: int = Field(200_000_000, alias="PAGESTREAM_MAX_IMAGE_PIXELS")
    #: directory under which ``document.submit.v1`` commands may name ``file://`` URIs
    #: (unset: the local object store's directory; file:// is refused with an S3 store)
    submit_file_root: Path | None = Field(None, alias="PAGESTREAM_SUBMIT_FILE_ROOT")

    # --- cdc ---
    cdc_slot: str = Field("pagestream_outbox", alias="PAGESTREAM_CDC_SLOT")
    cdc_publication: str = Field("pagestream_outbox", alias="PAGESTREAM_CDC_PUBLICATION")
    cdc_heartbeat_seconds: float = Field(10.0, alias="PAGESTREAM_CDC_HEARTBEAT_SECONDS")
    cdc_engine: Literal["relay", "debezium"] = Field("relay", alias="PAGESTREAM_CDC_ENGINE")
    cdc_create_topics: bool = Field(
        True, alias="PAGESTREAM_CDC_CREATE_TOPICS"
    )  # ensure a topic before first use
    cdc_delivery_timeout_seconds: float = Field(60.0, alias="PAGESTREAM_CDC_DELIVERY_TIMEOUT_SECONDS")
    cdc_max_unacked_bytes: int = Field(64 * 1024 * 1024, alias="PAGESTREAM_CDC_MAX_UNACKED_BYTES")
    cdc_debezium_slot: str = Field("pagestream_outbox_dbz", alias="PAGESTREAM_CDC_DEBEZIUM_SLOT")

    # --- ocr ---
    ocr_engine: EngineName = Field(DEFAULT_ENGINE, alias="PAGESTREAM_OCR_ENGINE")
    ocr_workers: int = Field(0, alias="PAGESTREAM_OCR_WORKERS")  # 0 = number of cores
    ocr_languages: str = Field("eng", alias="PAGESTREAM_OCR_LANGUAGES")
    ocr_dpi: int = Field(300, alias="PAGESTREAM_OCR_DPI")
    ocr_max_page_pixels: int = Field(60_000_000, alias="PAGESTREAM_OCR_MAX_PAGE_PIXELS")
    ocr_page_timeout_seconds: float = Field(120.0, alias="PAGESTREAM_OCR_PAGE_TIMEOUT_SECONDS")
    ocr_max_attempts: int = Field(3, alias="PAGESTREAM_OCR_MAX_ATTEMPTS")
    tessdata_prefix: str | None = Field(None, alias="TESSDATA_PREFIX")

    # --- persist ---
    persist_batch_size: int = Field(100, alias="PAGESTREAM_PERSIST_BATCH_SIZE")
    persist_batch_seconds: float = Field(0.2, alias="PAGESTREAM_PERSIST_BATCH_SECONDS")
    processed_events_retention_days: int = Field(14, alias="PAGESTREAM_PROCESSED_EVENTS_RETENTION_DAYS")

    # --- liveness: every accepted document reaches a final state in bounded time ---
    #: a page result whose record would exceed this goes to the object store (claim check);
    #: keep it well under the broker's message.max.bytes (1 MiB by default)
    event_max_bytes: int = Field(256 * 1024, alias="PAGESTREAM_EVENT_MAX_BYTES")
    #: a document not final and without progress for this long is re-driven by the reconciler
    reconcile_stall_seconds: float = Field(900.0, alias="PAGESTREAM_RECONCILE_STALL_SECONDS")
    #: re-drives before a stalled document is failed with its reason
    reconcile_max_rounds: int = Field(3, alias="PAGESTREAM_RECONCILE_MAX_ROUNDS")
    reconcile_interval_seconds: float = Field(15.0, alias="PAGESTREAM_RECONCILE_INTERVAL_SECONDS")
    #: when the broker's topics began (unix seconds); the embedded broker keeps topics in
    #: memory, so unfinished documents last updated before it started are re-driven at once
    broker_epoch: float | None = Field(None, alias="PAGESTREAM_BROKER_EPOCH")
    #: persist writes each finished document's searchable PDF to the object store (exports/<id>/)
    export_pdf_on_completion: bool = Field(False, alias="PAGESTREAM_EXPORT_PDF_ON_COMPLETION")

    # --- hardening (issue 11/10): slot failover, request bodies ---
    #: recreate a replication slot that vanished (e.g. failover without slot sync), accepting that
    #: outbox events committed since its last confirmed position may have been skipped
    cdc_allow_slot_recreate: bool = Field(False, alias="PAGESTREAM_CDC_ALLOW_SLOT_RECREATE")

    def database_dsn(self) -> str:
        """The database URL in libpq form (``postgresql://``), secret included."""
        url = self.database_url.get_secret_value()
        for prefix in ("postgresql+psycopg2://", "postgresql+asyncpg://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql://" + url[len(prefix) :]
        return url

    def as_dict(self) -> dict[str, Any]:
        """Settings with secrets hidden and URLs redacted: safe to log."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                raw = value.get_secret_value()
                out[name] = redact_url(raw) if "://" in raw else "***"
            elif isinstance(value, str) and "://" in value:
                out[name] = redact_url(value)
            else:
                out[name] = value if not isinstance(value, Path) else str(value)
        return out

    def kafka_security(self) -> KafkaSecurity:
        """The Kafka security settings, read once for every client library (see ``KafkaSecurity``)."""
        protocol = self.kafka_security_protocol
        sasl = protocol.startswith("SASL_")
        return KafkaSecurity(
            protocol=protocol,
            tls=protocol in ("SSL", "SASL_SSL"),
            sasl_mechanism=(self.kafka_sasl_mechanism or "PLAIN") if sasl else None,
            sasl_username=self.kafka_sasl_username if sasl else None,
            sasl_password=self.kafka_sasl_password if sasl else None,
            ca_location=self.kafka_ssl_ca_location,
        )

    def kafka_client_config(self) -> dict[str, Any]:
        """librdkafka settings shared by producers, consumers and admin clients."""
        return {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            **self.kafka_security().librdkafka_config(),
        }

    # --- ocr preprocessing ---
    # Image repair before Tesseract (docs/engines.md): each step runs only on pages that need it.
    # PAGESTREAM_OCR_PREPROCESS=false turns the whole stage off; PAGESTREAM_OCR_PREPROCESS_DISABLE
    # turns single steps off: a comma-separated list of page-detection, illumination,
    # binarization, upscale, denoise, downscale.
    ocr_preprocess: bool = Field(True, alias="PAGESTREAM_OCR_PREPROCESS")
    ocr_preprocess_disable: str = Field("", alias="PAGESTREAM_OCR_PREPROCESS_DISABLE")


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (once, at an entry point) into frozen settings."""
    return Settings(**overrides)
