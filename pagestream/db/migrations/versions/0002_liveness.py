"""Liveness: the page attempt ledger and the reconciler's bookkeeping.

- ``page_attempts``: one row per page, counting attempts *started* (recorded before the engine
  runs), so a worker killed mid-page still counts.
- ``documents.reconcile_rounds`` / ``documents.last_reconciled_at``: how often the reconciler
  re-drove a document that stopped progressing.

Revision ID: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE page_attempts (
            page_id uuid PRIMARY KEY,
            document_id uuid NOT NULL,
            page_number integer NOT NULL,
            attempts integer NOT NULL,
            last_started_at timestamptz NOT NULL,
            last_worker text
        );
        CREATE INDEX page_attempts_document_idx ON page_attempts (document_id);
        ALTER TABLE documents ADD COLUMN reconcile_rounds integer NOT NULL DEFAULT 0;
        ALTER TABLE documents ADD COLUMN last_reconciled_at timestamptz;
        CREATE INDEX documents_unfinished_idx ON documents (updated_at)
            WHERE status IN ('received', 'processing');
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX IF EXISTS documents_unfinished_idx;
        ALTER TABLE documents DROP COLUMN IF EXISTS last_reconciled_at;
        ALTER TABLE documents DROP COLUMN IF EXISTS reconcile_rounds;
        DROP TABLE IF EXISTS page_attempts;
        """
    )
