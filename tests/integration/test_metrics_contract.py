"""Every pagestream_* metric that the alert rules and the Grafana dashboard query is exposed by a
running service. The ``running_stack`` fixture yields an object with ``metrics_urls: dict[str, str]``
(service name -> its /metrics URL).

Names are taken from ``# HELP``/``# TYPE`` lines, which prometheus_client writes for every
registered metric, even a labelled one that has no label set yet. (In multiprocess mode, used by
the ocr service, only metrics some process has touched appear; the other services import the same
registry, so the union over services still lists every metric.)
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.unit.test_deploy_monitoring import referenced_pagestream_metrics

pytestmark = pytest.mark.integration

_META = re.compile(r"^# (?:HELP|TYPE) (\S+)(?: (\S+))?", re.MULTILINE)


def exposed_names(text: str) -> set[str]:
    """Sample names a Prometheus text exposition can contain, from its metadata lines."""
    names: set[str] = set()
    for m in _META.finditer(text):
        name, kind = m.group(1), m.group(2)
        names.add(name)
        if kind == "histogram":
            names |= {name + "_bucket", name + "_sum", name + "_count"}
        elif kind == "summary":
            names |= {name + "_sum", name + "_count"}
        elif kind == "counter" and not name.endswith("_total"):
            names.add(name + "_total")
    return names


def test_exposed_names_parser() -> None:
    text = "# HELP a_total x\n# TYPE a_total counter\n# HELP h_seconds y\n# TYPE h_seconds histogram\n"
    assert exposed_names(text) == {
        "a_total",
        "h_seconds",
        "h_seconds_bucket",
        "h_seconds_sum",
        "h_seconds_count",
    }


def test_referenced_metrics_are_exposed(request: pytest.FixtureRequest) -> None:
    try:
        running_stack = request.getfixturevalue("running_stack")
    except pytest.FixtureLookupError:
        pytest.skip("fixture running_stack is not provided yet (tests/integration/conftest.py)")
    urls: dict[str, str] = running_stack.metrics_urls
    assert urls, "running_stack exposes no metrics URLs"
    exposed: dict[str, set[str]] = {}
    for service, url in urls.items():
        resp = httpx.get(url, timeout=10.0)
        assert resp.status_code == 200, f"{service}: GET {url} -> {resp.status_code}"
        exposed[service] = exposed_names(resp.text)
    everything = set().union(*exposed.values())
    missing = referenced_pagestream_metrics() - everything
    assert not missing, (
        f"queried by alerts/dashboard but exposed by no service ({sorted(urls)}): {sorted(missing)}"
    )
