"""Run the cdc relay: ``python -m services.cdc``."""

from __future__ import annotations

from pagestream.cdc.debezium import make_relay
from pagestream.runtime import run_service
from pagestream.settings import load_settings


def main() -> None:
    settings = load_settings()
    relay = make_relay(settings)  # PAGESTREAM_CDC_ENGINE=relay (default) or debezium
    run_service(
        "cdc",
        settings,
        relay.run,
        ready=lambda: relay.ready,
        details=lambda: {
            "connected": relay.status.connected,
            "broker_ok": relay.status.broker_ok,
            "flushed_lsn": relay.status.flushed_lsn,
            "published": relay.status.published,
            "last_error": relay.status.last_error,
            **relay.status.details,
        },
    )


if __name__ == "__main__":
    main()
