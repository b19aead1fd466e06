"""Prometheus metrics (every name prefixed ``pagestream_``, units in the name) and the
small HTTP server that non-HTTP services use for ``/metrics``, ``/healthz`` and ``/readyz``.

All metrics are defined here, once, so dashboards, alerts and tests have one list to check.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
OCR_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)

# --- ingest ---
DOCUMENTS_RECEIVED = Counter(
    "pagestream_documents_received_total", "Documents accepted at ingest", ["channel"]
)
DOCUMENTS_REJECTED = Counter(
    "pagestream_documents_rejected_total", "Documents rejected at ingest", ["channel", "reason"]
)
UPLOAD_BYTES = Counter("pagestream_upload_bytes_total", "Bytes of accepted uploads")
HTTP_REQUESTS = Counter(
    "pagestream_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_SECONDS = Histogram(
    "pagestream_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)

# --- cdc ---
CDC_RECORDS_PUBLISHED = Counter(
    "pagestream_cdc_records_published_total", "Outbox records acknowledged by the broker", ["topic"]
)
CDC_COMMIT_TO_ACK = Histogram(
    "pagestream_cdc_commit_to_ack_seconds",
    "Commit timestamp to broker acknowledgement",
    buckets=LATENCY_BUCKETS,
)
CDC_LAG_BYTES = Gauge("pagestream_cdc_replication_lag_bytes", "Server WAL end minus flushed LSN")
CDC_LAG_SECONDS = Gauge(
    "pagestream_cdc_replication_lag_seconds", "Age of the newest commit not yet acknowledged"
)
CDC_FLUSHED_LSN = Gauge("pagestream_cdc_flushed_lsn", "Last LSN confirmed to the slot (as integer)")
CDC_RETAINED_WAL = Gauge("pagestream_cdc_slot_retained_wal_bytes", "WAL retained by the replication slot")
CDC_RECONNECTS = Counter("pagestream_cdc_reconnects_total", "Replication reconnects", ["target"])
CDC_HEARTBEATS = Counter("pagestream_cdc_heartbeats_total", "Heartbeat messages emitted")
CDC_CONNECTED = Gauge("pagestream_cdc_connected", "1 while streaming from the slot")
CDC_SLOT_RECREATED = Counter(
    "pagestream_cdc_slot_recreated_total",
    "Replication slots recreated after they vanished (events committed meanwhile may have been skipped)",
)

# --- ocr ---
OCR_PAGES = Counter("pagestream_ocr_pages_total", "Pages processed", ["engine", "source", "outcome"])
OCR_SECONDS = Histogram(
    "pagestream_ocr_seconds", "Time recognizing one page", ["engine"], buckets=OCR_BUCKETS
)
RENDER_SECONDS = Histogram(
    "pagestream_render_seconds", "Time rendering one page to pixels", buckets=OCR_BUCKETS
)
OCR_IN_FLIGHT = Gauge("pagestream_ocr_pages_in_flight", "Pages being processed now")
OCR_RETRIES = Counter("pagestream_ocr_retries_total", "Page tasks sent to the retry topic", ["reason"])
DOCUMENTS_SPLIT = Counter("pagestream_documents_split_total", "Documents split into page tasks")

# --- shared consumer / dlq ---
DLQ_RECORDS = Counter("pagestream_dlq_records_total", "Records dead-lettered", ["topic", "reason"])
EVENTS_CONSUMED = Counter("pagestream_events_consumed_total", "Events consumed", ["service", "type"])
DUPLICATES_ABSORBED = Counter(
    "pagestream_duplicate_events_total",
    "Redelivered events whose effect was already applied",
    ["service"],
)
ERRORS = Counter("pagestream_errors_total", "Errors by service and kind", ["service", "kind"])
DLQ_DEPTH = Gauge(
    "pagestream_dlq_depth",
    "Records held in a dead-letter topic (high minus low watermark)",
    ["topic"],
    multiprocess_mode="livemax",
)

# --- reconciler (liveness) ---
DOCUMENTS_OVERDUE = Gauge(
    "pagestream_documents_overdue",
    "Accepted documents not final although received longer ago than the reconciler's stall bound",
    multiprocess_mode="livemax",
)
RECONCILE_REDRIVEN_PAGES = Counter(
    "pagestream_reconciler_redriven_pages_total", "Missing pages re-requested through the outbox"
)
RECONCILE_FINISHED = Counter(
    "pagestream_reconciler_finished_documents_total", "Stalled documents moved to a final state", ["status"]
)
RECONCILE_ROUNDS = Counter("pagestream_reconciler_rounds_total", "Reconciler rounds run", ["outcome"])

# --- persist ---
PERSIST_BATCH_SIZE = Histogram(
    "pagestream_persist_batch_events",
    "Events per persisted batch",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
PERSIST_BATCH_SECONDS = Histogram(
    "pagestream_persist_batch_seconds", "Time committing one batch", buckets=LATENCY_BUCKETS
)
PAGES_PERSISTED = Counter("pagestream_pages_persisted_total", "Page results stored", ["outcome"])
DOCUMENTS_FINISHED = Counter(
    "pagestream_documents_finished_total", "Documents reaching a final state", ["status"]
)
DOCUMENT_E2E_SECONDS = Histogram(
    "pagestream_document_end_to_end_seconds", "Received to final state", buckets=OCR_BUCKETS
)


def render_metrics() -> bytes:
    """The Prometheus exposition of this process, or of all its worker processes when
    prometheus_client's multiprocess mode is on (``PROMETHEUS_MULTIPROC_DIR``, its own variable)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


class HealthServer:
    """Serves ``/metrics``, ``/healthz`` (process alive) and ``/readyz`` (``ready()`` true).

    ``port=0`` picks a free port; ``port`` then tells which.
    """

    def __init__(
        self, host: str, port: int, ready: Callable[[], bool], details: Callable[[], dict] | None = None
    ):
        self._host = host
        self._port = port
        self._ready = ready
        self._details = details or (lambda: {})
        self._server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("HealthServer not started")
        return self._server.server_address[1]

    def start(self) -> None:
        ready, details = self._ready, self._details

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, render_metrics(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._send(200, b'{"status":"ok"}', "application/json")
                elif path == "/readyz":
                    ok = bool(ready())
                    body = json.dumps({"ready": ok, **details()}).encode()
                    self._send(200 if ok else 503, body, "application/json")
                else:
                    self._send(404, b'{"detail":"not found"}', "application/json")

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((self._host, self._port), Handler)
        threading.Thread(target=self._server.serve_forever, name="health-http", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
