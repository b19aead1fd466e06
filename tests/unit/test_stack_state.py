"""``stack.json`` through ``StackState``: what the supervisor writes is what every reader gets, a
missing, stale or foreign file means "no stack" (and says which), and the database password
reaches only ``pagestream env`` and the CLI's settings."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pagestream.cli._common import cli_settings
from pagestream.cli.stack import register
from pagestream.exitcodes import ExitCode
from pagestream.metrics import HealthServer
from pagestream.stack._proc import pid_started_at
from pagestream.stack.state import STACK_FILE, NoStackError, PartState, RecentExit, StackState

PASSWORD = "s3cret-Pa55word-of-the-cluster"


def service(port: int, pid: int | None = None) -> PartState:
    base = f"http://127.0.0.1:{port}"
    return PartState(
        kind="service",
        pid=pid,
        port=port,
        restarts=2,
        log="/tmp/ocr.log",
        health_url=f"{base}/healthz",
        ready_url=f"{base}/readyz",
        metrics_url=f"{base}/metrics",
        last_exit_code=-9,
        recent_exits=(
            RecentExit(exit_code=-9, at=1.5, delay=1.0),
            RecentExit(exit_code=-9, at=3.0, delay=2.0),
        ),
        restart_in_seconds=None,
    )


def make_state(state_dir: Path, **changes: object) -> StackState:
    """A state as a supervisor in this process, started just now, would write it."""
    values: dict[str, object] = {
        "supervisor_pid": os.getpid(),
        "started_at": time.time(),
        "state_dir": str(state_dir),
        "bootstrap_servers": "127.0.0.1:19092",
        "database_url": f"postgresql://pagestream:{PASSWORD}@127.0.0.1:5433/pagestream",
        "database_embedded": True,
        "storage_url": f"file://{state_dir / 'objects'}",
        "api_url": "http://127.0.0.1:18123",
        "auth": "disabled",
        "auth_reasons": (),
        "parts": {
            "postgres": PartState(
                kind="infrastructure", pid=None, port=5433, restarts=0, log="/tmp/pg.log", data_dir="/tmp/d"
            ),
            "ocr": service(1),
        },
    }
    values.update(changes)
    return StackState(**values)  # type: ignore[arg-type]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    (d / "postgres").mkdir(parents=True)
    (d / "postgres" / "password").write_text(PASSWORD + "\n")
    return d


def why(state_dir: Path) -> str:
    with pytest.raises(NoStackError) as raised:
        StackState.load(state_dir)
    assert StackState.read(state_dir) is None
    return raised.value.why


def test_what_is_written_is_what_is_read(state_dir: Path) -> None:
    state = make_state(state_dir)
    state.write()
    assert StackState.load(state_dir) == state
    data = json.loads((state_dir / STACK_FILE).read_text())
    assert data["format"] == 1
    assert data["parts"]["ocr"]["recent_exits"] == [
        {"exit_code": -9, "at": 1.5, "delay": 1.0},
        {"exit_code": -9, "at": 3.0, "delay": 2.0},
    ]
    assert not list(state_dir.glob(".stack.json.*")), "the temporary file of the atomic write is left behind"


def test_the_password_never_reaches_the_file_or_the_state(state_dir: Path) -> None:
    state = make_state(state_dir)
    assert state.database_url == "postgresql://pagestream:***@127.0.0.1:5433/pagestream"
    state.write()
    assert PASSWORD not in (state_dir / STACK_FILE).read_text()
    assert PASSWORD not in repr(StackState.load(state_dir))
    secret = state.database_secret_url({})
    assert PASSWORD not in repr(secret) and PASSWORD not in str(secret)
    assert secret.get_secret_value() == f"postgresql://pagestream:{PASSWORD}@127.0.0.1:5433/pagestream"


def test_an_external_database_url_comes_from_the_environment(state_dir: Path) -> None:
    external = "postgresql://app:other-secret@db.example:5432/pagestream"
    state = make_state(state_dir, database_url=external, database_embedded=False)
    assert state.database_url == "postgresql://app:***@db.example:5432/pagestream"
    assert state.database_secret_url({"DATABASE_URL": external}).get_secret_value() == external


def test_missing_file_means_no_stack(state_dir: Path) -> None:
    assert why(state_dir) == "missing"
    make_state(state_dir).write()
    StackState.remove(state_dir)
    StackState.remove(state_dir)  # a second stop path removing it again is harmless
    assert why(state_dir) == "missing"


def test_a_dead_supervisor_leaves_a_stale_file(state_dir: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    make_state(state_dir, supervisor_pid=proc.pid).write()
    assert why(state_dir) == "stale"


def test_a_recycled_supervisor_pid_is_stale(state_dir: Path) -> None:
    # the pid is alive, but its process began long after the stack did: not the supervisor
    began = pid_started_at(os.getpid())
    assert began is not None, "/proc gives process start times on Linux"
    make_state(state_dir, started_at=began - 3600).write()
    assert why(state_dir) == "stale"


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[]",
        '{"format": 2, "supervisor_pid": 1}',
        '{"supervisor_pid": 1, "started_at": 0}',
    ],
    ids=["garbage", "not-an-object", "newer-format", "missing-fields"],
)
def test_a_file_we_did_not_write_is_foreign(state_dir: Path, text: str) -> None:
    (state_dir / STACK_FILE).write_text(text)
    assert why(state_dir) == "foreign"


def test_a_copied_state_directory_is_foreign(state_dir: Path, tmp_path: Path) -> None:
    make_state(state_dir).write()
    copy = tmp_path / "copy"
    shutil.copytree(state_dir, copy)
    assert StackState.load(state_dir).supervisor_pid == os.getpid()
    assert why(copy) == "foreign"


def test_a_symlinked_path_reads_the_same_stack(state_dir: Path, tmp_path: Path) -> None:
    make_state(state_dir).write()
    link = tmp_path / "link"
    link.symlink_to(state_dir)
    assert StackState.load(link) == StackState.load(state_dir)


@pytest.fixture
def live_service() -> Iterator[tuple[HealthServer, list[bool]]]:
    ready = [False]
    server = HealthServer("127.0.0.1", 0, lambda: ready[0])
    server.start()
    try:
        yield server, ready
    finally:
        server.stop()


def test_probe_asks_every_part(state_dir: Path, live_service: tuple[HealthServer, list[bool]]) -> None:
    server, ready = live_service
    with socket.create_server(("127.0.0.1", 0)) as listener:
        infra_port = listener.getsockname()[1]
        infra = PartState(kind="infrastructure", pid=os.getpid(), port=infra_port, restarts=0, log="")
        state = make_state(state_dir, parts={"broker": infra, "ocr": service(server.port, os.getpid())})
        status = state.probe()
        by_name = {p.name: p for p in status.parts}
        assert by_name["broker"].ready
        assert by_name["ocr"].healthy and not by_name["ocr"].ready
        assert not status.ready
        ready[0] = True
        assert state.probe().ready
        assert state.probe().to_json()["parts"][1]["metrics_url"] == f"http://127.0.0.1:{server.port}/metrics"
    assert not state.probe().ready, "a broker that stopped listening is not ready"
    dead = make_state(state_dir, parts={"ocr": service(server.port, pid=None)})
    assert not dead.probe().parts[0].alive and not dead.probe().ready
    assert not make_state(state_dir, parts={"broker": infra}).probe().ready, "a stack without services"


@pytest.fixture
def cli() -> click.Group:
    group = click.Group("pagestream")
    register(group)
    return group


def test_status_says_why_there_is_no_stack(state_dir: Path, cli: click.Group) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    make_state(state_dir, supervisor_pid=proc.pid).write()
    result = CliRunner().invoke(cli, ["status", "--state-dir", str(state_dir)])
    assert result.exit_code == ExitCode.NOT_RUNNING
    assert f"pid {proc.pid}, is gone" in result.output
    result = CliRunner().invoke(cli, ["status", "--json", "--state-dir", str(state_dir)])
    assert json.loads(result.output) == {"running": False, "state_dir": str(state_dir), "parts": []}
    result = CliRunner().invoke(cli, ["env", "--state-dir", str(state_dir)])
    assert result.exit_code != 0 and "is gone" in result.output


def test_only_env_prints_the_password(state_dir: Path, cli: click.Group) -> None:
    make_state(state_dir).write()
    runner = CliRunner()
    for args in (["status"], ["status", "--json"]):
        result = runner.invoke(cli, [*args, "--state-dir", str(state_dir)])
        assert result.exit_code == ExitCode.FAILED, result.output  # the parts are not up
        assert "pagestream:***@127.0.0.1:5433" in result.output
        assert PASSWORD not in result.output
    result = runner.invoke(cli, ["env", "--state-dir", str(state_dir)])
    assert result.exit_code == 0, result.output
    assert f"DATABASE_URL=postgresql://pagestream:{PASSWORD}@127.0.0.1:5433/pagestream" in result.output


def test_cli_settings_point_at_the_running_stack(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_state(state_dir).write()
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "PAGESTREAM_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PAGESTREAM_STATE_DIR", str(state_dir))
    settings = cli_settings()
    assert settings.database_dsn() == f"postgresql://pagestream:{PASSWORD}@127.0.0.1:5433/pagestream"
    assert settings.kafka_bootstrap_servers == "127.0.0.1:19092"
    assert settings.api_url == "http://127.0.0.1:18123"
    StackState.remove(state_dir)
    after = cli_settings()
    assert after.api_url != "http://127.0.0.1:18123", "a stopped stack must not be used"
    assert PASSWORD not in after.database_dsn()
