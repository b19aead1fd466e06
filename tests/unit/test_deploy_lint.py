"""yamllint over deploy/ and the compose file against the Compose Specification schema."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def test_yamllint() -> None:
    yamllint = shutil.which("yamllint")
    if yamllint is None:
        pytest.skip("yamllint not installed (Debian package yamllint)")
    # Run from deploy/ so the ignore patterns in deploy/.yamllint apply.
    out = subprocess.run(
        [yamllint, "-f", "parsable", "-c", ".yamllint", "."],
        cwd=DEPLOY,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_matches_the_compose_spec() -> None:
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text())
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    errors = list(jsonschema.Draft201909Validator(schema).iter_errors(compose))
    assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def test_compose_stack_is_complete() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    for name in ("kafka", "postgres", "minio", "ingest", "cdc", "ocr", "persist", "prometheus", "grafana"):
        assert name in services
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft
    assert "wal_level=logical" in services["postgres"]["command"]
    for name, module in (
        ("ingest", "services.ingest"),
        ("cdc", "services.cdc"),
        ("ocr", "services.ocr"),
        ("persist", "services.persist"),
    ):
        assert services[name]["command"] == ["python", "-m", module]
        assert services[name]["read_only"] is True
    # Every file the compose file mounts exists.
    for svc in services.values():
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("."):
                assert (DEPLOY / src).exists(), src
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"] for j in prom["scrape_configs"]}
    assert {"pagestream-ingest", "pagestream-cdc", "pagestream-ocr", "pagestream-persist"} <= jobs


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.splitlines()[0].startswith("# syntax=")
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2  # multi-stage
    for needle in (
        "tesseract-ocr tesseract-ocr-eng tesseract-ocr-osd",
        "TESSDATA_PREFIX=/usr/share/tesseract-ocr/5/tessdata",
        "OMP_THREAD_LIMIT=1",
        "-r requirements-runtime.lock",
        "pip install --no-deps --no-build-isolation .",
        "USER 10001",
    ):
        assert needle in text, needle
    for path in (
        "requirements-runtime.lock",
        "requirements-build.lock",
        "pyproject.toml",
        "pagestream",
        "services",
    ):
        assert (ROOT / path).exists()
