"""Alert rules and the Grafana dashboard name only metrics that exist, and their copies agree."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "pagestream.rules.yaml"
PROMETHEUS_RULE = ROOT / "deploy" / "k8s" / "base" / "monitoring" / "prometheusrule.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "pagestream.json"
DASHBOARD_K8S = ROOT / "deploy" / "k8s" / "base" / "monitoring" / "pagestream.json"

# Metrics from other exporters: Prometheus itself, Kafka Exporter (Strimzi's kafkaExporter), CloudNativePG's
# default queries (config/manager/default-monitoring.yaml of the release in deploy/k8s/crds/README.md),
# kube-state-metrics, and Strimzi's Kafka Connect JMX rules (components/debezium/connect-metrics-configmap.yaml).
EXPORTER_METRICS = {
    "up",
    "kafka_consumergroup_lag",
    "kafka_topic_partition_current_offset",
    "kafka_topic_partition_oldest_offset",
    "cnpg_pg_replication_slots_active",
    "cnpg_pg_replication_slots_pg_wal_lsn_diff",
    "cnpg_pg_replication_in_recovery",
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_spec_max_replicas",
    "kafka_connect_connector_task_status",
    "kafka_connect_worker_connector_failed_task_count",
}
# pagestream gauges the rules rely on that other parts of issue 11 add to pagestream/metrics.py (the ocr
# reconciler). Listed here until they are registered; test_promised_metrics_are_gauges checks them once they are.
PROMISED_METRICS = {"pagestream_documents_overdue", "pagestream_dlq_depth"}
POSTGRES_QUERIES = ROOT / "deploy" / "k8s" / "base" / "postgres" / "monitoring-queries.yaml"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

PROMQL_WORDS = {
    # functions
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "rate",
    "irate",
    "increase",
    "delta",
    "deriv",
    "histogram_quantile",
    "absent",
    "absent_over_time",
    "clamp_min",
    "clamp_max",
    "abs",
    "topk",
    "bottomk",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "sum_over_time",
    "label_replace",
    "vector",
    "scalar",
    "time",
    "predict_linear",
    "quantile_over_time",
    "changes",
    "resets",
    # keywords
    "by",
    "without",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
}


def registered_metrics() -> dict[str, str]:
    """Exposed sample names of pagestream's metrics -> their type."""
    from prometheus_client import REGISTRY

    import pagestream.metrics  # noqa: F401  (registers every metric)

    out = {}
    for metric in REGISTRY.collect():
        if metric.name.startswith("pagestream_"):
            name = metric.name + ("_total" if metric.type == "counter" else "")
            out[name] = metric.type
    return out


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (identifiers that are not functions, keywords,
    label names inside braces or by()/without() lists, durations or strings)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "{}", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1()", expr)
    expr = re.sub(r"\[[^\]]*\]", "[]", expr)  # range selectors
    expr = re.sub(
        r"(?<![\w:])\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:ms|[smhdwy])?(?![\w:])", "0", expr
    )  # numbers, durations
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {n for n in names if n not in PROMQL_WORDS}


def custom_postgres_metrics() -> set[str]:
    """cnpg_<query>_<column> for each GAUGE/COUNTER column of the Cluster's custom queries."""
    queries = yaml.safe_load(yaml.safe_load(POSTGRES_QUERIES.read_text())["data"]["queries"])
    return {
        f"cnpg_{q}_{col}"
        for q, spec in queries.items()
        for m in spec["metrics"]
        for col, d in m.items()
        if d["usage"] in ("GAUGE", "COUNTER")
    }


def known(name: str, registered: dict[str, str], recorded: set[str]) -> bool:
    if name in EXPORTER_METRICS or name in recorded or name in registered or name in PROMISED_METRICS:
        return True
    if name in custom_postgres_metrics():
        return True
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and registered.get(base) == "histogram":
            return True
    return False


DEBEZIUM_RULE = ROOT / "deploy" / "k8s" / "components" / "debezium" / "prometheusrule.yaml"


def rule_exprs() -> tuple[list[str], set[str]]:
    groups = (
        yaml.safe_load(RULES.read_text())["groups"]
        + yaml.safe_load(DEBEZIUM_RULE.read_text())["spec"]["groups"]
    )
    rules = [r for g in groups for r in g["rules"]]
    return [r["expr"] for r in rules], {r["record"] for r in rules if "record" in r}


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def referenced_pagestream_metrics() -> set[str]:
    """Every pagestream_* sample name the rules and dashboard query (also used by the integration test)."""
    exprs, _ = rule_exprs()
    return {n for e in exprs + dashboard_exprs() for n in metric_names(e) if n.startswith("pagestream_")}


def test_metric_name_parser() -> None:
    assert metric_names('sum by (le) (rate(pagestream_x_bucket{le="300.0", a=~"b.*"}[5m])) > 2 * 0.01') == {
        "pagestream_x_bucket"
    }
    assert metric_names('up{job=~".*"} == 0 and on(instance) absent(foo_total offset 5m)') == {
        "up",
        "foo_total",
    }


def test_alert_metrics_exist() -> None:
    registered = registered_metrics()
    exprs, recorded = rule_exprs()
    unknown = {n for e in exprs for n in metric_names(e) if not known(n, registered, recorded)}
    assert not unknown, f"alert rules use metrics that nothing exposes: {unknown}"


def test_dashboard_metrics_exist() -> None:
    registered = registered_metrics()
    unknown = {n for e in dashboard_exprs() for n in metric_names(e) if not known(n, registered, set())}
    assert not unknown, f"dashboard queries metrics that nothing exposes: {unknown}"


def test_required_alerts_present() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    for wanted in (
        "PagestreamConsumerLagGrowing",
        "PagestreamCdcDisconnected",
        "PagestreamOcrErrorRatioHigh",
        "PagestreamDlqNotEmpty",
        "PagestreamServiceDown",
        "PagestreamLatencySloFastBurn",
        "PagestreamLatencySloSlowBurn",
        # issue 11: database-side slot alerts, absent() per service, 5xx, DLQ growth, pool at max,
        # documents not final
        "PagestreamSlotInactive",
        "PagestreamSlotRetainedWalHigh",
        "PagestreamSlotInvalidated",
        "PagestreamSlotMissing",
        "PagestreamIngestAbsent",
        "PagestreamCdcAbsent",
        "PagestreamOcrAbsent",
        "PagestreamPersistAbsent",
        "PagestreamIngest5xxRatioHigh",
        "PagestreamDlqGrowing",
        "PagestreamOcrAtMaxReplicas",
        "PagestreamDocumentsNotFinal",
    ):
        assert wanted in alerts
    debezium = {
        r["alert"] for g in yaml.safe_load(DEBEZIUM_RULE.read_text())["spec"]["groups"] for r in g["rules"]
    }
    assert "PagestreamConnectTaskFailed" in debezium


def test_slot_alerts_name_the_configured_slot() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "k8s" / "base" / "app" / "config.yaml").read_text())["data"]
    slot = config["PAGESTREAM_CDC_SLOT"]
    groups = yaml.safe_load(RULES.read_text())["groups"]
    slot_rules = next(g for g in groups if g["name"] == "pagestream-replication-slot")["rules"]
    for r in slot_rules:
        assert f'slot_name="{slot}"' in r["expr"], r["alert"]


def test_promised_metrics_are_gauges() -> None:
    """Once pagestream/metrics.py registers them, they must be gauges (the rules read their level)."""
    registered = registered_metrics()
    for name in PROMISED_METRICS & set(registered):
        assert registered[name] == "gauge", name


def test_slo_bucket_exists() -> None:
    # The SLO rules select le="300.0": that bucket boundary must exist in the histogram.
    from pagestream.metrics import DOCUMENT_E2E_SECONDS

    assert 300.0 in DOCUMENT_E2E_SECONDS._upper_bounds
    assert 'le="300.0"' in RULES.read_text()


def test_prometheusrule_is_the_rules_file() -> None:
    plain = yaml.safe_load(RULES.read_text())["groups"]
    cr = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert cr["kind"] == "PrometheusRule" and cr["spec"]["groups"] == plain


def test_dashboard_copies_identical_and_panels_present() -> None:
    assert DASHBOARD.read_bytes() == DASHBOARD_K8S.read_bytes()
    titles = " | ".join(p["title"] for p in json.loads(DASHBOARD.read_text())["panels"]).lower()
    for words in (
        "documents per minute",
        "pages per minute",
        "end-to-end latency",
        "ocr seconds",
        "consumer-group lag",
        "cdc lag",
        "errors",
        "dead letters",
    ):
        assert words in titles
