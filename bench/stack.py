"""A pagestream stack run in-process for a benchmark: started fresh in a temporary state directory,
waited on until every service is ready, stopped afterwards."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2

from bench.machine import claim, release
from bench.progress import say
from pagestream.client import ApiClient
from pagestream.stack.state import StackState
from pagestream.stack.supervisor import ServiceSpec, StackSupervisor, default_services


class BenchStack:
    """A running stack: its supervisor, an API client and a database connection for timing queries."""

    def __init__(self, supervisor: StackSupervisor, startup_seconds: float):
        self.supervisor = supervisor
        self.startup_seconds = startup_seconds
        self.client = ApiClient(supervisor.api_url, timeout=120.0)
        self._db = psycopg2.connect(supervisor.database_url)
        self._db.autocommit = True

    def close(self) -> None:
        self.client.close()
        self._db.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only query against the stack's database."""
        with self._db.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def wait_completed(self, ids: Sequence[str], timeout: float, poll: float = 0.25) -> dict[str, str]:
        """Poll the database until every document in ``ids`` is final; returns id -> status."""
        deadline = time.monotonic() + timeout
        pending = list(ids)
        final: dict[str, str] = {}
        while pending:
            rows = self.query(
                "SELECT id::text, status FROM documents WHERE id::text = ANY(%s) "
                "AND status IN ('completed', 'partial', 'failed')",
                (pending,),
            )
            for doc_id, status in rows:
                final[doc_id] = status
            pending = [d for d in pending if d not in final]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} of {len(ids)} documents not final after {timeout:.0f} s")
            time.sleep(poll)
        return final

    def completed_epochs(self, ids: Sequence[str]) -> list[float]:
        """``completed_at`` of the documents, as Unix times (same clock as ``time.time()``)."""
        rows = self.query(
            "SELECT extract(epoch FROM completed_at) FROM documents WHERE id::text = ANY(%s)", (list(ids),)
        )
        return [float(r[0]) for r in rows if r[0] is not None]

    def page_intervals(self, ids: Sequence[str]) -> list[tuple[float, float]]:
        """``(started_at, completed_at)`` of every page of the documents in a worker, as Unix times."""
        rows = self.query(
            "SELECT extract(epoch FROM started_at), extract(epoch FROM completed_at) FROM pages "
            "WHERE document_id::text = ANY(%s) AND started_at IS NOT NULL",
            (list(ids),),
        )
        return [(float(a), float(b)) for a, b in rows]

    def page_seconds(self, ids: Sequence[str]) -> list[tuple[float, float]]:
        """``(render_seconds, ocr_seconds)`` of every completed page of the documents (from the stored layout)."""
        rows = self.query(
            "SELECT (layout->>'render_seconds')::float, (layout->>'ocr_seconds')::float FROM pages "
            "WHERE document_id::text = ANY(%s) AND status = 'completed'",
            (list(ids),),
        )
        return [(float(r or 0.0), float(o or 0.0)) for r, o in rows]


def in_flight_profile(intervals: Sequence[tuple[float, float]], start: float, end: float) -> dict[int, float]:
    """Seconds of [start, end] during which exactly k of the ``intervals`` were open, by k."""
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    out: dict[int, float] = {}
    level, last = 0, start
    for t, step in points:
        t = min(max(t, start), end)
        out[level] = out.get(level, 0.0) + (t - last)
        level, last = level + step, t
    out[level] = out.get(level, 0.0) + (end - last)
    return {k: v for k, v in sorted(out.items()) if v > 0}


def _services(names: Sequence[str] | None) -> list[ServiceSpec]:
    specs = default_services()
    return specs if names is None else [s for s in specs if s.name in names]


@contextmanager
def running_stack(
    label: str,
    environ: Mapping[str, str] | None = None,
    *,
    services: Sequence[str] | None = None,
    ready_timeout: float = 180.0,
) -> Iterator[BenchStack]:
    """Start a fresh embedded stack (``environ`` overrides on top of this process's environment)."""
    state_dir = Path(tempfile.mkdtemp(prefix="pagestream-bench-"))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "STORAGE_URL")
    }
    env.update(environ or {})
    supervisor = StackSupervisor(state_dir, env, services=_services(services))
    say(
        f"[{label}] starting stack ({', '.join(f'{k}={v}' for k, v in (environ or {}).items()) or 'defaults'}, "
        f"services {', '.join(services if services is not None else [s.name for s in default_services()]) or 'none'})"
    )
    started = time.monotonic()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            supervisor.run(install_signal_handlers=False)
        except BaseException as e:  # noqa: BLE001 - reported to the waiting thread
            failure.append(e)

    thread = threading.Thread(target=run, name="bench-stack", daemon=True)
    thread.start()
    stack: BenchStack | None = None
    data_dir: str | None = None
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if failure:
                raise RuntimeError(f"stack failed to start: {failure[0]}") from failure[0]
            state = StackState.read(state_dir)
            if state is not None and state.probe().ready:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"stack not ready within {ready_timeout:.0f} s (logs in {state_dir / 'logs'})"
                )
            time.sleep(0.5)
        postgres = state.parts.get("postgres")
        data_dir = postgres.data_dir if postgres is not None else None
        if data_dir:
            claim(data_dir)
        startup = time.monotonic() - started
        say(f"[{label}] stack ready in {startup:.1f} s")
        stack = BenchStack(supervisor, startup)
        yield stack
    finally:
        if stack is not None:
            stack.close()
            if data_dir:
                release(data_dir)
        supervisor.request_stop()
        thread.join(120)
        shutil.rmtree(state_dir, ignore_errors=True)
        # Run as root, the embedded PostgreSQL keeps its cluster in /var/tmp/pagestream-<hash of the
        # state dir> (the postgres user cannot reach /tmp/...); that one is this stack's alone.
        if data_dir:
            cluster = Path(data_dir).parent
            if cluster.parent == Path("/var/tmp") and cluster.name.startswith("pagestream-"):  # noqa: S108
                shutil.rmtree(cluster, ignore_errors=True)
