"""CDC relay errors."""

from __future__ import annotations

from pagestream.errors import ConfigurationError, PagestreamError, TransientError


class CdcError(PagestreamError):
    reason = "cdc"


class ReplicationSetupError(CdcError, ConfigurationError):
    """The database cannot serve logical replication as configured (wal_level, role, publication)."""

    reason = "replication_setup"


class ReplicationDisconnectedError(CdcError, TransientError):
    """The replication stream or the broker went away; reconnect from the last flushed LSN."""

    reason = "replication_disconnected"
