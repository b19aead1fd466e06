"""Render the k8s overlays and run their pagestream containers as local processes (see test_pods.py).

What a pod gets here, and what is approximated (docs/deploy.md, "What the smoke test checks"):
- command/args, workingDir, env and envFrom exactly as rendered; configMapKeyRef/secretKeyRef resolved
  from the rendered ConfigMaps and from SECRETS below (the values the operators would write, mapped to
  the test stack); the image's ENV from the Dockerfile's runtime stage (PATH -> the project venv).
- Transport is the one thing rewritten: the embedded broker speaks PLAINTEXT, so KAFKA_BOOTSTRAP_SERVERS
  points at it and KAFKA_SECURITY_PROTOCOL/SASL/SSL settings are replaced by PLAINTEXT (TLS+SCRAM is only
  checked on a real cluster); S3 is moto's server (S3_ENDPOINT_URL), the bucket of STORAGE_URL kept.
- Filesystem (tests/deploy/sandbox.py): everything read-only, a fresh directory per emptyDir mount, and
  as root the pod's runAsUser/runAsGroup/fsGroup (as another user, a user namespace keeps its uid).
  Secret volumes are not mounted (only the Kafka CA, which PLAINTEXT does not use); memory limits and
  seccomp are not applied.
- Ports: each container's PAGESTREAM_HTTP_PORT must equal the containerPort its probes name; both are
  moved to a free local port. Probes are called like the kubelet: startup, then readiness, then liveness.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
# The containers' /opt/pagestream: this venv, or PAGESTREAM_SMOKE_VENV (e.g. one installed from
# requirements-runtime.lock as the Dockerfile does, to run the pods with the image's dependencies only).
VENV_BIN = Path(os.environ.get("PAGESTREAM_SMOKE_VENV") or Path(sys.executable).parent.parent) / "bin"
SANDBOX = Path(__file__).with_name("sandbox.py")
OUR_IMAGE = re.compile(r"(^|/)pagestream(:|@|$)")  # the image built from ./Dockerfile, any registry
READY_WITHIN_SECONDS = 90.0
TRANSPORT_VARS = (
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CA_LOCATION",
)


def render(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render the overlays (scripts/install-system-packages.sh)"
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "KUBECONFIG": "/dev/null"},
        check=True,
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def image_env() -> dict[str, str]:
    """ENV of the Dockerfile's last stage (the runtime image), PATH mapped to the project venv."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages = re.split(r"^FROM .*$", text, flags=re.M)
    env: dict[str, str] = {}
    for line in stages[-1].splitlines():
        if line.startswith("ENV "):
            env.update(dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line[4:])))
    env = {k: v.strip('"') for k, v in env.items()}
    env["PATH"] = f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    """The test stack's endpoints and the values the operators' Secrets would hold."""

    kafka_bootstrap: str
    database_url: str
    s3_endpoint: str
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)

    def secret(self, name: str, key: str) -> str:
        if name == "pagestream-db-app":  # CloudNativePG's app secret
            u = urlsplit(self.database_url)
            values = {
                "uri": self.database_url,
                "username": u.username or "",
                "password": u.password or "",
                "host": u.hostname or "",
                "port": str(u.port or 5432),
                "dbname": u.path.lstrip("/"),
            }
        elif name == "pagestream-s3":  # created by the operator of the cluster (docs/deploy.md)
            values = {"AWS_ACCESS_KEY_ID": "smoke", "AWS_SECRET_ACCESS_KEY": "smoke"}
        else:
            values = self.secrets.get(name, {})
        assert key in values, f"secret {name} key {key}: not a Secret the operators or docs/deploy.md provide"
        return values[key]


def kafka_user_secrets(docs: list[dict]) -> dict[str, dict[str, str]]:
    """The Strimzi User Operator writes one Secret per KafkaUser, key ``password``."""
    return {
        d["metadata"]["name"]: {"password": "smoke-scram-password"} for d in docs if d["kind"] == "KafkaUser"
    }


def resolve_env(container: dict, configmaps: dict[str, dict[str, str]], stack: Stack) -> dict[str, str]:
    env: dict[str, str] = {}
    for src in container.get("envFrom", []):
        if "configMapRef" in src:
            name = src["configMapRef"]["name"]
            assert name in configmaps, f"envFrom configMap {name} is not rendered"
            env.update(configmaps[name])
        else:
            raise AssertionError(f"unsupported envFrom {src}")
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), str(e["value"])
            )
        elif "secretKeyRef" in e["valueFrom"]:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = stack.secret(ref["name"], ref["key"])
        elif "configMapKeyRef" in e["valueFrom"]:
            ref = e["valueFrom"]["configMapKeyRef"]
            env[e["name"]] = configmaps[ref["name"]][ref["key"]]
        else:
            raise AssertionError(f"unsupported valueFrom {e}")
    return env


def adapt_transport(env: dict[str, str], stack: Stack) -> dict[str, str]:
    """The one rewrite: PLAINTEXT to the embedded broker, moto for S3 (see the module docstring)."""
    env = dict(env)
    if "KAFKA_BOOTSTRAP_SERVERS" in env:
        env["KAFKA_BOOTSTRAP_SERVERS"] = stack.kafka_bootstrap
        for var in TRANSPORT_VARS:
            env.pop(var, None)
        env["KAFKA_SECURITY_PROTOCOL"] = "PLAINTEXT"
    if env.get("STORAGE_URL", "").startswith("s3://"):
        env["S3_ENDPOINT_URL"] = stack.s3_endpoint
        env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return env


@dataclass
class Container:
    """One container of a rendered pod, ready to start."""

    pod: str
    name: str
    init: bool
    argv: list[str]
    env: dict[str, str]
    working_dir: str
    writable: list[tuple[str, str]]  # (host dir, mountPath)
    security: dict
    probes: dict[str, dict]
    port: int | None  # local port of the probes
    grace_seconds: int
    completes: bool = False  # runs to exit 0 (init containers, Job containers)

    @property
    def label(self) -> str:
        return f"{self.pod}/{'init:' if self.init else ''}{self.name}"


def containers_of(docs: list[dict], stack: Stack, workdir: Path) -> list[tuple[str, list[Container]]]:
    """Every workload's pagestream containers (init containers first), per workload, in render order.
    Workloads with replicas 0 are skipped: no pod of theirs ever runs (cdc under the Debezium component)."""
    configmaps = {
        d["metadata"]["name"]: {k: str(v) for k, v in d.get("data", {}).items()}
        for d in docs
        if d["kind"] == "ConfigMap"
    }
    base_env = image_env()
    out = []
    for d in docs:
        if d["kind"] not in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
            continue
        if d["spec"].get("replicas", 1) == 0:
            continue
        pod = d["spec"]["template"]["spec"]
        name = f"{d['kind'].lower()}/{d['metadata']['name']}"
        sc = pod.get("securityContext", {})
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        group = []
        for init, c in [(True, c) for c in pod.get("initContainers", [])] + [
            (False, c) for c in pod["containers"]
        ]:
            if not OUR_IMAGE.search(c["image"]):
                continue
            env = {**base_env, **adapt_transport(resolve_env(c, configmaps, stack), stack)}
            writable = []
            for m in c.get("volumeMounts", []):
                vol = volumes[m["name"]]
                if "emptyDir" in vol and not m.get("readOnly"):
                    host = workdir / f"{d['metadata']['name']}-{c['name']}-{m['name']}"
                    host.mkdir(parents=True)
                    if os.geteuid() == 0:  # as the kubelet does for fsGroup
                        os.chown(host, sc.get("runAsUser", 0), sc.get("fsGroup", sc.get("runAsGroup", 0)))
                    host.chmod(0o2770)
                    writable.append((str(host), m["mountPath"]))
            probes = {k: c[k] for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in c}
            port = None
            if probes:
                ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
                named = {p["httpGet"]["port"] for p in probes.values()}
                assert len(named) == 1, f"{name}/{c['name']}: probes on several ports {named}"
                declared = next(iter(named))
                container_port = ports[declared] if isinstance(declared, str) else int(declared)
                assert env.get("PAGESTREAM_HTTP_PORT") == str(container_port), (
                    f"{name}/{c['name']}: probes call port {container_port} but the service listens on "
                    f"PAGESTREAM_HTTP_PORT={env.get('PAGESTREAM_HTTP_PORT')}"
                )
                port = free_port()
                env["PAGESTREAM_HTTP_PORT"] = str(port)
            csc = {**sc, **c.get("securityContext", {})}
            group.append(
                Container(
                    pod=name,
                    name=c["name"],
                    init=init,
                    argv=list(c.get("command", [])) + list(c.get("args", [])),
                    env=env,
                    working_dir=c.get("workingDir", "/"),
                    writable=writable,
                    security=csc,
                    probes=probes,
                    port=port,
                    grace_seconds=int(pod.get("terminationGracePeriodSeconds", 30)),
                    completes=init or d["kind"] == "Job",
                )
            )
        if group:
            out.append((name, group))
    return out


def sandbox_mode() -> tuple[list[str] | None, str]:
    """How containers are sandboxed here: (unshare command, description), or (None, why not).
    As root: a private mount namespace, and the pod's runAsUser. Otherwise, where unprivileged user
    namespaces are enabled (Debian's default): the same read-only filesystem and emptyDir mounts, but
    the process keeps the invoking user's uid (no other uid is mapped into the namespace)."""
    if not shutil.which("unshare"):
        return None, "unshare (util-linux) is not installed"
    unshare = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        unshare.insert(1, "--map-root-user")
    r = subprocess.run([*unshare, "true"], capture_output=True)
    if r.returncode != 0:
        return (
            None,
            f"{' '.join(unshare)} failed: {r.stderr.decode().strip()} (run as root, or enable user namespaces)",
        )
    return (
        unshare,
        "root: runAsUser applied" if os.geteuid() == 0 else "user namespace: runAsUser not applied",
    )


def sandbox_available() -> str | None:
    """None if containers can be sandboxed here, else why not."""
    unshare, why = sandbox_mode()
    return None if unshare else why


def visible_code() -> list[str]:
    """The checkout and the virtualenv: what the containers run, which must stay visible in the sandbox."""
    paths = sorted({str(ROOT), os.path.realpath(VENV_BIN.parent)})
    return [p for p in paths if not any(p.startswith(q + "/") for q in paths if q != p)]


def expose_interpreter(shadow_root: Path) -> list[tuple[str, str, str]]:
    """(closed dir, child, stand-in) for each ancestor of the real interpreter that others cannot
    traverse: the pod's user must be able to run the venv's python, as /opt/pagestream in the image."""
    out = []
    real = Path(os.path.realpath(VENV_BIN / "python"))
    for parent in list(reversed(real.parents))[1:]:
        if not parent.stat().st_mode & 0o001:
            child = real.relative_to(parent).parts[0]
            shadow = shadow_root / str(len(out))
            (shadow / child).mkdir(parents=True, exist_ok=True)
            for d in (shadow_root, shadow):
                d.chmod(0o755)
            out.append((str(parent), child, str(shadow)))
    return out


class Running:
    """A started container process and its log."""

    def __init__(self, c: Container, log: Path):
        self.c, self.log = c, log
        assert c.security.get("readOnlyRootFilesystem") is True, (
            f"{c.label}: readOnlyRootFilesystem must be true"
        )
        unshare, why = sandbox_mode()
        assert unshare, why
        spec = {
            "argv": c.argv,
            "env": c.env,
            "workingDir": c.working_dir,
            "writable": c.writable,
            "expose": expose_interpreter(log.parent / "expose"),
            "switchUser": os.geteuid() == 0,
            "visible": visible_code(),
            "runAsUser": c.security.get("runAsUser", 0),
            "runAsGroup": c.security.get("runAsGroup", 0),
            "fsGroup": c.security.get("fsGroup", c.security.get("runAsGroup", 0)),
        }
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*unshare, sys.executable, "-I", str(SANDBOX), json.dumps(spec)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={},
            )

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def probe(self, kind: str) -> tuple[bool, str]:
        p = self.c.probes[kind]["httpGet"]
        timeout = self.c.probes[kind].get("timeoutSeconds", 1)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.c.port}{p['path']}", timeout=timeout) as r:
                return 200 <= r.status < 400, f"HTTP {r.status}"
        except urllib.error.HTTPError as e:
            return False, f"HTTP {e.code}: {e.read()[:300]!r}"
        except OSError as e:
            return False, str(e)

    def wait_probe(self, kind: str, bound: float) -> None:
        deadline = time.monotonic() + bound
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.c.label} exited with {self.proc.returncode} before {kind} passed "
                    f"(the kubelet would restart it: CrashLoopBackOff):\n{self.tail()}"
                )
            ok, last = self.probe(kind)
            if ok:
                return
            time.sleep(0.5)
        raise AssertionError(
            f"{self.c.label}: {kind} not passing after {bound:.0f}s ({last}):\n{self.tail()}"
        )

    def wait_exit(self, bound: float) -> int:
        try:
            return self.proc.wait(bound)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.c.label} did not finish within {bound:.0f}s:\n{self.tail()}"
            ) from None

    def terminate(self) -> int | None:
        """SIGTERM, as the kubelet stops a pod; SIGKILL after the grace period. Returns the exit code
        if it stopped in time, else None."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                return self.proc.wait(self.c.grace_seconds)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.proc.returncode

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
