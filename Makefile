# pagestream — run `make help` for the targets. Every target installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha256sum | cut -c1-12)
export OMP_THREAD_LIMIT ?= 1

.PHONY: help install demo test test-unit test-integration test-deploy chaos bench lint schemas examples clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock scripts/install-system-packages.sh
	bash scripts/install-system-packages.sh
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP) ## install Debian packages (if missing) and the virtualenv .venv/ with pinned deps

examples: install ## regenerate the example documents under examples/
	$(PY) examples/make_examples.py

demo: install ## start the embedded stack, OCR the examples, print results, stop
	$(VENV)/bin/pagestream demo

test: install ## run the whole test suite against real components
	$(VENV)/bin/ruff check pagestream services tests bench examples
	$(VENV)/bin/ruff format --check pagestream services tests bench examples
	$(VENV)/bin/mypy pagestream services bench
	$(PY) -m pytest -m "not chaos" -q -p no:cacheprovider

test-unit: install ## unit tests only (seconds)
	$(PY) -m pytest tests/unit -q

test-deploy: install ## deploy checks: manifests vs vendored CRDs, alert rule tests (promtool), pod-by-pod smoke test
	$(PY) -m pytest tests/unit/test_deploy_*.py tests/deploy -q

chaos: install ## the full chaos suite
	$(PY) -m pytest -m chaos -q

bench: install ## run the benchmarks and write BENCHMARKS.md
	$(PY) -m bench

lint: install ## ruff (rules and format) and mypy, pinned as in CI
	$(VENV)/bin/ruff check pagestream services tests bench examples
	$(VENV)/bin/ruff format --check pagestream services tests bench examples
	$(VENV)/bin/mypy pagestream services bench

schemas: install ## regenerate schemas/ from the event models
	$(PY) -m pagestream.events.schemas --write

clean: ## remove the virtualenv and local state
	rm -rf $(VENV) .pagestream
