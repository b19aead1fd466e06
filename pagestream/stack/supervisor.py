"""Runs the whole local stack: embedded infrastructure plus the four services, supervised.

Parts not configured from the environment are embedded: the Tansu broker (unless
``KAFKA_BOOTSTRAP_SERVERS``), a private PostgreSQL (unless ``DATABASE_URL``) and a file object
store under the state directory (unless ``STORAGE_URL``). Then the database is migrated, the
topics are created, and each service runs as ``python -m services.<name>`` with its own HTTP
port. A service that exits is restarted with exponential backoff. The live state of the stack
is kept in ``<state>/stack.json`` (``StackState``, secrets redacted) for ``pagestream status``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import ipaddress
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pagestream.exitcodes import ExitCode
from pagestream.logging import setup_logging
from pagestream.retry import Backoff
from pagestream.settings import Settings, redact_url
from pagestream.stack._proc import free_port, terminate
from pagestream.stack.broker import TansuBroker, validation_options
from pagestream.stack.errors import StackError
from pagestream.stack.postgres import PrivatePostgres
from pagestream.stack.state import PartState, RecentExit, StackState

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
LOCK_FILE = "supervisor.lock"
SERVICE_NAMES = ("ingest", "cdc", "ocr", "persist")
RECENT_EXITS_KEPT = 20


@dataclass(frozen=True)
class ServiceSpec:
    """One supervised child: its name and command line."""

    name: str
    argv: tuple[str, ...]


def default_services() -> list[ServiceSpec]:
    """The four pagestream services, each run by this interpreter."""
    return [ServiceSpec(name, (sys.executable, "-m", f"services.{name}")) for name in SERVICE_NAMES]


def is_loopback(host: str) -> bool:
    """True when ``host`` is reachable only from this machine (127.0.0.0/8, ::1, ``localhost``)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to anything


@dataclass(frozen=True)
class AuthDecision:
    """Whether the stack's API runs without API keys, and why keys are (or are not) required."""

    disabled: bool
    reasons: tuple[str, ...]  # the conditions that require API keys (empty when disabled by the rule)
    explicit: bool = False  # PAGESTREAM_AUTH was set by the operator and is honoured as given


def decide_auth(
    environ: Mapping[str, str], *, broker_embedded: bool, database_embedded: bool, storage_embedded: bool
) -> AuthDecision:
    """Auth is off only when Kafka, PostgreSQL and the object store are all embedded AND the
    API binds to a loopback address; an explicit ``PAGESTREAM_AUTH`` always wins."""
    explicit = environ.get("PAGESTREAM_AUTH", "").strip().lower()
    if explicit in ("enabled", "disabled"):
        return AuthDecision(
            disabled=explicit == "disabled", reasons=("PAGESTREAM_AUTH is set",), explicit=True
        )
    reasons = []
    if not broker_embedded:
        reasons.append("Kafka is external (KAFKA_BOOTSTRAP_SERVERS is set)")
    if not database_embedded:
        reasons.append("PostgreSQL is external (DATABASE_URL is set)")
    if not storage_embedded:
        reasons.append("the object store is external (STORAGE_URL is set)")
    host = environ.get("PAGESTREAM_HTTP_HOST") or HOST
    if not is_loopback(host):
        reasons.append(f"the API binds to {host} (PAGESTREAM_HTTP_HOST), not a loopback address")
    return AuthDecision(disabled=not reasons, reasons=tuple(reasons))


@dataclass(frozen=True)
class RestartPolicy:
    """Restart delays: ``initial`` doubling up to ``cap``; back to ``initial`` after ``reset_after`` s up."""

    initial: float = 1.0
    cap: float = 30.0
    reset_after: float = 60.0

    def backoff(self) -> Backoff:
        """One child's restart backoff; no jitter (one supervisor: the delays it logs are the delays)."""
        return Backoff(initial=self.initial, maximum=self.cap, jitter=0.0)


@dataclass
class _Child:
    spec: ServiceSpec
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: Backoff = field(default_factory=lambda: RestartPolicy().backoff())
    restart_at: float | None = None
    last_exit: int | None = None
    #: the latest exits (code, wall time, delay before the restart), shown in stack.json
    recent_exits: deque[RecentExit] = field(default_factory=lambda: deque(maxlen=RECENT_EXITS_KEPT))

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None


def prepare_infrastructure(settings: Settings) -> None:
    """Migrate the database, create the cdc publication and slot, and the topics (idempotent).

    The slot must exist before ingest writes its first outbox row, or that row's event
    would precede the slot and never be streamed.
    """
    from pagestream.cdc.errors import ReplicationSetupError
    from pagestream.cdc.slot import prepare
    from pagestream.db import migrate
    from pagestream.kafka.admin import ensure_topics

    migrate(settings.database_dsn())
    try:
        prepare(
            settings.database_dsn(),
            settings.cdc_slot,
            settings.cdc_publication,
            allow_recreate=settings.cdc_allow_slot_recreate,
        )
    except ReplicationSetupError as e:  # e.g. the slot vanished: `pagestream up` says why and stops
        raise StackError(str(e)) from e
    ensure_topics(settings)


class StackSupervisor:
    """Starts, watches and stops the local stack rooted at ``state_dir``.

    ``environ`` is the environment snapshot read once at the entry point; it decides which
    parts are embedded and is the base environment of every service.
    """

    def __init__(
        self,
        state_dir: Path,
        environ: Mapping[str, str],
        *,
        services: Sequence[ServiceSpec] | None = None,
        prepare: Callable[[Settings], None] = prepare_infrastructure,
        restart_policy: RestartPolicy = RestartPolicy(),
        fast_database: bool = False,
    ):
        self.state_dir = Path(state_dir).absolute()
        self._environ = dict(environ)
        self._specs = list(services) if services is not None else default_services()
        self._prepare = prepare
        self.restart_policy = restart_policy
        self._fast_database = fast_database
        self._broker: TansuBroker | None = None
        self._postgres: PrivatePostgres | None = None
        self._infra_restarts = {"broker": 0, "postgres": 0}
        self._infra_retry_at = 0.0
        self._children: dict[str, _Child] = {}
        self._bootstrap = ""
        self._broker_epoch: float | None = None  # when the embedded (in-memory) broker's topics began
        self._database_url = ""
        self._storage_url = ""
        self._api_url = ""
        self._auth = AuthDecision(disabled=False, reasons=("the stack has not started",))
        self._stop = threading.Event()
        self._lock_fd: int | None = None
        self._started_at = 0.0

    # ---- public surface ----

    @property
    def stack_file(self) -> Path:
        """Path of the JSON state file."""
        return StackState.path(self.state_dir)

    @property
    def logs_dir(self) -> Path:
        """Where each service writes ``<name>.log``."""
        return self.state_dir / "logs"

    @property
    def bootstrap_servers(self) -> str:
        """Kafka bootstrap servers in use."""
        return self._bootstrap

    @property
    def database_url(self) -> str:
        """Database URL in use (secret included: never log it)."""
        return self._database_url

    @property
    def storage_url(self) -> str:
        """Object store URL in use."""
        return self._storage_url

    @property
    def api_url(self) -> str:
        """Base URL of the ingest API."""
        return self._api_url

    def restarts(self, name: str) -> int:
        """How many times the part ``name`` was restarted."""
        if name in self._infra_restarts:
            return self._infra_restarts[name]
        return self._children[name].restarts

    def pid(self, name: str) -> int | None:
        """Current pid of the service ``name`` (None while it waits for a restart)."""
        return self._children[name].pid

    def port(self, name: str) -> int:
        """HTTP port of the service ``name`` (fixed for the stack's lifetime)."""
        return self._children[name].port

    def start(self) -> None:
        """Start the infrastructure, prepare it, then start every service. Stops all on failure."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        self._started_at = time.time()
        try:
            self._start_infrastructure()
            settings = self.settings()
            log.info("preparing database and topics")
            self._prepare(settings)
            self.logs_dir.mkdir(exist_ok=True)
            for spec in self._specs:
                self._children[spec.name] = _Child(
                    spec,
                    free_port(HOST),
                    self.logs_dir / f"{spec.name}.log",
                    backoff=self.restart_policy.backoff(),
                )
            ingest = self._children.get("ingest")
            self._api_url = (
                f"http://{HOST}:{ingest.port}" if ingest else self._environ.get("PAGESTREAM_API_URL", "")
            )
            self._auth = decide_auth(
                self._environ,
                broker_embedded=self._broker is not None,
                database_embedded=self._postgres is not None,
                storage_embedded=not self._environ.get("STORAGE_URL"),
            )
            self._log_auth()
            for child in self._children.values():
                self._spawn(child)
            self.write_state()
        except BaseException:
            self.stop()
            raise

    @property
    def auth(self) -> AuthDecision:
        """Whether the services run without API keys, and why."""
        return self._auth

    def _log_auth(self) -> None:
        host = self._environ.get("PAGESTREAM_HTTP_HOST") or HOST
        if self._auth.disabled:
            if self._auth.explicit:
                log.warning(
                    "authentication is DISABLED (PAGESTREAM_AUTH=disabled, set explicitly); the API binds "
                    "to %s%s",
                    host,
                    "" if is_loopback(host) else ": ANYONE WHO REACHES THAT ADDRESS CAN USE IT",
                )
            else:
                log.warning(
                    "authentication is DISABLED: every part is embedded and the API listens on %s "
                    "(loopback) only; set PAGESTREAM_AUTH=enabled to require API keys anyway",
                    host,
                )
        elif self._auth.explicit:
            log.info("API keys are required (PAGESTREAM_AUTH=enabled)")
        else:
            log.warning(
                "API keys are required because %s; create one with `pagestream apikey create NAME` and "
                "send it as X-API-Key (the CLI reads PAGESTREAM_API_KEY)",
                "; and ".join(self._auth.reasons),
            )

    def settings(self) -> Settings:
        """Settings as the services see them."""
        values: dict[str, Any] = {**self._environ, **self._service_env_common()}
        return Settings(**values)

    def run(
        self, *, install_signal_handlers: bool = True, on_started: Callable[[], None] | None = None
    ) -> None:
        """Start, supervise until SIGINT/SIGTERM or ``request_stop()``, then stop everything."""
        if install_signal_handlers:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self.request_stop())
        try:
            self.start()
            if on_started is not None:
                on_started()
            while not self._stop.wait(0.2):
                self.poll()
        finally:
            self.stop()

    def request_stop(self) -> None:
        """Ask ``run()`` to stop (safe from signal handlers and other threads)."""
        self._stop.set()

    def poll(self) -> None:
        """One supervision step: notice exits, schedule and perform restarts, update stack.json."""
        now = time.monotonic()
        changed = self._watch_infrastructure()
        for child in self._children.values():
            if child.proc is not None:
                code = child.proc.poll()
                if code is None:
                    if now - child.started_at >= self.restart_policy.reset_after:
                        child.backoff.reset()
                    continue
                self._reap(child, code, now)
                changed = True
            elif child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self._spawn(child)
                changed = True
        if changed:
            self.write_state()

    def stop(self) -> None:
        """Stop services (all at once), then PostgreSQL, then the broker; remove stack.json."""
        for child in self._children.values():
            child.restart_at = None
            if child.proc is not None and child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.proc.pid, signal.SIGTERM)
        for child in self._children.values():
            if child.proc is not None:
                terminate(child.proc, 15.0)
                child.proc = None
            if child.log_file is not None:
                child.log_file.close()
                child.log_file = None
        if self._postgres is not None:
            try:
                self._postgres.stop()
            except StackError as e:
                log.error("%s", e)
        if self._broker is not None:
            self._broker.stop()
        StackState.remove(self.state_dir)
        self._release_lock()

    def snapshot(self) -> StackState:
        """The stack as it runs now, as ``stack.json`` records it (database URL redacted)."""
        parts: dict[str, PartState] = {}
        infrastructure: dict[str, TansuBroker | PrivatePostgres | None] = {
            "broker": self._broker,
            "postgres": self._postgres,
        }
        for name, embedded in infrastructure.items():
            if embedded is not None:
                parts[name] = PartState(
                    kind="infrastructure",
                    pid=embedded.pid,
                    port=embedded.port,
                    restarts=self._infra_restarts[name],
                    log=str(embedded.log_path),
                    data_dir=str(embedded.data_dir) if isinstance(embedded, PrivatePostgres) else None,
                )
        for name, child in self._children.items():
            base = f"http://{HOST}:{child.port}"
            parts[name] = PartState(
                kind="service",
                pid=child.pid,
                port=child.port,
                health_url=f"{base}/healthz",
                ready_url=f"{base}/readyz",
                metrics_url=f"{base}/metrics",
                restarts=child.restarts,
                last_exit_code=child.last_exit,
                recent_exits=tuple(child.recent_exits),
                restart_in_seconds=(
                    round(max(0.0, child.restart_at - time.monotonic()), 1)
                    if child.restart_at is not None
                    else None
                ),
                log=str(child.log_path),
            )
        return StackState(
            supervisor_pid=os.getpid(),
            started_at=self._started_at,
            state_dir=str(self.state_dir),
            bootstrap_servers=self._bootstrap,
            database_url=self._database_url,  # redacted by StackState itself
            database_embedded=self._postgres is not None,
            storage_url=self._storage_url,
            api_url=self._api_url,
            auth="disabled" if self._auth.disabled else "enabled",
            auth_reasons=self._auth.reasons,
            parts=parts,
        )

    def state(self) -> dict[str, Any]:
        """``snapshot()`` as the JSON object ``stack.json`` holds (tests index it by key)."""
        return self.snapshot().to_json()

    def write_state(self) -> None:
        """Atomically replace ``stack.json``."""
        self.snapshot().write()

    # ---- internals ----

    def _acquire_lock(self) -> None:
        fd = os.open(self.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StackError(
                f"a stack is already running in {self.state_dir}; stop it with `pagestream down` first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _start_infrastructure(self) -> None:
        env = self._environ
        if env.get("KAFKA_BOOTSTRAP_SERVERS"):
            self._bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
            log.info("using Kafka at %s", self._bootstrap)
        else:
            self._broker = TansuBroker(self.state_dir / "broker", **validation_options(env))
            self._broker.start()
            self._broker_epoch = time.time()
            self._bootstrap = self._broker.bootstrap_servers
        if env.get("DATABASE_URL"):
            self._database_url = env["DATABASE_URL"]
            log.info("using PostgreSQL at %s", redact_url(self._database_url))
        else:
            self._postgres = PrivatePostgres(self.state_dir / "postgres", fast=self._fast_database)
            self._postgres.start()
            self._database_url = self._postgres.url
        if env.get("STORAGE_URL"):
            self._storage_url = env["STORAGE_URL"]
        else:
            objects = self.state_dir / "objects"
            objects.mkdir(exist_ok=True)
            self._storage_url = f"file://{objects}"

    def _watch_infrastructure(self) -> bool:
        """Restart a dead embedded broker or PostgreSQL on the same port; True if one was restarted."""
        changed = False
        now = time.monotonic()
        if now < self._infra_retry_at:
            return False
        try:
            if self._postgres is not None and not self._postgres.running():
                log.error("embedded PostgreSQL is down; restarting it on port %s", self._postgres.port)
                self._infra_restarts["postgres"] += 1
                changed = True
                self._postgres.restart()
            if self._broker is not None and not self._broker.running():
                log.error("embedded broker is down; restarting it (memory storage: topics are recreated)")
                self._infra_restarts["broker"] += 1
                changed = True
                # the in-memory topics are gone: the reconciler (in ocr) re-drives what was in them,
                # once restarted with the new epoch. Stop ocr *before* the broker is back: its clients,
                # closed while rejoining the fresh broker, left groups on Tansu that never assigned
                # partitions to the new ocr's consumers again (new documents stayed `received`).
                ocr = self._children.get("ocr")
                if ocr is not None and ocr.proc is not None:
                    terminate(ocr.proc, 15.0)
                self._broker.restart()
                self._broker_epoch = time.time()
                self._prepare(self.settings())
        except Exception:
            log.exception("restarting embedded infrastructure failed; retrying in 5 s")
            self._infra_retry_at = now + 5.0
        return changed

    def _service_env_common(self) -> dict[str, str]:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self._bootstrap,
            "DATABASE_URL": self._database_url,
            "STORAGE_URL": self._storage_url,
            "PAGESTREAM_STATE_DIR": str(self.state_dir),
            "PAGESTREAM_API_URL": self._api_url,
        }
        if self._broker_epoch is not None:
            # the embedded broker keeps topics in memory: documents last touched before it
            # started lost their events, and the reconciler re-drives them at once
            env["PAGESTREAM_BROKER_EPOCH"] = f"{self._broker_epoch:.3f}"
        return env

    def _child_env(self, child: _Child) -> dict[str, str]:
        env = dict(self._environ)
        env.update(self._service_env_common())
        env.update(
            {
                "PAGESTREAM_HTTP_PORT": str(child.port),
                "PAGESTREAM_AUTH": "disabled" if self._auth.disabled else "enabled",
                "OMP_THREAD_LIMIT": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def _spawn(self, child: _Child) -> None:
        if child.log_file is None:
            child.log_file = child.log_path.open("ab")
        note = (
            "starting"
            if child.restarts == 0
            else f"restart #{child.restarts} (last exit code {child.last_exit})"
        )
        child.log_file.write(
            f"--- pagestream supervisor: {note}: {' '.join(child.spec.argv)} (port {child.port})\n".encode()
        )
        child.log_file.flush()
        # Own process group: a terminal Ctrl-C reaches only the supervisor, which stops in order.
        child.proc = subprocess.Popen(
            list(child.spec.argv),
            stdin=subprocess.DEVNULL,
            stdout=child.log_file,
            stderr=subprocess.STDOUT,
            env=self._child_env(child),
            start_new_session=True,
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        log.info("started %s (pid %s, port %s)", child.spec.name, child.proc.pid, child.port)

    def _reap(self, child: _Child, code: int, now: float) -> None:
        child.last_exit = code
        child.proc = None
        delay = child.backoff.next_delay()
        child.restart_at = now + delay
        log.error("%s exited with code %s; restarting in %.0f s", child.spec.name, code, delay)
        child.recent_exits.append(RecentExit(exit_code=code, at=time.time(), delay=delay))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of a detached supervisor: ``python -m pagestream.stack.supervisor --state-dir DIR``."""
    parser = argparse.ArgumentParser(prog="pagestream-supervisor")
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging("supervisor")  # JSON lines on stderr, redacted like every service's
    supervisor = StackSupervisor(args.state_dir, dict(os.environ))
    try:
        supervisor.run()
    except StackError as e:
        log.error("%s", e)
        return ExitCode.FAILED
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
