"""Initial schema: documents, pages (with full-text index), outbox, processed_events, api_keys.

Revision ID: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE documents (
            id uuid PRIMARY KEY,
            sha256 text NOT NULL,
            media_type text NOT NULL,
            size_bytes bigint NOT NULL,
            filename text,
            storage_uri text NOT NULL,
            status text NOT NULL CHECK (status IN ('received','processing','completed','partial','failed')),
            page_count integer,
            pages_done integer NOT NULL DEFAULT 0,
            pages_failed integer NOT NULL DEFAULT 0,
            error text,
            options jsonb NOT NULL DEFAULT '{}'::jsonb,
            client_reference text,
            idempotency_key text,
            received_at timestamptz NOT NULL,
            ocr_started_at timestamptz,
            completed_at timestamptz,
            updated_at timestamptz NOT NULL
        );
        CREATE INDEX documents_sha256 ON documents (sha256);
        CREATE UNIQUE INDEX documents_idempotency_key ON documents (idempotency_key) WHERE idempotency_key IS NOT NULL;
        CREATE INDEX documents_status_received ON documents (status, received_at DESC, id DESC);
        CREATE INDEX documents_received ON documents (received_at DESC, id DESC);

        CREATE TABLE pages (
            id uuid PRIMARY KEY,
            document_id uuid NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            page_number integer NOT NULL,
            status text NOT NULL CHECK (status IN ('completed','failed')),
            text text NOT NULL DEFAULT '',
            layout jsonb,
            source text,
            engine text,
            engine_version text,
            rotation integer,
            mean_confidence double precision,
            sheet_number text,
            sheet_title text,
            scale text,
            error_reason text,
            error_detail text,
            attempts integer NOT NULL DEFAULT 1,
            ocr_seconds double precision,
            event_id uuid NOT NULL,
            started_at timestamptz,
            completed_at timestamptz,
            tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
            UNIQUE (document_id, page_number)
        );
        CREATE INDEX pages_tsv ON pages USING gin (tsv);

        -- Debezium outbox event router columns, plus traceparent and occurredat (placed in headers).
        CREATE TABLE outbox (
            id uuid PRIMARY KEY,
            aggregatetype text NOT NULL,
            aggregateid text NOT NULL,
            type text NOT NULL,
            payload jsonb NOT NULL,
            traceparent text,
            occurredat text NOT NULL
        );

        CREATE TABLE processed_events (
            consumer text NOT NULL,
            event_id uuid NOT NULL,
            processed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer, event_id)
        );

        CREATE TABLE api_keys (
            id uuid PRIMARY KEY,
            name text NOT NULL,
            prefix text NOT NULL,
            hash text NOT NULL UNIQUE,
            created_at timestamptz NOT NULL,
            revoked_at timestamptz,
            active boolean NOT NULL DEFAULT true
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS api_keys, processed_events, outbox, pages, documents CASCADE")
