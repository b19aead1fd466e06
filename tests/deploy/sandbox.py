"""Start one container's command the way the kubelet would, on this machine (no container runtime).

Run inside a private mount namespace (``unshare --mount --propagation private``, as root or with
``--map-root-user``) with one
JSON argument (see ``tests/deploy/pods.py``): it makes every mounted filesystem read-only
(readOnlyRootFilesystem), bind-mounts a fresh host directory at each emptyDir ``mountPath`` (the only
writable places, besides /dev/shm as in a pod), changes to ``workingDir``, drops to the pod's
``runAsUser``/``runAsGroup`` with ``fsGroup`` as supplementary group, and execs the container's
command with exactly the given environment. Standard library only: it runs before anything else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

KEEP_WRITABLE = ("/proc", "/sys", "/dev")  # kernel filesystems; /dev/shm stays writable, as in a pod


def mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if not any(point == k or point.startswith(k + "/") for k in KEEP_WRITABLE):
                points.append(point)
    return sorted(set(points), key=len)


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def visible_inside(spec: dict, host_dir: str, mount_path: str) -> list[tuple[str, str]]:
    """(path, where it goes in the emptyDir's host directory) for the code lying below ``mount_path``."""
    prefix = mount_path.rstrip("/") + "/"
    return [
        (keep, os.path.join(host_dir, os.path.relpath(keep, mount_path)))
        for keep in spec.get("visible", [])
        if keep.startswith(prefix)
    ]


def main() -> None:
    spec = json.loads(sys.argv[1])
    # Directories the interpreter lies under that other users may not traverse (e.g. /root/.pyenv):
    # show a traversable stand-in holding only the needed child, as an image would have it in /opt.
    for closed, child, shadow in spec.get("expose", []):
        mount("--bind", os.path.join(closed, child), os.path.join(shadow, child))
        mount("--rbind", shadow, closed)
    for host_dir, mount_path in spec["writable"]:  # mount points, made while the filesystem is writable
        for _, inside in visible_inside(spec, host_dir, mount_path):
            os.makedirs(inside, exist_ok=True)
    for point in mount_points():
        try:
            mount("-o", "remount,bind,ro", point)
        except subprocess.CalledProcessError as e:
            if point == "/":
                raise SystemExit(f"sandbox: cannot make / read-only: {e.stderr.decode().strip()}") from None
    for host_dir, mount_path in spec["writable"]:
        if not os.path.isdir(mount_path):
            raise SystemExit(
                f"sandbox: emptyDir mountPath {mount_path} does not exist on this machine; "
                "tests/deploy can only mount at existing directories"
            )
        # The code under test (checkout, virtualenv) may lie below an emptyDir's mountPath (a clone in
        # /tmp, and /tmp an emptyDir): keep it visible there, read-only, as the image has it elsewhere.
        for keep, inside in visible_inside(spec, host_dir, mount_path):
            mount("--rbind", keep, inside)
            mount("-o", "remount,bind,ro", inside)
        mount("--rbind", host_dir, mount_path)
        mount("-o", "remount,bind,rw", mount_path)  # a bind mount starts with its source's (now ro) flags
    os.chdir(spec["workingDir"])
    if spec.get("switchUser", True):
        os.setgroups([spec["fsGroup"]])
        os.setgid(spec["runAsGroup"])
        os.setuid(spec["runAsUser"])
    argv = spec["argv"]
    os.execvpe(argv[0], argv, spec["env"])


if __name__ == "__main__":
    main()
