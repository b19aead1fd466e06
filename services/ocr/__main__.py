"""Run ocr: ``python -m services.ocr`` (splitter, Textract job poller and reconciler threads +
PAGESTREAM_OCR_WORKERS processes). A thread that dies ends the process, so it is restarted."""

from __future__ import annotations

import os
import tempfile
import threading


def _prepare_multiproc_dir(path: str) -> None:
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


def main() -> None:
    # Worker processes report metrics through prometheus_client's multiprocess mode; this
    # must be set before prometheus_client is first imported, here and in every child.
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pagestream-ocr-metrics-")
    else:
        # A configured directory (deployment-ocr.yaml: /tmp/metrics on an emptyDir, which starts
        # empty) must exist before the import, or prometheus_client raises FileNotFoundError.
        # Files of an earlier run of this container (the emptyDir outlives a restart) would be
        # summed into the new counters: start from an empty directory.
        _prepare_multiproc_dir(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")

    from pagestream.runtime import run_service, start_essential_thread
    from pagestream.settings import load_settings
    from pagestream.workers.pool import WorkerPool, default_workers
    from pagestream.workers.reconciler import Reconciler
    from pagestream.workers.splitter import DocumentSplitter
    from pagestream.workers.textract_jobs import TextractJobPoller

    settings = load_settings()
    splitter = DocumentSplitter(settings)
    poller = TextractJobPoller(settings)  # idle unless async Textract jobs are submitted
    reconciler = Reconciler(settings)
    pool = WorkerPool(settings, default_workers(settings.ocr_workers))

    def body(stop: threading.Event) -> None:
        threads = [
            start_essential_thread("splitter", splitter.run, stop),
            start_essential_thread("textract-jobs", poller.run, stop),
            start_essential_thread("reconciler", reconciler.run, stop),
        ]
        try:
            pool.run(stop)
        finally:
            stop.set()
            for t in threads:
                t.join(15)

    run_service(
        "ocr",
        settings,
        body,
        ready=lambda: splitter.ready and poller.ready and pool.alive > 0,
        details=lambda: {
            "workers_alive": pool.alive,
            "worker_restarts": pool.restarts,
            "reconciler_rounds": reconciler.rounds,
            "reconciler_error": reconciler.last_error,
        },
    )


if __name__ == "__main__":
    main()
