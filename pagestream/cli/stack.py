"""``pagestream up | down | status | env``: run and inspect the local stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from shlex import quote

import click

from pagestream.exitcodes import ExitCode
from pagestream.logging import setup_logging
from pagestream.stack._proc import log_tail, pid_alive
from pagestream.stack.errors import StackError
from pagestream.stack.state import NoStackError, StackState, StackStatus
from pagestream.stack.supervisor import StackSupervisor

state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="PAGESTREAM_STATE_DIR",
    default=Path(".pagestream"),
    show_default=True,
    show_envvar=True,
    help="Directory holding the local stack's data, logs and stack.json.",
)


def _print_status(status: StackStatus) -> None:
    state = status.state
    click.echo(
        f"stack: {'ready' if status.ready else 'NOT ready'} (supervisor pid {state.supervisor_pid}, "
        f"state {state.state_dir})"
    )
    click.echo(f"  api       {state.api_url}   (auth {state.auth})")
    click.echo(f"  kafka     {state.bootstrap_servers}")
    click.echo(f"  database  {state.database_url}")
    click.echo(f"  storage   {state.storage_url}")
    click.echo(f"  {'part':<9} {'pid':>7}  {'state':<9} {'restarts':>8}  health / metrics")
    for p in status.parts:
        word = "ready" if p.ready else "healthy" if p.healthy else "up" if p.alive else "DOWN"
        part = p.part
        urls = f"{part.health_url}  {part.metrics_url}" if part.health_url else f"port {part.port}"
        click.echo(f"  {p.name:<9} {part.pid or '-':>7}  {word:<9} {part.restarts:>8}  {urls}")


@click.command()
@state_dir_option
@click.option("--detach", is_flag=True, help="Run in the background; return once every service is ready.")
@click.option(
    "--timeout",
    type=float,
    default=180.0,
    show_default=True,
    help="With --detach: seconds to wait for readiness.",
)
def up(state_dir: Path, detach: bool, timeout: float) -> None:
    """Start the local stack: broker, PostgreSQL, object store (unless configured) and all services."""
    state_dir = state_dir.absolute()
    running = StackState.read(state_dir)
    if running is not None:
        raise click.ClickException(
            f"a stack is already running in {state_dir} "
            f"(supervisor pid {running.supervisor_pid}); run `pagestream down` first"
        )
    if detach:
        _up_detached(state_dir, timeout)
        return
    setup_logging("supervisor")
    supervisor = StackSupervisor(state_dir, dict(os.environ))

    def started() -> None:
        state = StackState.read(state_dir)
        if state is not None:
            _print_status(state.probe())
        if state is not None and state.auth == "disabled":
            click.echo(
                "authentication is disabled (every part embedded, API on loopback); press Ctrl-C to stop",
                err=True,
            )
        else:
            why = "; ".join(state.auth_reasons if state is not None else ())
            click.echo(
                f"API keys are required ({why}); create one with `pagestream apikey create NAME`; "
                "press Ctrl-C to stop",
                err=True,
            )

    try:
        supervisor.run(on_started=started)
    except StackError as e:
        raise click.ClickException(str(e)) from e


def _up_detached(state_dir: Path, timeout: float) -> None:
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / "supervisor.log"
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pagestream.stack.supervisor", "--state-dir", str(state_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    status: StackStatus | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(
                f"the stack failed to start (supervisor exit code {proc.returncode}); "
                f"{log_path}:\n{log_tail(log_path)}"
            )
        state = StackState.read(state_dir)
        if state is not None and state.supervisor_pid == proc.pid:
            status = state.probe()
            if status.ready:
                _print_status(status)
                click.echo(f"stack running in the background; logs in {logs}; stop it with `pagestream down`")
                return
        time.sleep(0.5)
    message = [f"the stack was not ready within {timeout:.0f} s; stopping it"]
    for p in status.parts if status is not None else ():
        if not p.ready:
            message.append(
                f"--- {p.name} is not ready (restarts {p.part.restarts}); "
                f"{p.part.log}:\n{log_tail(Path(p.part.log))}"
            )
    if status is None:
        message.append(f"--- supervisor log {log_path}:\n{log_tail(log_path)}")
    _stop_supervisor(proc.pid, 60.0)
    proc.wait()
    raise click.ClickException("\n".join(message))


def _stop_supervisor(pid: int, timeout: float) -> bool:
    """SIGTERM the supervisor and wait for it to finish stopping the stack; True if it did."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.2)
    return False


@click.command()
@state_dir_option
@click.option("--timeout", type=float, default=90.0, show_default=True, help="Seconds to wait for the stop.")
def down(state_dir: Path, timeout: float) -> None:
    """Stop a stack started with `pagestream up --detach`."""
    state_dir = state_dir.absolute()
    try:
        pid = StackState.load(state_dir).supervisor_pid
    except NoStackError as e:
        click.echo(str(e))
        return
    click.echo(f"stopping the stack (supervisor pid {pid}) ...")
    if not _stop_supervisor(pid, timeout):
        raise click.ClickException(
            f"the supervisor (pid {pid}) did not stop within {timeout:.0f} s; "
            f"see {state_dir / 'logs' / 'supervisor.log'}"
        )
    click.echo("stopped")


@click.command()
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(state_dir: Path, as_json: bool) -> None:
    """Show each part of the local stack: pid, health, readiness, URLs and restarts."""
    state_dir = state_dir.absolute()
    try:
        state = StackState.load(state_dir)
    except NoStackError as e:
        if as_json:
            click.echo(json.dumps({"running": False, "state_dir": str(state_dir), "parts": []}))
        else:
            click.echo(f"{e} (start one with `pagestream up`)")
        sys.exit(ExitCode.NOT_RUNNING)
    result = state.probe()
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        _print_status(result)
    if not result.ready:
        sys.exit(ExitCode.FAILED)


@click.command("env")
@state_dir_option
def env_command(state_dir: Path) -> None:
    """Print `export` lines that point clients at the running stack (includes the database password)."""
    state_dir = state_dir.absolute()
    try:
        state = StackState.load(state_dir)
    except NoStackError as e:
        raise click.ClickException(f"{e}; run `pagestream up`") from None
    values = {
        "KAFKA_BOOTSTRAP_SERVERS": state.bootstrap_servers,
        # the one place a secret is printed: this command exists to hand it to a shell
        "DATABASE_URL": state.database_secret_url(os.environ).get_secret_value(),
        "STORAGE_URL": state.storage_url,
        "PAGESTREAM_API_URL": state.api_url,
    }
    click.echo("export " + " ".join(f"{k}={quote(v)}" for k, v in values.items()))


def register(group: click.Group) -> None:
    """Add ``up``, ``down``, ``status`` and ``env`` to ``group``."""
    for command in (up, down, status, env_command):
        group.add_command(command)
