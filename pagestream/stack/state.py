"""``stack.json``: the one record of a running local stack.

The supervisor writes it (``StackState.write``) whenever a part starts, exits or restarts and
removes it when it stops; ``pagestream up|down|status|env``, the CLI's settings and the benchmarks
read it (``StackState.read``) and nothing else parses the file. What a reader makes of it:

- **missing**: no stack runs in that directory (never started, or stopped cleanly).
- **stale**: the supervisor that wrote it is gone (SIGKILL, a reboot) or its pid now belongs to a
  younger process: no stack runs; the next ``pagestream up`` takes the directory over.
- **foreign**: not a file this code writes (unreadable, not our format) or written for another
  directory (a copied or moved state directory: its pids and ports are another stack's).

All three mean "no stack here"; ``StackState.load`` says which, for messages. The file holds no
secret: the database URL is redacted before it is written, and the embedded database's password
is read from its own 0600 file only by ``database_secret_url`` (for ``pagestream env`` and the
CLI's settings), returned as a ``SecretStr`` so that printing it by accident shows stars.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from pagestream.settings import redact_url
from pagestream.stack._proc import pid_alive, pid_started_at, port_accepts
from pagestream.stack.errors import StackError
from pagestream.stack.postgres import read_password

STACK_FILE = "stack.json"
#: bumped when a reader of an older layout would misread the file
FORMAT = 1
#: /proc gives process start times in whole seconds since boot (btime): allow that much slack
_START_TIME_SLACK = 2.0

PartKind = Literal["infrastructure", "service"]


class NoStackError(StackError):
    """No live stack is recorded in the directory: the file is missing, stale or foreign."""

    reason = "no_stack"

    def __init__(self, why: Literal["missing", "stale", "foreign"], message: str):
        super().__init__(message)
        self.why = why


@dataclass(frozen=True)
class RecentExit:
    """One exit of a supervised service: its code, when (Unix time), and the delay before the restart."""

    exit_code: int
    at: float
    delay: float


@dataclass(frozen=True)
class PartState:
    """One supervised part as the supervisor last saw it (service URLs only for services)."""

    kind: PartKind
    pid: int | None
    port: int
    restarts: int
    log: str
    health_url: str | None = None
    ready_url: str | None = None
    metrics_url: str | None = None
    last_exit_code: int | None = None
    recent_exits: tuple[RecentExit, ...] = ()
    restart_in_seconds: float | None = None
    #: the embedded PostgreSQL's data directory (the benchmarks pin its I/O)
    data_dir: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PartState:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["recent_exits"] = tuple(RecentExit(**e) for e in data.get("recent_exits") or ())
        if values.get("kind") not in ("infrastructure", "service"):
            raise ValueError(f"unknown part kind {values.get('kind')!r}")
        return cls(**values)


@dataclass(frozen=True)
class StackState:
    """What ``stack.json`` records: where each part runs and how to reach it (no secrets)."""

    supervisor_pid: int
    #: Unix time the supervisor started the stack
    started_at: float
    state_dir: str
    bootstrap_servers: str
    #: redacted (``user:***@``); ``database_secret_url`` gives the usable one
    database_url: str
    database_embedded: bool
    storage_url: str
    api_url: str
    auth: Literal["enabled", "disabled"]
    auth_reasons: tuple[str, ...] = ()
    parts: dict[str, PartState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # the one gate every writer passes: a URL with a password never reaches the file
        object.__setattr__(self, "database_url", redact_url(self.database_url))

    # ---- the file ----

    @staticmethod
    def path(state_dir: Path) -> Path:
        """Where the state of the stack rooted at ``state_dir`` is kept."""
        return Path(state_dir) / STACK_FILE

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``stack.json`` (tests and ``jq`` read the same keys)."""
        data = asdict(self)
        data["auth_reasons"] = list(self.auth_reasons)
        for part in data["parts"].values():
            part["recent_exits"] = list(part["recent_exits"])
        return {"format": FORMAT, **data}

    @classmethod
    def from_json(cls, data: Any) -> StackState:
        """Parse a ``stack.json`` object; ``ValueError`` when it is not one this code writes."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("format", FORMAT) != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, this version reads {FORMAT}")
        try:
            state = cls(
                supervisor_pid=int(data["supervisor_pid"]),
                started_at=float(data["started_at"]),
                state_dir=str(data["state_dir"]),
                bootstrap_servers=str(data["bootstrap_servers"]),
                database_url=str(data["database_url"]),
                database_embedded=bool(data["database_embedded"]),
                storage_url=str(data["storage_url"]),
                api_url=str(data["api_url"]),
                auth=data["auth"],
                auth_reasons=tuple(data.get("auth_reasons") or ()),
                parts={str(k): PartState.from_json(v) for k, v in (data.get("parts") or {}).items()},
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"missing or malformed field: {e}") from e
        if state.auth not in ("enabled", "disabled"):
            raise ValueError(f"auth is {state.auth!r}")
        return state

    def write(self) -> None:
        """Atomically replace ``stack.json`` in ``state_dir`` (readers never see half a file)."""
        path = self.path(Path(self.state_dir))
        tmp = path.with_name(f".{STACK_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        os.replace(tmp, path)

    @staticmethod
    def remove(state_dir: Path) -> None:
        """Forget the stack (it stopped): readers see "missing"."""
        with contextlib.suppress(FileNotFoundError):
            StackState.path(state_dir).unlink()

    @classmethod
    def load(cls, state_dir: Path) -> StackState:
        """The live stack recorded in ``state_dir``; ``NoStackError`` says why there is none."""
        state_dir = Path(state_dir).absolute()
        path = cls.path(state_dir)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise NoStackError("missing", f"no stack running in {state_dir}") from None
        except OSError as e:
            raise NoStackError("foreign", f"{path} cannot be read: {e}") from e
        try:
            state = cls.from_json(json.loads(text))
        except ValueError as e:
            raise NoStackError(
                "foreign", f"{path} is not a pagestream stack file ({e}); no stack running in {state_dir}"
            ) from e
        if not _same_directory(Path(state.state_dir), state_dir):
            raise NoStackError(
                "foreign",
                f"{path} was written for {state.state_dir} (a copied or moved state directory); "
                f"no stack running in {state_dir}",
            )
        if not _same_process(state.supervisor_pid, state.started_at):
            raise NoStackError(
                "stale",
                f"no stack running in {state_dir} (its supervisor, pid {state.supervisor_pid}, is gone)",
            )
        return state

    @classmethod
    def read(cls, state_dir: Path) -> StackState | None:
        """The live stack recorded in ``state_dir``, or None (missing, stale or foreign file)."""
        try:
            return cls.load(state_dir)
        except NoStackError:
            return None

    # ---- what readers ask ----

    def database_secret_url(self, environ: Mapping[str, str]) -> SecretStr:
        """The database URL with its password: the embedded cluster's from its 0600 file, an
        external one's from ``DATABASE_URL`` in ``environ`` (the file holds it redacted)."""
        if self.database_embedded:
            password = read_password(Path(self.state_dir) / "postgres")
            return SecretStr(self.database_url.replace(":***@", f":{password}@", 1))
        return SecretStr(environ.get("DATABASE_URL") or self.database_url)

    def services(self) -> dict[str, PartState]:
        """The supervised services (not the embedded broker and PostgreSQL)."""
        return {name: p for name, p in self.parts.items() if p.kind == "service"}

    def probe(self, timeout: float = 1.0) -> StackStatus:
        """Ask every part whether it is up: services on /healthz and /readyz, infrastructure by TCP."""
        return StackStatus(self, tuple(_probe_part(name, part, timeout) for name, part in self.parts.items()))


@dataclass(frozen=True)
class PartStatus:
    """One part as it answers right now."""

    name: str
    part: PartState
    alive: bool
    healthy: bool
    ready: bool

    def to_json(self) -> dict[str, Any]:
        p = self.part
        return {
            "name": self.name,
            "pid": p.pid,
            "alive": self.alive,
            "healthy": self.healthy,
            "ready": self.ready,
            "health_url": p.health_url,
            "ready_url": p.ready_url,
            "metrics_url": p.metrics_url,
            "port": p.port,
            "restarts": p.restarts,
            "log": p.log,
        }


@dataclass(frozen=True)
class StackStatus:
    """A live probe of every part of a recorded stack (what ``pagestream status`` shows)."""

    state: StackState
    parts: tuple[PartStatus, ...]

    @property
    def ready(self) -> bool:
        """Every part answers ready, and there is at least one service."""
        return bool(self.state.services()) and all(p.ready for p in self.parts)

    def to_json(self) -> dict[str, Any]:
        s = self.state
        return {
            "running": True,
            "supervisor_pid": s.supervisor_pid,
            "state_dir": s.state_dir,
            "ready": self.ready,
            "bootstrap_servers": s.bootstrap_servers,
            "database_url": s.database_url,
            "storage_url": s.storage_url,
            "api_url": s.api_url,
            "auth": s.auth,
            "parts": [p.to_json() for p in self.parts],
        }


def probe(url: str, timeout: float = 1.0) -> bool:
    """True if GET ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - local http URLs
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _probe_part(name: str, part: PartState, timeout: float) -> PartStatus:
    alive = pid_alive(part.pid)
    if part.kind == "service":
        healthy = alive and part.health_url is not None and probe(part.health_url, timeout)
        ready = healthy and part.ready_url is not None and probe(part.ready_url, timeout)
    else:
        healthy = ready = alive and port_accepts(part.port, timeout=timeout)
    return PartStatus(name, part, alive, healthy, ready)


def _same_directory(a: Path, b: Path) -> bool:
    """True if ``a`` and ``b`` are one directory (a symlinked path to it counts)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _same_process(pid: int, started_at: float) -> bool:
    """True if ``pid`` runs and is the process that started the stack at ``started_at``: a pid
    recycled by a younger process after the supervisor died does not count."""
    if not pid_alive(pid):
        return False
    began = pid_started_at(pid)
    return began is None or began <= started_at + _START_TIME_SLACK
