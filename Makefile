# The two commands: `make demo` and `make test`. Both set everything up on a machine that has only
# python3 and make: uv is installed into .tools/ if missing (no root), then `uv sync --locked`.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)

.PHONY: demo test lint format sync bench clean

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install -q uv

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked
	touch $@

sync: .venv/.synced

demo: .venv/.synced
	$(UV) run --locked qkf demo

test: .venv/.synced
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .
	$(UV) run --locked pytest

lint: .venv/.synced
	$(UV) run --locked ruff check .

format: .venv/.synced
	$(UV) run --locked ruff format .
	$(UV) run --locked ruff check --fix .

bench: .venv/.synced
	$(UV) run --locked qkf bench all

clean:
	rm -rf .venv .tools runs/demo
