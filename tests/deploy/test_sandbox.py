"""The smoke test's sandbox enforces what a pod's securityContext and volumes declare."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.deploy import pods

PROBE = """
import os, sys
results = []
for path in ("/tmp/ok", "/etc/pagestream-sandbox-probe", os.path.expanduser("~") + "/x", sys.prefix + "/x"):
    try:
        open(path, "w").close()
        results.append(f"{path}=written")
    except OSError as e:
        results.append(f"{path}={e.errno}")
print(os.getuid(), os.getgid(), ";".join(results))
"""


def test_only_emptydir_mounts_are_writable(tmp_path: Path) -> None:
    reason = pods.sandbox_available()
    if reason:
        pytest.fail(f"the smoke test needs a private mount namespace: {reason}")
    volume = tmp_path / "tmp-volume"
    volume.mkdir()
    if os.geteuid() == 0:
        os.chown(volume, 10001, 10001)
    c = pods.Container(
        pod="probe",
        name="probe",
        init=True,
        argv=["python", "-c", PROBE],
        env={"PATH": f"{pods.VENV_BIN}:/usr/bin:/bin", "HOME": "/nonexistent"},
        working_dir="/tmp",
        writable=[(str(volume), "/tmp")],
        security={"readOnlyRootFilesystem": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
        probes={},
        port=None,
        grace_seconds=5,
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    r = pods.Running(c, logs / "probe.log")
    assert r.wait_exit(30) == 0, r.tail()
    uid, gid, results = r.tail(1).split(" ", 2)
    if os.geteuid() == 0:
        assert (uid, gid) == ("10001", "10001")
    written = dict(item.split("=") for item in results.split(";"))
    assert written.pop("/tmp/ok") == "written" and (volume / "ok").exists()  # the emptyDir, on the host dir
    assert set(written.values()) <= {"30", "13", "2"}, (
        written
    )  # EROFS / EACCES / ENOENT: nothing else writable
    assert not Path("/etc/pagestream-sandbox-probe").exists()
    assert sys.prefix  # the venv stays usable read-only
