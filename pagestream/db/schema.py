"""Table definitions (SQLAlchemy Core). The DDL itself lives in the Alembic migrations."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()

documents = Table(
    "documents",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("sha256", Text, nullable=False),
    Column("media_type", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("filename", Text),
    Column("storage_uri", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("page_count", Integer),
    Column("pages_done", Integer, nullable=False, server_default="0"),
    Column("pages_failed", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("options", JSONB, nullable=False, server_default="{}"),
    Column("client_reference", Text),
    Column("idempotency_key", Text),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("ocr_started_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("reconcile_rounds", Integer, nullable=False, server_default="0"),
    Column("last_reconciled_at", DateTime(timezone=True)),
)

page_attempts = Table(
    "page_attempts",
    metadata,
    Column("page_id", UUID(as_uuid=True), primary_key=True),
    Column("document_id", UUID(as_uuid=True), nullable=False),
    Column("page_number", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_started_at", DateTime(timezone=True), nullable=False),
    Column("last_worker", Text),
)

pages = Table(
    "pages",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("document_id", UUID(as_uuid=True), ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
    Column("page_number", Integer, nullable=False),
    Column("status", Text, nullable=False),  # completed | failed
    Column("text", Text, nullable=False, server_default=""),
    Column("layout", JSONB),
    Column("source", Text),
    Column("engine", Text),
    Column("engine_version", Text),
    Column("rotation", Integer),
    Column("mean_confidence", Float),
    Column("sheet_number", Text),
    Column("sheet_title", Text),
    Column("scale", Text),
    Column("error_reason", Text),
    Column("error_detail", Text),
    Column("attempts", Integer, nullable=False, server_default="1"),
    Column("ocr_seconds", Float),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    UniqueConstraint("document_id", "page_number"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("aggregatetype", Text, nullable=False),
    Column("aggregateid", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("traceparent", Text),
    Column("occurredat", Text, nullable=False),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer", Text, primary_key=True),
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("processed_at", DateTime(timezone=True), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("name", Text, nullable=False),
    Column("prefix", Text, nullable=False),
    Column("hash", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("active", Boolean, nullable=False, server_default="true"),
)
