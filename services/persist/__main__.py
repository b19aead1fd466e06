"""Run persist: ``python -m services.persist``."""

from __future__ import annotations

import faust

from pagestream.logging import setup_logging
from pagestream.metrics import HealthServer
from pagestream.settings import load_settings
from pagestream.workers.persister import PersistState, create_app


def main() -> None:
    settings = load_settings()
    setup_logging("persist", settings.log_level)
    state = PersistState()
    health = HealthServer(
        settings.http_host,
        settings.http_port,
        lambda: state.ready,
        lambda: {
            "db_ok": state.db_ok,
            "agent_running": state.agent_running,
            "batches": state.batches,
            "duplicates_absorbed": state.duplicates,
        },
    )
    health.start()
    app = create_app(settings, state)
    worker = faust.Worker(
        app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False, override_logging=False
    )
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
