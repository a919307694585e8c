# Each target is one line you can also run by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test browser screenshots lint bench faults clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(PY) -m devstack.launcher

test: $(VENV)/.installed
	$(PY) -m pytest -q

# The front desk in Debian's chromium (installed here when missing; Playwright's own download is not used).
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

browser: $(VENV)/.installed $(CHROMIUM)
	CHROMIUM=$(CHROMIUM) $(PY) -m pytest -q tests/browser

# The README's pictures of the desk, taken by the browser test.
screenshots: $(VENV)/.installed $(CHROMIUM)
	DESK_SCREENSHOTS=1 CHROMIUM=$(CHROMIUM) $(PY) -m pytest -q tests/browser -k day_at_the_front_desk

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

bench: $(VENV)/.installed
	$(PY) -m bench.run $(ARGS)

faults: $(VENV)/.installed
	$(PY) -m bench.faults

clean:
	rm -rf $(VENV) .data .pytest_cache
