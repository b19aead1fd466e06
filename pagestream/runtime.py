"""What every long-running service process shares: signals, health server, startup log."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable

from pagestream.exitcodes import ExitCode
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


def run_service(
    name: str,
    settings: Settings,
    body: Callable[[threading.Event], None],
    ready: Callable[[], bool],
    details: Callable[[], dict] | None = None,
) -> None:
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


def die(code: ExitCode, message: str) -> None:
    """End this process now with ``code``, after logging ``message`` and flushing the logs.

    For a thread that finds the process can no longer do its job: a process with a dead
    consumer loop must not linger half-alive (``/healthz`` 200, nothing consumed).
    """
    log.critical(message, extra={"exit_code": int(code)})
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):  # we are exiting regardless
            handler.flush()
    os._exit(int(code))


def start_essential_thread(
    name: str, target: Callable[[threading.Event], None], stop: threading.Event
) -> threading.Thread:
    """Run ``target(stop)`` in a daemon thread whose death ends the process.

    If ``target`` raises, or returns while ``stop`` is not set, the process exits with
    ``ExitCode.LOOP_DIED`` so the supervisor (or Kubernetes) restarts it.
    """

    def body() -> None:
        try:
            target(stop)
        except BaseException:
            log.exception("%s died", name)
            die(ExitCode.LOOP_DIED, f"{name} died; ending the process so it is restarted")
        else:
            if not stop.is_set():
                die(ExitCode.LOOP_DIED, f"{name} stopped while the service was running; ending the process")

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    return thread
