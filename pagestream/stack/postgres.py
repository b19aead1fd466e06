"""A private PostgreSQL cluster (``wal_level=logical``) run from the machine's server binaries.

Layout under ``state_dir``::

    password            the generated password of superuser ``pagestream`` (mode 0600)
    port                the last port used (reused while it stays free, so URLs stay stable)
    cluster-location    where the cluster lives if not in ``state_dir/cluster`` (see below)
    cluster/data        the data directory          cluster/run   the unix socket directory
    cluster/postgres.log

PostgreSQL refuses to run as root. As root the server runs as the ``postgres`` system user
(``runuser -u postgres --``) and the cluster directory is owned by it; if that user cannot
reach ``state_dir`` (e.g. it lies under ``/root``, mode 0700) the cluster is placed in
``/var/tmp/pagestream-<hash of state_dir>`` instead and that path is recorded in
``cluster-location``.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import pwd
import secrets
import shutil
import stat
import subprocess
from pathlib import Path

from pagestream.stack._proc import free_port, log_tail, pid_alive, port_is_free
from pagestream.stack.errors import BinaryNotFoundError, StackError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
USER = "pagestream"
DATABASE = "pagestream"
SYSTEM_USER = "postgres"
PASSWORD_FILE = "password"  # noqa: S105 - the file's name, not a password
#: sun_path is 108 bytes; longer socket paths make the server fail to start.
_MAX_SOCKET_PATH = 100


def server_bin_dir(version: str | None = None) -> Path:
    """The ``bin`` directory of the installed PostgreSQL server (highest major, or ``version``)."""
    found: dict[int, Path] = {}
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        bindir = Path(initdb).parent
        major = bindir.parent.name
        if major.isdigit() and (bindir / "pg_ctl").is_file() and (bindir / "postgres").is_file():
            found[int(major)] = bindir
    if not found:
        raise BinaryNotFoundError(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found under /usr/lib/postgresql/*/bin; "
            "install the Debian package `postgresql` (`sudo apt-get install postgresql`) "
            "or set DATABASE_URL to use an existing server"
        )
    if version is not None:
        if version.isdigit() and int(version) in found:
            return found[int(version)]
        raise BinaryNotFoundError(
            f"the existing data directory was created by PostgreSQL {version}, but only "
            f"{sorted(found)} is installed; install `postgresql-{version}` or remove the state directory"
        )
    return found[max(found)]


def read_password(state_dir: Path) -> str:
    """The password of the private cluster kept in ``state_dir`` (for clients of a running stack)."""
    try:
        return (Path(state_dir) / PASSWORD_FILE).read_text().strip()
    except OSError as e:
        raise StackError(f"cannot read the embedded database's password in {state_dir}: {e}") from e


class PrivatePostgres:
    """A PostgreSQL cluster private to one state directory, listening on 127.0.0.1 only.

    Superuser ``pagestream`` authenticates with scram-sha-256 and a generated password kept in
    the state directory; database ``pagestream`` exists. An initialized data directory is reused,
    so data survives ``stop()``/``start()``. ``fast=True`` (tests only) turns off fsync,
    synchronous_commit and full_page_writes.
    """

    def __init__(self, state_dir: Path, port: int = 0, *, fast: bool = False, start_timeout: float = 60.0):
        self.state_dir = Path(state_dir).absolute()
        self._requested_port = port
        self._port = port
        self.fast = fast
        self._start_timeout = start_timeout
        self._as_root = os.geteuid() == 0
        self._cluster_dir: Path | None = None
        self._bindir: Path | None = None

    # ---- public surface ----

    @property
    def port(self) -> int:
        """The listening port (0 before ``start()`` when none was requested)."""
        return self._port

    @property
    def password(self) -> str:
        """The superuser password (generated on first use, then read from the state dir)."""
        return self._ensure_password()

    @property
    def url(self) -> str:
        """``postgresql://pagestream:PASSWORD@127.0.0.1:PORT/pagestream`` (contains the secret)."""
        if not self._port:
            raise StackError("PrivatePostgres has no port yet; call start() first")
        return f"postgresql://{USER}:{self.password}@{HOST}:{self._port}/{DATABASE}"

    @property
    def cluster_dir(self) -> Path:
        """Directory holding ``data``, ``run`` and ``postgres.log``."""
        if self._cluster_dir is None:
            self._cluster_dir = self._locate_cluster_dir()
        return self._cluster_dir

    @property
    def data_dir(self) -> Path:
        """The PostgreSQL data directory."""
        return self.cluster_dir / "data"

    @property
    def log_path(self) -> Path:
        """The server log."""
        return self.cluster_dir / "postgres.log"

    @property
    def pid(self) -> int | None:
        """Process id of the postmaster, or None when not running."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first.strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def running(self) -> bool:
        """True while the postmaster of this data directory runs."""
        return self.pid is not None

    def start(self) -> None:
        """Initialize the cluster if needed, start it, and make sure database ``pagestream`` exists."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_dirs()
        initialized = (self.data_dir / "PG_VERSION").is_file()
        version = (self.data_dir / "PG_VERSION").read_text().strip() if initialized else None
        self._bindir = server_bin_dir(version)
        if not initialized:
            self._initdb()
        if self.running():
            # An orphan from a previous run that was killed hard: restart it under our settings.
            log.warning("stopping a PostgreSQL left running in %s", self.data_dir)
            self._pg_ctl("stop", "-m", "fast", "-w", "-t", "60")
        attempts = 1 if self._requested_port else 3
        for attempt in range(attempts):
            self._choose_port(fresh=attempt > 0)
            self._write_config()
            result = self._pg_ctl(
                "start", "-w", "-t", str(int(self._start_timeout)), "-l", str(self.log_path), check=False
            )
            if result.returncode == 0:
                break
            if attempt == attempts - 1 or port_is_free(self._port, HOST):
                raise StackError(
                    f"PostgreSQL did not start on {HOST}:{self._port} (pg_ctl exit {result.returncode}): "
                    f"{result.stdout.strip()}\nlog {self.log_path}:\n{log_tail(self.log_path)}"
                )
        (self.state_dir / "port").write_text(f"{self._port}\n")
        self._ensure_database()
        log.info(
            "postgres ready", extra={"port": self._port, "data_dir": str(self.data_dir), "pid": self.pid}
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown: running transactions are rolled back). Idempotent."""
        if self._bindir is None:
            if not (self.data_dir / "PG_VERSION").is_file():
                return
            self._bindir = server_bin_dir((self.data_dir / "PG_VERSION").read_text().strip())
        if not self.running():
            return
        result = self._pg_ctl("stop", "-m", "fast", "-w", "-t", "60", check=False)
        if result.returncode != 0 and self.running():
            raise StackError(f"PostgreSQL did not stop: {result.stdout.strip()}")
        # Start again on the same port: clients keep their URL. (A bind probe may call the
        # port busy while clients' connections linger in TIME_WAIT; PostgreSQL binds anyway.)
        if self._port:
            self._requested_port = self._port

    def restart(self) -> None:
        """Stop and start again on the same port; data is kept."""
        if self._port:
            self._requested_port = self._port
        self.stop()
        self.start()

    def destroy(self) -> None:
        """Stop the server and delete the cluster and the state files (all data is lost)."""
        self.stop()
        shutil.rmtree(self.cluster_dir, ignore_errors=True)
        for name in (PASSWORD_FILE, "port", "cluster-location"):
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / name).unlink()
        self._cluster_dir = None

    def __enter__(self) -> PrivatePostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- internals ----

    def _ensure_password(self) -> str:
        path = self.state_dir / PASSWORD_FILE
        if path.is_file():
            return read_password(self.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(24)  # URL-safe: no escaping needed in DATABASE_URL
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        return password

    def _system_user(self) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise BinaryNotFoundError(
                "PostgreSQL refuses to run as root and there is no `postgres` system user to run it as; "
                "install the Debian package `postgresql` (it creates the user) or run as a normal user"
            ) from None

    def _can_reach(self, path: Path) -> bool:
        """True if the postgres system user can traverse every directory down to ``path``."""
        if shutil.which("runuser") is None:
            raise BinaryNotFoundError(
                "running PostgreSQL as root needs `runuser` (Debian package util-linux)"
            )
        result = subprocess.run(
            ["runuser", "-u", SYSTEM_USER, "--", "test", "-x", str(path)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
        return result.returncode == 0

    def _locate_cluster_dir(self) -> Path:
        record = self.state_dir / "cluster-location"
        if record.is_file():
            recorded = Path(record.read_text().strip())
            if recorded.is_dir():
                return recorded
        local = self.state_dir / "cluster"
        if not self._as_root:
            return local
        self._system_user()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self._can_reach(self.state_dir):
            return local
        digest = hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:16]
        # A predictable name in a shared directory: _prepare_dirs refuses one it did not make safely.
        elsewhere = Path("/var/tmp") / f"pagestream-{digest}"  # noqa: S108 - checked in _prepare_dirs
        record.write_text(f"{elsewhere}\n")
        log.info("postgres user cannot reach %s; cluster placed in %s", self.state_dir, elsewhere)
        return elsewhere

    def _prepare_dirs(self) -> None:
        cluster = self.cluster_dir
        if self._as_root:
            owner = self._system_user()
            cluster.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = cluster.lstat()  # not stat(): a planted symlink would have us chown its target
            if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (0, owner.pw_uid):
                raise StackError(
                    f"{cluster} is not a directory of root or postgres (a symlink, or uid {st.st_uid}); remove it"
                )
            for sub in (cluster / "data", cluster / "run"):
                sub.mkdir(mode=0o700, exist_ok=True)
            self.log_path.touch(mode=0o600, exist_ok=True)
            for path in (cluster, cluster / "data", cluster / "run", self.log_path):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        else:
            for sub in (cluster / "data", cluster / "run"):
                sub.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(cluster / "data", 0o700)

    def _run(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a server binary, as the postgres system user when we are root."""
        cmd = ["runuser", "-u", SYSTEM_USER, "--", *args] if self._as_root else args
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        result = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.cluster_dir,
            env=env,
        )
        if check and result.returncode != 0:
            raise StackError(
                f"{Path(args[0]).name} failed (exit {result.returncode}):\n{result.stdout.strip()}"
            )
        return result

    def _bin(self, name: str) -> str:
        """Path of PostgreSQL's ``name`` program, from the server version chosen at start."""
        if self._bindir is None:
            raise StackError(f"no PostgreSQL server binaries chosen yet (start() first) for {name}")
        return str(self._bindir / name)

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run([self._bin("pg_ctl"), "-D", str(self.data_dir), *args], check=check)

    def _initdb(self) -> None:
        pwfile = self.cluster_dir / ".initdb-pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.password + "\n")
        try:
            if self._as_root:
                owner = self._system_user()
                os.chown(pwfile, owner.pw_uid, owner.pw_gid)
            self._run(
                [
                    self._bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    USER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-instructions",
                ]
            )
        finally:
            with contextlib.suppress(FileNotFoundError):
                pwfile.unlink()
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as f:
            f.write(
                "\n# pagestream: settings managed by pagestream (rewritten at every start)\n"
                "include_if_exists = 'pagestream.conf'\n"
            )

    def _choose_port(self, *, fresh: bool) -> None:
        if self._requested_port and not fresh:
            self._port = self._requested_port
            return
        if not fresh:
            with contextlib.suppress(OSError, ValueError):
                last = int((self.state_dir / "port").read_text().strip())
                if last and port_is_free(last, HOST):
                    self._port = last
                    return
        self._port = free_port(HOST)

    def _write_config(self) -> None:
        sockdir = self.cluster_dir / "run"
        sockets = str(sockdir) if len(f"{sockdir}/.s.PGSQL.{self._port}") <= _MAX_SOCKET_PATH else ""
        lines = {
            "listen_addresses": f"'{HOST}'",
            "port": str(self._port),
            "unix_socket_directories": "'" + sockets.replace("'", "''") + "'",
            "wal_level": "logical",
            "max_wal_senders": "20",
            "max_replication_slots": "20",
            "max_connections": "200",
            "password_encryption": "'scram-sha-256'",
            "logging_collector": "off",
        }
        if self.fast:
            lines.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        path = self.data_dir / "pagestream.conf"
        path.write_text("".join(f"{k} = {v}\n" for k, v in lines.items()))
        if self._as_root:
            owner = self._system_user()
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def _ensure_database(self) -> None:
        import psycopg2

        conn = psycopg2.connect(
            host=HOST,
            port=self._port,
            user=USER,
            password=self.password,
            dbname="postgres",
            connect_timeout=10,
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            conn.close()
