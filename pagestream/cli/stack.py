"""``pagestream up | down | status | env``: run and inspect the local stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from shlex import quote
from typing import Any

import click

from pagestream.exitcodes import ExitCode
from pagestream.logging import setup_logging
from pagestream.stack._proc import log_tail, pid_alive, port_accepts
from pagestream.stack.errors import StackError
from pagestream.stack.supervisor import STACK_FILE, StackSupervisor, read_state

state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="PAGESTREAM_STATE_DIR",
    default=Path(".pagestream"),
    show_default=True,
    show_envvar=True,
    help="Directory holding the local stack's data, logs and stack.json.",
)


def probe(url: str, timeout: float = 1.0) -> bool:
    """True if GET ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - local http URLs
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def part_status(name: str, part: dict[str, Any]) -> dict[str, Any]:
    """Live status of one part from stack.json: alive, healthy and ready by probing it."""
    alive = pid_alive(part.get("pid"))
    if part.get("kind") == "service":
        healthy = alive and probe(part["health_url"])
        ready = healthy and probe(part["ready_url"])
    else:
        healthy = ready = alive and port_accepts(int(part.get("port") or 0))
    return {
        "name": name,
        "pid": part.get("pid"),
        "alive": alive,
        "healthy": healthy,
        "ready": ready,
        "health_url": part.get("health_url"),
        "ready_url": part.get("ready_url"),
        "metrics_url": part.get("metrics_url"),
        "port": part.get("port"),
        "restarts": part.get("restarts", 0),
        "log": part.get("log"),
    }


def stack_status(state: dict[str, Any]) -> dict[str, Any]:
    """stack.json plus a live probe of every part."""
    parts = [part_status(name, part) for name, part in state.get("parts", {}).items()]
    services = [p for p in parts if state["parts"][p["name"]].get("kind") == "service"]
    return {
        "running": True,
        "supervisor_pid": state.get("supervisor_pid"),
        "state_dir": state.get("state_dir"),
        "ready": all(p["ready"] for p in parts) and bool(services),
        "bootstrap_servers": state.get("bootstrap_servers"),
        "database_url": state.get("database_url"),
        "storage_url": state.get("storage_url"),
        "api_url": state.get("api_url"),
        "auth": state.get("auth"),
        "parts": parts,
    }


def _print_status(status: dict[str, Any]) -> None:
    click.echo(
        f"stack: {'ready' if status['ready'] else 'NOT ready'} (supervisor pid {status['supervisor_pid']}, "
        f"state {status['state_dir']})"
    )
    click.echo(f"  api       {status['api_url']}   (auth {status['auth']})")
    click.echo(f"  kafka     {status['bootstrap_servers']}")
    click.echo(f"  database  {status['database_url']}")
    click.echo(f"  storage   {status['storage_url']}")
    click.echo(f"  {'part':<9} {'pid':>7}  {'state':<9} {'restarts':>8}  health / metrics")
    for p in status["parts"]:
        state = "ready" if p["ready"] else "healthy" if p["healthy"] else "up" if p["alive"] else "DOWN"
        urls = f"{p['health_url']}  {p['metrics_url']}" if p["health_url"] else f"port {p['port']}"
        click.echo(f"  {p['name']:<9} {p['pid'] or '-':>7}  {state:<9} {p['restarts']:>8}  {urls}")


def _database_url_with_password(state: dict[str, Any], state_dir: Path) -> str:
    url: str = state.get("database_url", "")
    if state.get("database_embedded"):
        password = (state_dir / "postgres" / "password").read_text().strip()
        return url.replace(":***@", f":{password}@", 1)
    return os.environ.get("DATABASE_URL", url)


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
    running = read_state(state_dir)
    if running is not None:
        raise click.ClickException(
            f"a stack is already running in {state_dir} "
            f"(supervisor pid {running['supervisor_pid']}); run `pagestream down` first"
        )
    if detach:
        _up_detached(state_dir, timeout)
        return
    setup_logging("supervisor")
    supervisor = StackSupervisor(state_dir, dict(os.environ))

    def started() -> None:
        state = read_state(state_dir)
        if state is not None:
            _print_status(stack_status(state))
        if state is not None and state.get("auth") == "disabled":
            click.echo(
                "authentication is disabled (every part embedded, API on loopback); press Ctrl-C to stop",
                err=True,
            )
        else:
            why = "; ".join((state or {}).get("auth_reasons") or [])
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
    status: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(
                f"the stack failed to start (supervisor exit code {proc.returncode}); "
                f"{log_path}:\n{log_tail(log_path)}"
            )
        state = read_state(state_dir)
        if state is not None and state.get("supervisor_pid") == proc.pid:
            status = stack_status(state)
            if status["ready"]:
                _print_status(status)
                click.echo(f"stack running in the background; logs in {logs}; stop it with `pagestream down`")
                return
        time.sleep(0.5)
    message = [f"the stack was not ready within {timeout:.0f} s; stopping it"]
    for part in (status or {}).get("parts", []):
        if not part["ready"]:
            message.append(
                f"--- {part['name']} is not ready (restarts {part['restarts']}); "
                f"{part['log']}:\n{log_tail(Path(part['log'])) if part['log'] else ''}"
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
    state = read_state(state_dir)
    if state is None:
        click.echo(f"no stack running in {state_dir}")
        return
    pid = int(state["supervisor_pid"])
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
    state = read_state(state_dir)
    if state is None:
        if as_json:
            click.echo(json.dumps({"running": False, "state_dir": str(state_dir), "parts": []}))
        else:
            click.echo(f"no stack running in {state_dir} (start one with `pagestream up`)")
        sys.exit(ExitCode.NOT_RUNNING)
    result = stack_status(state)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        _print_status(result)
    if not result["ready"]:
        sys.exit(ExitCode.FAILED)


@click.command("env")
@state_dir_option
def env_command(state_dir: Path) -> None:
    """Print `export` lines that point clients at the running stack (includes the database password)."""
    state_dir = state_dir.absolute()
    state = read_state(state_dir)
    if state is None:
        raise click.ClickException(
            f"no stack running in {state_dir} (no live {STACK_FILE}); run `pagestream up`"
        )
    values = {
        "KAFKA_BOOTSTRAP_SERVERS": state["bootstrap_servers"],
        "DATABASE_URL": _database_url_with_password(state, state_dir),
        "STORAGE_URL": state["storage_url"],
        "PAGESTREAM_API_URL": state["api_url"],
    }
    click.echo("export " + " ".join(f"{k}={quote(v)}" for k, v in values.items()))


def register(group: click.Group) -> None:
    """Add ``up``, ``down``, ``status`` and ``env`` to ``group``."""
    for command in (up, down, status, env_command):
        group.add_command(command)
