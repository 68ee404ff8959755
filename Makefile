# Two commands for a newcomer: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
APT_PACKAGES := sip-tester baresip-core

.PHONY: demo test setup system-packages venv lint bench clean

demo: setup
	$(BIN)/sip-router demo

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python -m bench.run

setup: system-packages venv

# SIPp (Debian's sip-tester) and baresip place the real calls in the end-to-end tests.
system-packages:
	@missing=""; \
	command -v sipp >/dev/null || missing="$$missing sip-tester"; \
	command -v baresip >/dev/null || missing="$$missing baresip-core"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "Please install:$$missing (e.g. sudo apt-get install$$missing)"; exit 1; \
	  fi; \
	fi

venv: $(BIN)/sip-router

$(BIN)/sip-router: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

lint: setup
	$(BIN)/ruff format --check router tests bench
	$(BIN)/ruff check router tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
