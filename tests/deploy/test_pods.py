"""Pod-by-pod smoke test: every pagestream container of every overlay starts from its rendered spec
and passes its probes, against the embedded broker, a private PostgreSQL and a local S3.

A manifest that renders and validates can still crash-loop (OCR's PROMETHEUS_MULTIPROC_DIR on an empty
emptyDir did): this runs each Deployment's init containers to completion, then its containers, with
their command, env and writable mounts, and calls the probes the kubelet would call. How a pod is
mapped onto this machine, and what is approximated, is in pods.py and docs/deploy.md.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pagestream.settings import Settings
from tests.deploy import pods

OVERLAYS = ("dev", "prod", "prod-debezium")
pytestmark = pytest.mark.integration  # needs the broker, PostgreSQL and Tesseract, like tests/integration
INIT_WITHIN_SECONDS = 120.0


def _why_not() -> str | None:
    return pods.sandbox_available()


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, database_url: str, s3_endpoint: str) -> pods.Stack:
    """The test stack, with the topics and bucket the cluster's operators and docs would create."""
    import boto3

    from pagestream.kafka.admin import ensure_topics

    topics: dict[int, list[str]] = {}
    bucket = None
    for overlay in OVERLAYS:
        for d in pods.render(overlay):
            if d["kind"] == "KafkaTopic":  # what the Strimzi Topic Operator creates
                topics.setdefault(d["spec"]["partitions"], []).append(
                    d["spec"].get("topicName", d["metadata"]["name"])
                )
            if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "pagestream-config":
                bucket = d["data"]["STORAGE_URL"].removeprefix("s3://").split("/")[0]
    for partitions, names in topics.items():
        ensure_topics(
            Settings(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, PAGESTREAM_TOPIC_PARTITIONS=partitions),
            sorted(set(names)),
        )
    if bucket:
        boto3.client(
            "s3",
            endpoint_url=s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id="smoke",
            aws_secret_access_key="smoke",
        ).create_bucket(Bucket=bucket)
    return pods.Stack(kafka_bootstrap=kafka_bootstrap, database_url=database_url, s3_endpoint=s3_endpoint)


def run_workload(name: str, containers: list[pods.Container], logs: Path) -> dict[str, float]:
    """Init (and Job) containers one by one to exit 0, then the containers together until all are ready
    and live, then SIGTERM within the grace period. Returns seconds to ready per container."""
    started: list[pods.Running] = []
    timings = {}
    try:
        for c in containers:
            log = logs / f"{c.label.replace('/', '_').replace(':', '_')}.log"
            t0 = time.monotonic()
            if c.completes:
                r = pods.Running(c, log)
                rc = r.wait_exit(INIT_WITHIN_SECONDS)
                assert rc == 0, f"{c.label} exited {rc} (the pod would never complete or start):\n{r.tail()}"
                timings[c.label] = time.monotonic() - t0
                continue
            started.append(pods.Running(c, log))
        for r in started:
            t0 = time.monotonic()
            assert r.c.probes.get("readinessProbe") and r.c.probes.get("livenessProbe"), (
                f"{r.c.label}: no probes"
            )
            if "startupProbe" in r.c.probes:
                r.wait_probe("startupProbe", pods.READY_WITHIN_SECONDS)
            r.wait_probe("readinessProbe", pods.READY_WITHIN_SECONDS)
            ok, detail = r.probe("livenessProbe")
            assert ok, f"{r.c.label}: liveness fails once ready ({detail}):\n{r.tail()}"
            timings[r.c.label] = time.monotonic() - t0
        for r in started:
            rc = r.terminate()
            assert rc is not None, (
                f"{r.c.label} ignored SIGTERM for {r.c.grace_seconds}s "
                f"(terminationGracePeriodSeconds; the kubelet would SIGKILL it):\n{r.tail()}"
            )
    finally:
        for r in started:
            if r.proc.poll() is None:
                r.kill()
    return timings


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_starts_and_becomes_ready(overlay: str, stack: pods.Stack, tmp_path: Path) -> None:
    reason = _why_not()
    assert reason is None, f"the smoke test needs a private mount namespace: {reason}"
    docs = pods.render(overlay)
    stack.secrets = pods.kafka_user_secrets(docs)
    workloads = pods.containers_of(docs, stack, tmp_path / "volumes")
    names = {n for n, _ in workloads}
    expected = {f"deployment/pagestream-{s}" for s in ("ingest", "ocr", "persist")}
    expected |= set() if overlay == "prod-debezium" else {"deployment/pagestream-cdc"}
    assert expected <= names, f"{overlay}: workloads {names}, expected at least {expected}"
    logs = tmp_path / "logs"
    logs.mkdir()
    for name, containers in workloads:
        run_workload(name, containers, logs)
