# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Real data and NAS-Bench-201 ground truth live beside the repository (see README).
SHARED ?= $(abspath ../shared/data)

.PHONY: install demo test docs postgres chromium clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0" || $(BIN)/pip install -q "torch>=2.5,<2.15"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The multi-machine storage tests start a throwaway PostgreSQL on 127.0.0.1.
postgres:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	    $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }

# The report tests render report.html in headless Chromium and check the screenshot.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	    $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; }

demo: $(STAMP)
	SSNAS_DATA=$${SSNAS_DATA:-$(SHARED)/cifar10-jpeg} SSNAS_NB201_TABLE=$${SSNAS_NB201_TABLE:-$(SHARED)/benchmarks/nb201.csv} \
	  $(BIN)/ssnas search --out runs/demo-$$(date +%Y%m%d-%H%M%S)
	@echo "make demo: ssnas search on its defaults, a 2-minute budget on NB201 (docs: benchmarks, time budget)"

test: $(STAMP) postgres chromium
	$(BIN)/mypy  # src/ssnas, settings in pyproject.toml [tool.mypy]
	$(BIN)/mkdocs build --strict --site-dir $$(mktemp -d)  # docs/: a broken link, snippet or API reference fails
	$(BIN)/pytest -q -n auto --dist loadfile

# The documentation site (mkdocs.yml, docs/) at http://127.0.0.1:8000 while you edit it.
docs: $(STAMP)
	$(BIN)/mkdocs serve

clean:
	rm -rf $(VENV) runs .pytest_cache site
