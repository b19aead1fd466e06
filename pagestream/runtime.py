"""What every long-running service process shares: signals, health server, startup log."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

from pagestream.logging import setup_logging
from pagestream.metrics import HealthServer
from pagestream.settings import Settings

log = logging.getLogger(__name__)


def install_stop_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (graceful stop)."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info("stopping on signal %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def run_service(name: str, settings: Settings, body: Callable[[threading.Event], None],
                ready: Callable[[], bool], details: Callable[[], dict] | None = None) -> None:
    """Serve /metrics, /healthz, /readyz on PAGESTREAM_HTTP_PORT and run ``body(stop)`` until stopped."""
    setup_logging(name, settings.log_level)
    stop = install_stop_signals()
    health = HealthServer(settings.http_host, settings.http_port, ready, details)
    health.start()
    log.info("%s started", name, extra={"port": health.port, "settings": settings.as_dict()})
    try:
        body(stop)
    finally:
        health.stop()
        log.info("%s stopped", name)
