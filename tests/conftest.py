"""Root test configuration."""

from __future__ import annotations

import os

# Debian's and the bundled tesseract are ~8x slower with OpenMP threads on small machines.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

pytest_plugins = ["tests.integration.pipeline_fixtures", "tests.s3_fixtures"]
