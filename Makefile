# newsdedup: make demo (the main job, from nothing), make test (the suite, from nothing).
# make venv: .venv with the pinned packages and the `newsdedup` command (.venv/bin/newsdedup).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)

.PHONY: demo test venv lint bench pg-start pg-stop clean up down status

venv: $(VENV)/.installed

$(VENV)/.installed: requirements-dev.txt pyproject.toml
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
	@UV=$$(command -v uv || echo $(UV)); \
	  [ -x $(PY) ] || $$UV venv --quiet --python 3.11 $(VENV); \
	  $$UV pip install --quiet --python $(PY) -r requirements-dev.txt; \
	  $$UV pip install --quiet --python $(PY) --no-deps -e .; \
	  $$UV pip install --quiet --python $(PY) --no-deps --target $(VENV)/compose-spec docker-compose==1.29.2
	@touch $@

demo: venv
	@bash scripts/demo.sh

test: venv
	@bash scripts/test.sh

lint: venv
	$(VENV)/bin/ruff check .

bench: venv
	@bash scripts/bench.sh

# make up EXECUTOR=celery WORKERS=2: the CeleryExecutor with a private Redis and N workers (default: local).
EXECUTOR ?= local
WORKERS ?= 2
up: venv
	@NEWSDEDUP_EXECUTOR=$(EXECUTOR) NEWSDEDUP_CELERY_WORKERS=$(WORKERS) bash scripts/stack.sh up

down:
	@bash scripts/stack.sh down

status:
	@bash scripts/stack.sh status || true

pg-start:
	@scripts/pg.sh start

pg-stop:
	@scripts/pg.sh stop

clean:
	-scripts/pg.sh destroy
	rm -rf .demo .airflow
