"""What the numbers were measured on: CPU, cores, RAM, OS, Python, Tesseract."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

TESSERACT_CLI = "/usr/bin/tesseract"


def _first(path: str, pattern: str) -> str | None:
    try:
        match = re.search(pattern, Path(path).read_text(), re.MULTILINE)
    except OSError:
        return None
    return match.group(1).strip() if match else None


def tesseract_cli_version(binary: str = TESSERACT_CLI) -> str:
    """First line of ``tesseract --version`` (Debian's CLI), or why it is missing."""
    exe = binary if Path(binary).exists() else shutil.which("tesseract")
    if exe is None:
        return "not installed"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    text = (out.stdout or out.stderr).strip().splitlines()
    return f"{text[0]} ({exe})" if text else "unknown"


def tesseract_library_version() -> str:
    """The libtesseract the pipeline uses (bundled with the tesserocr wheel)."""
    try:
        import tesserocr

        return str(tesserocr.tesseract_version()).splitlines()[0] + " (tesserocr)"
    except Exception as e:  # noqa: BLE001 - informational only
        return f"unavailable ({type(e).__name__})"


def code_version(repo: Path) -> str:
    """The commit measured, and whether the code differed from it (read-only git queries)."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
        return out.stdout.strip() if out.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown (not a git checkout)"
    dirty = git("status", "--porcelain", "--", "pagestream", "services")
    return commit + (" + uncommitted changes in pagestream/ or services/" if dirty else "")


def describe() -> dict[str, str]:
    """The machine as a flat dict of strings."""
    mem_kb = _first("/proc/meminfo", r"^MemTotal:\s+(\d+)")
    os_name = _first("/etc/os-release", r'^PRETTY_NAME="?([^"\n]+)') or platform.system()
    return {
        "cpu": _first("/proc/cpuinfo", r"^model name\s*:\s*(.+)$") or platform.processor() or "unknown",
        "cores": str(os.cpu_count() or 1),
        "ram": f"{int(mem_kb) / 1024 / 1024:.1f} GiB" if mem_kb else "unknown",
        "os": f"{os_name}, Linux {platform.release()}",
        "python": platform.python_version(),
        "tesseract_cli": tesseract_cli_version(),
        "tesseract_library": tesseract_library_version(),
    }


#: Command-line fragments of processes that belong to the benchmark although they are not in its
#: process tree: the embedded PostgreSQL daemonizes (its data directory names it).
_OWN_MARKS: set[str] = set()
#: Ticks of released (stopped) marked processes, so that stopping them does not look like other load.
_RETIRED = [0]


def claim(mark: str) -> None:
    """Count processes whose command line contains ``mark`` (and their children) as the benchmark's own."""
    _OWN_MARKS.add(mark)


def release(mark: str) -> None:
    """Stop tracking ``mark`` (call just before stopping those processes); keeps the ticks they used."""
    _RETIRED[0] += _ticks(None, {mark})
    _OWN_MARKS.discard(mark)


def _ticks(root: int | None, marks: set[str]) -> int:
    """CPU ticks (user + system, including reaped children) of ``root``, of processes whose command line
    contains one of ``marks``, and of all their descendants."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    roots = {root} if root is not None else set()
    encoded = [m.encode() for m in marks]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
            if encoded:
                cmdline = (entry / "cmdline").read_bytes()
                if any(m in cmdline for m in encoded):
                    roots.add(int(entry.name))
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        ticks[pid] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    total, todo, seen = 0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += ticks.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total


def _own_ticks() -> int:
    return _ticks(os.getpid(), _OWN_MARKS) + _RETIRED[0]


class CpuMeter:
    """Machine-wide CPU use between ``start()`` and ``stop()`` from /proc (1.0 = every core busy),
    and the part of it used by processes outside this benchmark's process tree (other people's work)."""

    def __init__(self) -> None:
        self._start: tuple[int, int, int] = (0, 0, 0)
        self.foreign: float | None = None

    @staticmethod
    def _sample() -> tuple[int, int, int]:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return 0, 0, 0
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields) - idle, sum(fields), _own_ticks()

    def start(self) -> CpuMeter:
        self._start = self._sample()
        return self

    def stop(self) -> float | None:
        """Busy fraction of the whole machine; sets ``foreign`` to the part not used by this process tree."""
        busy, total, mine = self._sample()
        d_total = total - self._start[1]
        if d_total <= 0:
            return None
        d_busy = busy - self._start[0]
        # /proc/stat counts per-CPU jiffies summed over CPUs; per-process ticks are in the same unit.
        self.foreign = max(0.0, (d_busy - (mine - self._start[2])) / d_total)
        return d_busy / d_total
