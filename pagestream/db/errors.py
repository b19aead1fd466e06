"""Database errors, wrapping SQLAlchemy/psycopg2 ones at the adapter."""

from __future__ import annotations

from pagestream.errors import PagestreamError, TransientError


class DatabaseError(PagestreamError):
    """A database operation failed."""

    reason = "database"


class DatabaseUnavailableError(DatabaseError, TransientError):
    """The database cannot be reached or the transaction was aborted by a conflict; retry."""

    reason = "database_unavailable"


class DataRejectedError(DatabaseError):
    """The database refused the data itself (out of range, invalid text, constraint): permanent for it."""

    reason = "data_rejected"


class DocumentNotFoundError(DatabaseError):
    """No document with that id."""

    reason = "document_not_found"


class DocumentNotReprocessableError(DatabaseError):
    """The document was never processable as stored (e.g. encrypted, no pages): submit it again."""

    reason = "not_reprocessable"
