"""The stack supervisor: restarts with backoff, stack.json without secrets, CLI status/env/down."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pagestream.cli.stack import register
from pagestream.settings import Settings
from pagestream.stack._proc import pid_alive, wait_until
from pagestream.stack.postgres import PrivatePostgres
from pagestream.stack.state import probe
from pagestream.stack.supervisor import ServiceSpec, StackSupervisor

# A stand-in for a service, to test the supervision mechanism itself (the real services are
# exercised by the end-to-end tests): serves /healthz, /readyz, /metrics and logs its environment.
FAKE_SERVICE = textwrap.dedent("""
    import json, os, time
    from pagestream.metrics import HealthServer
    keys = ["KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "STORAGE_URL", "PAGESTREAM_STATE_DIR",
            "PAGESTREAM_HTTP_PORT", "PAGESTREAM_API_URL", "PAGESTREAM_AUTH", "OMP_THREAD_LIMIT"]
    print("ENV " + json.dumps({k: os.environ.get(k) for k in keys}), flush=True)
    server = HealthServer("127.0.0.1", int(os.environ["PAGESTREAM_HTTP_PORT"]), lambda: True)
    server.start()
    while True:
        time.sleep(1)
""")


def fake_services(*names: str) -> list[ServiceSpec]:
    return [ServiceSpec(name, (sys.executable, "-c", FAKE_SERVICE)) for name in names]


class RecordingPrepare:
    """Stands in for migrate + ensure_topics; remembers the settings it was given."""

    def __init__(self) -> None:
        self.calls: list[Settings] = []

    def __call__(self, settings: Settings) -> None:
        self.calls.append(settings)


def run_in_thread(supervisor: StackSupervisor) -> threading.Thread:
    started = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            supervisor.run(install_signal_handlers=False, on_started=started.set)
        except BaseException as e:  # surfaced below
            errors.append(e)
            started.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert started.wait(120), "supervisor did not start"
    if errors:
        raise errors[0]
    return thread


@pytest.fixture
def external_environ(kafka_bootstrap: str, database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": database_url,
        "STORAGE_URL": f"file://{tmp_path / 'objects'}",
    }


@pytest.fixture
def cli() -> click.Group:
    group = click.Group("pagestream")
    register(group)
    return group


@pytest.fixture
def supervised(tmp_path: Path, external_environ: dict[str, str]) -> Iterator[StackSupervisor]:
    supervisor = StackSupervisor(
        tmp_path / "state",
        external_environ,
        services=fake_services("ingest", "ocr"),
        prepare=RecordingPrepare(),
    )
    thread = run_in_thread(supervisor)
    try:
        yield supervisor
    finally:
        supervisor.request_stop()
        thread.join(60)


def _restarted(supervisor: StackSupervisor, name: str, old_pid: int) -> bool:
    pid = supervisor.pid(name)
    return pid is not None and pid != old_pid


def test_killed_service_is_restarted_with_growing_backoff(supervised: StackSupervisor) -> None:
    port = supervised.port("ocr")
    assert wait_until(lambda: probe(f"http://127.0.0.1:{port}/healthz"), 30)

    delays = []
    for _ in range(2):
        pid = supervised.pid("ocr")
        assert pid is not None
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda pid=pid: _restarted(supervised, "ocr", pid), 30)
        delays.append(time.monotonic() - killed_at)
    assert 0.9 <= delays[0] < 2.5, delays
    assert 1.9 <= delays[1] < 4.5, delays  # doubled

    assert supervised.restarts("ocr") == 2
    assert supervised.restarts("ingest") == 0
    assert supervised.port("ocr") == port  # the port is fixed for the stack's lifetime
    assert wait_until(lambda: probe(f"http://127.0.0.1:{port}/readyz"), 30)
    state = json.loads(supervised.stack_file.read_text())
    assert state["parts"]["ocr"]["restarts"] == 2
    assert state["parts"]["ocr"]["last_exit_code"] == -signal.SIGKILL
    exits = state["parts"]["ocr"]["recent_exits"]
    assert [(e["exit_code"], e["delay"]) for e in exits] == [(-signal.SIGKILL, 1.0), (-signal.SIGKILL, 2.0)]
    assert state["parts"]["ocr"]["pid"] == supervised.pid("ocr")
    log = (supervised.logs_dir / "ocr.log").read_text()
    assert "restart #2" in log


def test_services_get_the_stack_environment(
    supervised: StackSupervisor, external_environ: dict[str, str]
) -> None:
    log_path = supervised.logs_dir / "ocr.log"

    def env_line() -> str | None:
        return next((x for x in log_path.read_text().splitlines() if x.startswith("ENV {")), None)

    assert wait_until(lambda: env_line() is not None, 30)
    env = json.loads(env_line()[4:])  # type: ignore[index]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == external_environ["KAFKA_BOOTSTRAP_SERVERS"]
    assert env["DATABASE_URL"] == external_environ["DATABASE_URL"]
    assert env["STORAGE_URL"] == external_environ["STORAGE_URL"]
    assert env["PAGESTREAM_HTTP_PORT"] == str(supervised.port("ocr"))
    assert env["PAGESTREAM_API_URL"] == f"http://127.0.0.1:{supervised.port('ingest')}"
    assert env["PAGESTREAM_AUTH"] == "enabled"  # Kafka, PostgreSQL and storage are external: keys required
    assert env["OMP_THREAD_LIMIT"] == "1"
    assert env["PAGESTREAM_STATE_DIR"] == str(supervised.state_dir)


def test_embedded_stack_redacts_the_password_and_stops_everything(tmp_path: Path, cli: click.Group) -> None:
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "STORAGE_URL")
    }
    prepare = RecordingPrepare()
    state_dir = tmp_path / "state"
    supervisor = StackSupervisor(
        state_dir, environ, services=fake_services("ingest", "cdc"), prepare=prepare, fast_database=True
    )
    thread = run_in_thread(supervisor)
    try:
        password = (state_dir / "postgres" / "password").read_text().strip()
        assert len(password) >= 16
        assert len(prepare.calls) == 1
        assert prepare.calls[0].database_dsn() == supervisor.database_url
        assert password in supervisor.database_url

        text = supervisor.stack_file.read_text()
        assert password not in text
        state = json.loads(text)
        assert state["database_url"].startswith("postgresql://pagestream:***@127.0.0.1:")
        assert state["storage_url"] == f"file://{state_dir / 'objects'}"
        assert (state["auth"], state["auth_reasons"]) == ("disabled", [])  # all embedded, API on 127.0.0.1
        assert {"broker", "postgres", "ingest", "cdc"} <= set(state["parts"])
        infra_pids = [state["parts"]["broker"]["pid"], state["parts"]["postgres"]["pid"]]
        assert all(pid_alive(p) for p in infra_pids)

        runner = CliRunner()
        assert wait_until(
            lambda: runner.invoke(cli, ["status", "--state-dir", str(state_dir)]).exit_code == 0, 30
        )
        result = runner.invoke(cli, ["status", "--json", "--state-dir", str(state_dir)])
        assert result.exit_code == 0, result.output
        status = json.loads(result.output)
        assert password not in result.output
        assert status["ready"] is True
        by_name = {p["name"]: p for p in status["parts"]}
        assert by_name["cdc"]["healthy"] and by_name["cdc"]["restarts"] == 0
        assert by_name["cdc"]["metrics_url"].endswith("/metrics")

        result = runner.invoke(cli, ["env", "--state-dir", str(state_dir)])
        assert result.exit_code == 0, result.output
        assert f"DATABASE_URL={supervisor.database_url}" in result.output
        assert f"KAFKA_BOOTSTRAP_SERVERS={supervisor.bootstrap_servers}" in result.output
        assert f"PAGESTREAM_API_URL=http://127.0.0.1:{supervisor.port('ingest')}" in result.output
        service_pids = [supervisor.pid("ingest"), supervisor.pid("cdc")]
    finally:
        supervisor.request_stop()
        thread.join(60)
        PrivatePostgres(state_dir / "postgres").destroy()  # may live outside tmp_path (as root)
    assert not thread.is_alive()
    assert not any(pid_alive(p) for p in service_pids + infra_pids)
    assert not supervisor.stack_file.exists()
    result = CliRunner().invoke(cli, ["status", "--state-dir", str(state_dir)])
    assert result.exit_code == 3 and "no stack running" in result.output


def test_second_supervisor_on_the_same_state_dir_is_refused(
    supervised: StackSupervisor, external_environ: dict[str, str]
) -> None:
    other = StackSupervisor(
        supervised.state_dir, external_environ, services=fake_services("ocr"), prepare=RecordingPrepare()
    )
    with pytest.raises(Exception, match="already running"):
        other.start()
    assert supervised.pid("ocr") is not None


DETACHED_SUPERVISOR = textwrap.dedent("""
    import json, os, sys
    from pagestream.stack.supervisor import ServiceSpec, StackSupervisor
    state_dir, script = sys.argv[1], sys.argv[2]
    services = [ServiceSpec(n, (sys.executable, "-c", script)) for n in ("ingest", "persist")]
    StackSupervisor(state_dir, dict(os.environ), services=services, prepare=lambda s: None).run()
""")


def test_down_stops_a_background_stack(
    tmp_path: Path, external_environ: dict[str, str], cli: click.Group
) -> None:
    state_dir = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-c", DETACHED_SUPERVISOR, str(state_dir), FAKE_SERVICE],
        env=external_environ,
        start_new_session=True,
    )
    try:
        assert wait_until(lambda: (state_dir / "stack.json").exists(), 60)
        state = json.loads((state_dir / "stack.json").read_text())
        assert state["supervisor_pid"] == proc.pid
        children = [state["parts"][n]["pid"] for n in ("ingest", "persist")]
        assert all(pid_alive(p) for p in children)

        result = CliRunner().invoke(cli, ["down", "--state-dir", str(state_dir)])
        assert result.exit_code == 0, result.output
        assert proc.wait(5) == 0
        assert not any(pid_alive(p) for p in children)
        result = CliRunner().invoke(cli, ["down", "--state-dir", str(state_dir)])
        assert "no stack running" in result.output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_external_parts_require_api_keys_and_the_log_says_why(
    tmp_path: Path, external_environ: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    environ = {k: v for k, v in external_environ.items() if k != "PAGESTREAM_AUTH"}
    environ["PAGESTREAM_HTTP_HOST"] = "0.0.0.0"
    supervisor = StackSupervisor(
        tmp_path / "state", environ, services=fake_services("ingest"), prepare=RecordingPrepare()
    )
    with caplog.at_level(logging.INFO, logger="pagestream.stack.supervisor"):
        thread = run_in_thread(supervisor)
        try:
            state = json.loads(supervisor.stack_file.read_text())
        finally:
            supervisor.request_stop()
            thread.join(60)
    assert state["auth"] == "enabled"
    assert state["auth_reasons"] == [
        "Kafka is external (KAFKA_BOOTSTRAP_SERVERS is set)",
        "PostgreSQL is external (DATABASE_URL is set)",
        "the object store is external (STORAGE_URL is set)",
        "the API binds to 0.0.0.0 (PAGESTREAM_HTTP_HOST), not a loopback address",
    ]
    assert "API keys are required because Kafka is external" in caplog.text
    assert "not a loopback address" in caplog.text
    assert "DISABLED" not in caplog.text and "127.0.0.1 only" not in caplog.text
