"""Every alert rule fires on synthetic series: `promtool test rules` (Debian package prometheus,
installed by scripts/install-system-packages.sh) over deploy/prometheus/tests/*.test.yaml."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
TESTS = PROM / "tests"
# rules file name used by the unit tests -> the groups it holds
SOURCES = {
    "pagestream.rules.yaml": lambda: yaml.safe_load((PROM / "rules" / "pagestream.rules.yaml").read_text())[
        "groups"
    ],
    "debezium.rules.yaml": lambda: yaml.safe_load(
        (ROOT / "deploy" / "k8s" / "components" / "debezium" / "prometheusrule.yaml").read_text()
    )["spec"]["groups"],
}


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, (
        "promtool missing: run `make install` (scripts/install-system-packages.sh installs Debian's prometheus)"
    )
    return path


def write_rules(directory: Path, *, annotations: bool) -> None:
    for name, groups in SOURCES.items():
        groups = groups()
        if not annotations:
            for g in groups:
                for r in g["rules"]:
                    r.pop("annotations", None)
        (directory / name).write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))


def test_rules_are_valid(tmp_path: Path) -> None:
    write_rules(tmp_path, annotations=True)
    out = subprocess.run(
        [promtool(), "check", "rules", *sorted(str(p) for p in tmp_path.glob("*.yaml"))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("test_file", sorted(p.name for p in TESTS.glob("*.test.yaml")))
def test_rule_unit_tests_pass(test_file: str, tmp_path: Path) -> None:
    write_rules(tmp_path, annotations=False)  # the tests pin when and with which labels, not wording
    shutil.copy(TESTS / test_file, tmp_path / test_file)
    out = subprocess.run(
        [promtool(), "test", "rules", test_file], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_fires_in_a_test() -> None:
    alerts = {r["alert"] for groups in SOURCES.values() for g in groups() for r in g["rules"] if "alert" in r}
    fired = set()
    for p in TESTS.glob("*.test.yaml"):
        for t in yaml.safe_load(p.read_text())["tests"]:
            fired |= {a["alertname"] for a in t.get("alert_rule_test", []) if a.get("exp_alerts")}
    assert alerts - fired == set(), "alerts without a test that makes them fire"
    assert fired <= alerts, f"tests of alerts that do not exist: {fired - alerts}"
