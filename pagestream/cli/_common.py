"""What CLI commands share: settings from the environment, the API URL of the local stack."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import click

from pagestream.client import ApiClient, ApiClientError
from pagestream.settings import Settings, load_settings
from pagestream.stack.state import StackState


def cli_settings() -> Settings:
    """Settings from the environment, filled in from a running local stack where unset."""
    state = StackState.read(Path(os.environ.get("PAGESTREAM_STATE_DIR", ".pagestream")))
    overrides: dict[str, object] = {}
    if state is not None:
        if "PAGESTREAM_API_URL" not in os.environ and state.api_url:
            overrides["PAGESTREAM_API_URL"] = state.api_url
        if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ and state.bootstrap_servers:
            overrides["KAFKA_BOOTSTRAP_SERVERS"] = state.bootstrap_servers
        if "DATABASE_URL" not in os.environ and state.database_embedded:
            overrides["DATABASE_URL"] = state.database_secret_url(os.environ)
    return load_settings(**overrides)


def api_client() -> ApiClient:
    s = cli_settings()
    key = s.api_key.get_secret_value() if s.api_key else None
    return ApiClient(s.api_url, key)


def fail(e: ApiClientError) -> click.ClickException:
    return click.ClickException(str(e))


@contextlib.contextmanager
def api_session() -> Iterator[ApiClient]:
    """An API client for one command; an API error ends the command with its message (exit 1)."""
    try:
        with api_client() as client:
            yield client
    except ApiClientError as e:
        raise fail(e) from e
