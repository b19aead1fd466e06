"""WorkerPool: N OCR worker processes, restarted with backoff when they die."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess

from pagestream.exitcodes import ExitCode
from pagestream.retry import Backoff
from pagestream.settings import Settings
from pagestream.workers.page_worker import worker_process_main

log = logging.getLogger(__name__)


def _worker_main(settings: Settings, worker_id: int) -> None:
    """A worker process that ends itself when the ocr service that spawned it is gone.

    Without this, a SIGKILLed (or OOM-killed) ocr service leaves its workers running as
    orphans: they keep consuming page tasks beside the restarted service's new workers and
    survive `pagestream down`, which signals only the current process group.
    """
    parent = os.getppid()

    def watch_parent() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(ExitCode.ORPHANED)

    threading.Thread(target=watch_parent, daemon=True, name="parent-watch").start()
    worker_process_main(settings, worker_id)


@dataclass
class _Slot:
    worker_id: int
    process: BaseProcess | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=1.0, maximum=30.0, jitter=0.0))


class WorkerPool:
    """Keeps ``size`` worker processes alive (spawned, so no inherited locks or clients)."""

    def __init__(self, settings: Settings, size: int):
        self._settings = settings
        self._ctx = mp.get_context("spawn")
        self._slots = [_Slot(i) for i in range(size)]

    @property
    def alive(self) -> int:
        return sum(1 for s in self._slots if s.process is not None and s.process.is_alive())

    @property
    def restarts(self) -> int:
        return sum(s.restarts for s in self._slots)

    def _start(self, slot: _Slot) -> None:
        p = self._ctx.Process(
            target=_worker_main,
            args=(self._settings, slot.worker_id),
            name=f"ocr-worker-{slot.worker_id}",
            daemon=False,
        )
        p.start()
        slot.process = p
        slot.started_at = time.monotonic()

    def run(self, stop: threading.Event) -> None:
        for s in self._slots:
            self._start(s)
        try:
            while not stop.wait(0.5):
                now = time.monotonic()
                for s in self._slots:
                    p = s.process
                    if p is not None and not p.is_alive():
                        code = p.exitcode
                        s.process = None
                        if now - s.started_at > 60:
                            s.backoff.reset()
                        delay = s.backoff.next_delay()
                        # a wedged worker exited on purpose: its replacement starts at once
                        s.next_start = now + (0 if code == ExitCode.WEDGED else delay)
                        s.restarts += 1
                        log.warning(
                            "ocr worker exited; restarting",
                            extra={"worker": s.worker_id, "exitcode": code, "restarts": s.restarts},
                        )
                    if s.process is None and now >= s.next_start:
                        self._start(s)
        finally:
            for s in self._slots:
                if s.process is not None and s.process.is_alive():
                    s.process.terminate()
            for s in self._slots:
                if s.process is not None:
                    s.process.join(20)
                    if s.process.is_alive():
                        s.process.kill()


def default_workers(configured: int) -> int:
    return configured if configured > 0 else (os.cpu_count() or 1)
