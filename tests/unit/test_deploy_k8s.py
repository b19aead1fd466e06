"""Offline checks of deploy/k8s: kustomize renders, built-in kinds pass kubernetes-validate --strict,
custom resources match their CRD schemas (strictly), topics, users and env vars are complete."""

from __future__ import annotations

import copy
import shutil
import subprocess
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import yaml

from pagestream.events.topics import ALL_TOPICS
from pagestream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
KUBERNETES_VERSION = "1.30.0"  # oldest version the manifests must work on

# Settings deliberately left at their defaults in the Deployments, and why.
DELIBERATELY_DEFAULTED = {
    "PAGESTREAM_API_URL": "read by the CLI client only",
    "PAGESTREAM_API_KEY": "read by the CLI client only",
    "S3_ENDPOINT_URL": "unset means AWS S3; set it for MinIO and other S3-compatible stores",
    "TESSDATA_PREFIX": "set in the image (Dockerfile ENV)",
    "PAGESTREAM_CDC_DEBEZIUM_SLOT": "only for the embedded Debezium engine, not used on Kubernetes",
    "PAGESTREAM_SUBMIT_FILE_ROOT": "unset: file:// submit commands are refused with an S3 store",
    "PAGESTREAM_BROKER_EPOCH": "set by the embedded stack only (its broker keeps topics in memory)",
}
# Every Deployment must set these itself (or through the ConfigMap).
REQUIRED_IN_EVERY_SERVICE = {
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CA_LOCATION",
    "DATABASE_URL",
    "PAGESTREAM_HTTP_HOST",
    "PAGESTREAM_HTTP_PORT",
}


def setting_env_names() -> set[str]:
    return {f.alias for f in Settings.model_fields.values() if f.alias}


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@cache
def rendered(overlay: str) -> tuple[dict, ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "KUBECONFIG": "/dev/null"},
    )
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def base_docs() -> list[dict]:
    docs = []
    for p in sorted((K8S / "base").rglob("*.yaml")):
        if p.name != "kustomization.yaml":
            docs += load_all(p)
    for p in sorted((K8S / "components").rglob("*.yaml")):
        if p.name != "kustomization.yaml":
            docs += load_all(p)
    return docs


@cache
def crd_schemas() -> dict[tuple[str, str, str], dict]:
    out = {}
    for p in (K8S / "crds").glob("*.yaml"):
        crd = yaml.safe_load(p.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for v in crd["spec"]["versions"]:
            out[(group, v["name"], kind)] = strict(v["schema"]["openAPIV3Schema"])
    return out


def strict(schema: dict) -> dict:
    """The schema as the API server's strict field validation applies it: unknown fields rejected
    wherever properties are declared and unknown fields are not preserved."""
    s = copy.deepcopy(schema)

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for k, v in node.items():
                # oneOf/anyOf/allOf/not branches only constrain (structural schemas: their
                # properties never declare fields), e.g. Strimzi's {"required": ["pattern"]} choices.
                if k not in ("oneOf", "anyOf", "allOf", "not"):
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(s)
    return s


def is_builtin(doc: dict) -> bool:
    group = doc["apiVersion"].rpartition("/")[0]
    return (
        group == ""
        or group.endswith(".k8s.io")
        and "." not in group.removesuffix(".k8s.io")
        or group in {"apps", "batch", "policy", "autoscaling"}
    )


def validate(doc: dict) -> None:
    import kubernetes_validate

    name = f"{doc['kind']}/{doc['metadata']['name']}"
    if is_builtin(doc):
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            raise AssertionError(f"{name}: {e.message} at {list(e.path)}") from None
        return
    group, _, version = doc["apiVersion"].rpartition("/")
    schema = crd_schemas().get((group, version, doc["kind"]))
    assert schema is not None, f"{name}: no CRD schema for {doc['apiVersion']} in deploy/k8s/crds/"
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str)
    assert not errors, f"{name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates(overlay: str) -> None:
    docs = rendered(overlay)
    assert docs
    for doc in docs:
        validate(doc)


def test_base_and_components_validate() -> None:
    # Base files before kustomize (image names and namespaces not yet set; the schemas allow that).
    for doc in base_docs():
        validate(doc)


def test_strict_validation_rejects_unknown_fields() -> None:
    # The checker must fail on a misspelt field, for built-in kinds and custom resources alike.
    deployment = next(d for d in rendered("prod") if d["kind"] == "Deployment")
    bad = copy.deepcopy(deployment)
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(AssertionError):
        validate(bad)
    topic = next(d for d in rendered("prod") if d["kind"] == "KafkaTopic")
    bad = copy.deepcopy(topic)
    bad["spec"]["partition"] = 3
    with pytest.raises(AssertionError):
        validate(bad)


def test_every_topic_has_a_kafkatopic() -> None:
    for overlay in OVERLAYS:
        topics = {
            d["spec"].get("topicName", d["metadata"]["name"]): d
            for d in rendered(overlay)
            if d["kind"] == "KafkaTopic"
        }
        assert set(ALL_TOPICS) <= set(topics), f"{overlay}: missing {set(ALL_TOPICS) - set(topics)}"
        for t in topics.values():
            if t["spec"]["config"]["cleanup.policy"] == "delete":
                assert t["spec"]["config"]["retention.ms"] > 0
    for t in (d for d in rendered("prod") if d["kind"] == "KafkaTopic"):
        assert t["spec"]["replicas"] == 3 and t["spec"]["config"]["min.insync.replicas"] == 2, t["metadata"][
            "name"
        ]


def test_kafka_is_kraft_with_scram_and_acls() -> None:
    docs = rendered("prod")
    kafka = next(d for d in docs if d["kind"] == "Kafka")
    # Strimzi 1.x: only kafka.strimzi.io/v1 is served, KRaft with node pools is the only mode, Kafka 4.x.
    strimzi = [d for d in docs if d["apiVersion"].startswith("kafka.strimzi.io/")]
    assert {d["apiVersion"] for d in strimzi} == {"kafka.strimzi.io/v1"}
    assert kafka["spec"]["kafka"]["version"].startswith("4.")
    assert kafka["spec"]["kafka"]["metadataVersion"].startswith(kafka["spec"]["kafka"]["version"][:3])
    assert "zookeeper" not in kafka["spec"] and "strimzi.io/kraft" not in kafka["metadata"].get(
        "annotations", {}
    )
    pool = next(d for d in docs if d["kind"] == "KafkaNodePool")
    assert set(pool["spec"]["roles"]) == {"controller", "broker"} and pool["spec"]["replicas"] == 3
    assert all(
        lst["authentication"]["type"] == "scram-sha-512" for lst in kafka["spec"]["kafka"]["listeners"]
    )
    users = {d["metadata"]["name"]: d for d in docs if d["kind"] == "KafkaUser"}
    for d in docs:
        if d["kind"] == "Deployment":
            env = {
                e["name"]: e for c in d["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])
            }
            user = env["KAFKA_SASL_USERNAME"]["value"]
            assert user in users, f"{d['metadata']['name']} uses unknown KafkaUser {user}"
            assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == user
    for u in users.values():
        assert u["spec"]["authentication"]["type"] == "scram-sha-512"
        for acl in u["spec"]["authorization"]["acls"]:
            assert "All" not in acl["operations"], f"{u['metadata']['name']}: least privilege, no All"
            assert acl["resource"].get("name") not in (None, "*")


def test_consumer_groups_have_read_acls() -> None:
    groups = {
        "pagestream-ocr-splitter",
        "pagestream-ocr-worker",
        "pagestream-persist",
        "pagestream-ingest-submit",
    }
    granted = {
        acl["resource"]["name"]
        for d in rendered("prod")
        if d["kind"] == "KafkaUser"
        for acl in d["spec"]["authorization"]["acls"]
        if acl["resource"]["type"] == "group"
    }
    assert groups <= granted


def _deployments(docs: tuple[dict, ...]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}


def test_deployments_are_hardened_and_probed() -> None:
    docs = rendered("prod")
    deps = _deployments(docs)
    assert set(deps) == {f"pagestream-{s}" for s in ("ingest", "cdc", "ocr", "persist")}
    for name, d in deps.items():
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
        assert "emptyDir" in tmp
        for c in pod.get("initContainers", []) + pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], name
            assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])
        c = pod["containers"][0]
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        # Secrets are referenced, never inlined.
        for e in c.get("env", []):
            if any(w in e["name"] for w in ("PASSWORD", "SECRET", "DATABASE_URL")):
                assert "valueFrom" in e and "value" not in e, f"{name}: {e['name']} inlined"
    assert deps["pagestream-cdc"]["spec"]["replicas"] == 1
    assert deps["pagestream-cdc"]["spec"]["strategy"]["type"] == "Recreate"
    assert not any(d["kind"] == "Secret" for d in docs)


def test_autoscaling_pdbs_monitors() -> None:
    docs = rendered("prod")
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "pagestream-ingest"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    so = next(d for d in docs if d["kind"] == "ScaledObject")
    trig = so["spec"]["triggers"][0]
    assert so["spec"]["scaleTargetRef"]["name"] == "pagestream-ocr" and trig["type"] == "kafka"
    assert trig["metadata"]["consumerGroup"] == "pagestream-ocr-worker"
    pdbs = {
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for d in docs
        if d["kind"] == "PodDisruptionBudget"
    }
    monitors = {
        d["spec"]["selector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        for d in docs
        if d["kind"] == "PodMonitor"
    }
    services = set(_deployments(docs))
    assert services <= pdbs and services <= monitors
    assert any(
        d["kind"] == "NetworkPolicy" and d["spec"]["policyTypes"] == ["Ingress", "Egress"] for d in docs
    )


def test_postgres_has_logical_wal_and_replication_role() -> None:
    cluster = next(d for d in rendered("prod") if d["kind"] == "Cluster")
    assert cluster["spec"]["postgresql"]["parameters"]["wal_level"] == "logical"
    assert any(r.get("replication") for r in cluster["spec"]["managed"]["roles"])


def test_every_setting_is_documented_and_set() -> None:
    names = setting_env_names()
    doc = (ROOT / "docs" / "deploy.md").read_text()
    assert not [n for n in names if f"`{n}`" not in doc], "undocumented in docs/deploy.md"
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
        set_anywhere: set[str] = set()
        for name, dep in _deployments(docs).items():
            if dep["spec"].get("replicas") == 0:
                continue
            c = dep["spec"]["template"]["spec"]["containers"][0]
            env = {e["name"] for e in c.get("env", [])}
            for src in c.get("envFrom", []):
                env |= set(configmaps[src["configMapRef"]["name"]])
            missing = REQUIRED_IN_EVERY_SERVICE - env
            assert not missing, f"{overlay}/{name} lacks {missing}"
            set_anywhere |= env
        unset = names - set_anywhere - set(DELIBERATELY_DEFAULTED)
        assert not unset, f"{overlay}: settings neither set nor deliberately defaulted: {unset}"
    assert set(DELIBERATELY_DEFAULTED) <= names, "stale entries in DELIBERATELY_DEFAULTED"


def test_debezium_component_matches_the_relay() -> None:
    docs = rendered("prod-debezium")
    assert _deployments(docs)["pagestream-cdc"]["spec"]["replicas"] == 0
    conn = next(d for d in docs if d["kind"] == "KafkaConnector")["spec"]["config"]
    configmap = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "pagestream-config"
    )["data"]
    assert conn["slot.name"] == configmap["PAGESTREAM_CDC_SLOT"]
    assert conn["publication.name"] == configmap["PAGESTREAM_CDC_PUBLICATION"]
    assert conn["transforms.outbox.route.by.field"] == "type"
    assert conn["transforms.outbox.route.topic.replacement"] == "pagestream.${routedByValue}"
    assert conn["transforms.outbox.table.field.event.key"] == "aggregateid"
    assert conn["transforms.outbox.table.expand.json.payload"] is True
    assert conn["value.converter.schemas.enable"] is False
    assert conn["key.converter"].endswith("StringConverter")
    placed = dict(
        p.split(":header:") for p in conn["transforms.outbox.table.fields.additional.placement"].split(",")
    )
    # The relay's headers (pagestream/events/envelope.py encode_headers).
    from pagestream.events.envelope import encode_headers

    relay = {
        k for k, _ in encode_headers(event_id="i", event_type="t", subject="s", time="x", traceparent="tp")
    }
    literal = {conn[f"transforms.{t}.header"] for t in conn["transforms"].split(",") if t != "outbox"}
    assert relay == set(placed.values()) | literal | {"id"}  # "id": the router's default event-id header


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_sized_from_partitions_per_consumer(overlay: str) -> None:
    """maxReplicaCount = the partitions a worker can usefully own / consumers per pod, and the lag
    counted is that of every topic of the group (the retry topic too)."""
    from pagestream.events.topics import PAGE_OCR_REQUESTED, PAGE_OCR_REQUESTED_RETRY
    from pagestream.workers.page_worker import GROUP  # the worker group and its topics

    docs = rendered(overlay)
    so = next(d for d in docs if d["kind"] == "ScaledObject")
    trig = so["spec"]["triggers"][0]["metadata"]
    assert trig["consumerGroup"] == GROUP
    assert "topic" not in trig, (
        "name no topic: KEDA then sums the lag of all the group's topics (retry included)"
    )
    partitions = {
        d["spec"].get("topicName", d["metadata"]["name"]): d["spec"]["partitions"]
        for d in docs
        if d["kind"] == "KafkaTopic"
    }
    ocr = _deployments(docs)[so["spec"]["scaleTargetRef"]["name"]]
    per_pod = int(_env(ocr["spec"]["template"]["spec"]["containers"][0])["PAGESTREAM_OCR_WORKERS"])
    # roundrobin over both topics: consumer i gets requested-i and retry-i; past the requested
    # topic's partition count a consumer would own only a retry partition.
    assert partitions[PAGE_OCR_REQUESTED_RETRY] == partitions[PAGE_OCR_REQUESTED]
    assert so["spec"]["maxReplicaCount"] == partitions[PAGE_OCR_REQUESTED] // per_pod
    assert partitions[PAGE_OCR_REQUESTED] % per_pod == 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaled_workloads_set_no_replicas(overlay: str) -> None:
    docs = rendered(overlay)
    scaled = {
        d["spec"]["scaleTargetRef"]["name"]
        for d in docs
        if d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")
    }
    assert scaled == {"pagestream-ingest", "pagestream-ocr"}
    for name in scaled:
        assert "replicas" not in _deployments(docs)[name]["spec"], (
            f"{overlay}/{name}: the autoscaler owns replicas"
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pdbs_never_block_a_drain(overlay: str) -> None:
    for d in rendered(overlay):
        if d["kind"] == "PodDisruptionBudget":
            assert "minAvailable" not in d["spec"] and d["spec"]["maxUnavailable"] >= 1, d["metadata"]["name"]
            assert d["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_postgres_synchronizes_the_logical_slot() -> None:
    cluster = next(d for d in rendered("prod") if d["kind"] == "Cluster")
    spec = cluster["spec"]
    major = int(spec["imageName"].rpartition(":")[2].split(".")[0])
    assert major >= 17, (
        "logical slot failover (sync_replication_slots, failover=true slots) needs PostgreSQL 17+"
    )
    assert spec["replicationSlots"]["highAvailability"]["synchronizeLogicalDecoding"] is True
    params = spec["postgresql"]["parameters"]
    assert params["sync_replication_slots"] == "on" and params["hot_standby_feedback"] == "on"
    assert "synchronized_standby_slots" not in params, "CloudNativePG manages it"
    config = next(
        d
        for d in rendered("prod")
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "pagestream-config"
    )
    assert config["data"]["PAGESTREAM_CDC_ALLOW_SLOT_RECREATE"] == "false"


def test_prod_debezium_is_namespaced_and_complete() -> None:
    docs = rendered("prod-debezium")
    cluster_scoped = {"Namespace"}
    for d in docs:
        if d["kind"] not in cluster_scoped:
            assert d["metadata"].get("namespace") == "pagestream", f"{d['kind']}/{d['metadata']['name']}"
    conn = next(d for d in docs if d["kind"] == "KafkaConnector")
    assert conn["spec"]["autoRestart"]["enabled"] is True
    heartbeat = "__debezium-heartbeat." + conn["spec"]["config"]["topic.prefix"]
    topics = {d["spec"].get("topicName", d["metadata"]["name"]) for d in docs if d["kind"] == "KafkaTopic"}
    connect = next(d for d in docs if d["kind"] == "KafkaConnect")
    assert heartbeat in topics
    assert {
        connect["spec"][k] for k in ("configStorageTopic", "offsetStorageTopic", "statusStorageTopic")
    } <= topics
    assert connect["spec"]["metricsConfig"]["type"] == "jmxPrometheusExporter"
    image = connect["spec"]["build"]["output"]["image"]
    assert ":" in image.rpartition("/")[2] and not image.endswith(":latest"), image
    assert any(
        d["kind"] == "PodMonitor"
        and d["spec"]["selector"]["matchLabels"].get("strimzi.io/kind") == "KafkaConnect"
        for d in docs
    )


def test_kafka_and_postgres_are_scraped() -> None:
    monitors = [
        d["spec"]["selector"].get("matchLabels", {}) for d in rendered("prod") if d["kind"] == "PodMonitor"
    ]
    assert {
        "strimzi.io/cluster": "pagestream-kafka",
        "strimzi.io/kind": "Kafka",
    } in monitors  # brokers + Kafka Exporter
    assert any(m.get("cnpg.io/cluster") == "pagestream-db" for m in monitors)
    kafka = next(d for d in rendered("prod") if d["kind"] == "Kafka")
    assert "kafkaExporter" in kafka["spec"] and "metricsConfig" in kafka["spec"]["kafka"]


def test_crds_are_the_vendored_releases() -> None:
    """Every CRD file is a byte-for-byte copy of the release named in crds/README.md (sha256 recorded)."""
    import hashlib
    import re

    readme = (K8S / "crds" / "README.md").read_text()
    recorded = dict(re.findall(r"^\| `([\w.]+\.yaml)` \|.*`([0-9a-f]{64})` \|$", readme, re.M))
    files = {p.name for p in (K8S / "crds").glob("*.yaml")}
    assert files == set(recorded), f"README does not record: {files ^ set(recorded)}"
    for name, digest in recorded.items():
        assert hashlib.sha256((K8S / "crds" / name).read_bytes()).hexdigest() == digest, name
