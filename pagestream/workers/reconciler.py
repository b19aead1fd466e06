"""Reconciler: the loop that makes "every accepted document reaches a final state" true.

Every ``reconcile_interval_seconds`` it runs one round of ``pagestream.db.reconcile`` (leader-safe:
an advisory lock picks one replica per round), updates the ``pagestream_documents_overdue`` gauge
from PostgreSQL, and the ``pagestream_dlq_depth`` gauge from the broker. Database or broker
outages are waited out; anything else ends the loop, and with it the process (it runs as an
essential thread), so it is restarted rather than left silently idle.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from pagestream import metrics
from pagestream.db import Engine, make_engine
from pagestream.db.reconcile import overdue_documents, reconcile_once
from pagestream.errors import PagestreamError
from pagestream.events.envelope import new_traceparent
from pagestream.events.topics import DLQ_TOPICS
from pagestream.kafka.admin import WatermarkProbe
from pagestream.retry import Backoff
from pagestream.settings import Settings

log = logging.getLogger(__name__)


class Reconciler:
    """Re-drives stalled documents through the outbox and finishes those that cannot progress."""

    def __init__(self, settings: Settings, *, engine: Engine | None = None):
        self._s = settings
        self._engine = engine
        self._probe = WatermarkProbe(settings)
        self.healthy = False
        self.rounds = 0
        self.last_error: str | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(
                self._s.database_dsn(), pool_size=1, application_name="pagestream-reconciler"
            )
        return self._engine

    def run(self, stop: threading.Event) -> None:
        backoff = Backoff(initial=1.0, maximum=60.0)
        try:
            while not stop.is_set():
                try:
                    self.round()
                except PagestreamError as e:
                    if not e.retryable:
                        raise
                    self.healthy = False
                    self.last_error = str(e)
                    metrics.RECONCILE_ROUNDS.labels("unavailable").inc()
                    log.warning("reconciler: dependency unavailable, trying again: %s", e)
                    stop.wait(backoff.next_delay())
                    continue
                backoff.reset()
                stop.wait(self._s.reconcile_interval_seconds)
        finally:
            self._probe.close()

    def round(self) -> None:
        """One reconciliation round plus the gauges."""
        epoch = datetime.fromtimestamp(self._s.broker_epoch, UTC) if self._s.broker_epoch else None
        result = reconcile_once(
            self.engine,
            stall_seconds=self._s.reconcile_stall_seconds,
            max_rounds=self._s.reconcile_max_rounds,
            broker_epoch=epoch,
            traceparent=new_traceparent(),
        )
        metrics.RECONCILE_ROUNDS.labels("ran" if result.ran else "skipped").inc()
        for doc_id, missing in result.redriven:
            metrics.RECONCILE_REDRIVEN_PAGES.inc(len(missing))
            log.warning(
                "reconciler: document stalled; missing pages re-requested through the outbox",
                extra={"document_id": str(doc_id), "pages": missing[:50], "missing": len(missing)},
            )
        for doc_id, status in result.finished:
            metrics.RECONCILE_FINISHED.labels(status).inc()
            log.error(
                "reconciler: document could not progress; moved to a final state",
                extra={"document_id": str(doc_id), "status": status},
            )
        metrics.DOCUMENTS_OVERDUE.set(
            overdue_documents(self.engine, older_than_seconds=self._s.reconcile_stall_seconds)
        )
        for topic in DLQ_TOPICS:
            metrics.DLQ_DEPTH.labels(topic).set(self._probe.depth(topic))
        self.rounds += 1
        self.healthy = True
        self.last_error = None
