# Salient Studio. `make demo` runs the demo studies end to end; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
# `make test` talks to the real services; override these to point elsewhere.
TEST_DATABASE_URL ?= $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/test)
TEST_BROKER_URL ?= $(or $(CELERY_BROKER_URL),redis://127.0.0.1:6379/0)
# Every run ends with its 25 slowest tests (setup included), so a CI log says where the suite's time goes.
PYTEST_ARGS ?= --durations=25
# TEST_WORKERS=2: two pytest-xdist workers; each test module runs whole on one worker, the slowest modules first,
# each worker on a Redis database and a PostgreSQL test database of its own (tests/parallel.py). The default since
# two-worker runs came out green on three CPUs (README, "The suite's time"); TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
XDIST_ARGS = $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Python writes the bytecode of what it imports (its default), even where the environment says not to
# (PYTHONDONTWRITEBYTECODE=1 on this project's CI machines): otherwise every process compiles torch, Django and the
# rest again, ~7.5 s per process that imports torch (14 s -> 5.4 s), and the suite starts dozens of them.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install fashion-mnist browser system-packages migrate demo serve worker beat lint test test-fast clean mutation \
	screenshots

$(STAMP): requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-compile torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q --no-compile -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

# Debian packages: the real Fashion-MNIST of the built-in benchmark, and the browser of the page tests.
APT_INSTALL = $(SUDO) apt-get install -y -q $(1) >/dev/null || { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q $(1) >/dev/null; } || { echo "could not install Debian's $(1): run 'apt-get install $(1)'" >&2; exit 1; }

fashion-mnist:
	@dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || { echo "installing Debian's dataset-fashion-mnist"; $(call APT_INSTALL,dataset-fashion-mnist); }

browser:
	@command -v chromium >/dev/null || { echo "installing Debian's chromium"; $(call APT_INSTALL,chromium); }

system-packages: fashion-mnist browser

migrate: install
	$(BIN)/python manage.py migrate -v0
	$(BIN)/python manage.py collectstatic --noinput -v0

demo: migrate fashion-mnist
	$(BIN)/python manage.py demo $(if $(FULL),--full)

# A PNG of every researcher and worker page, desktop (1366 px) and phone (390 px), in DIR/desktop and DIR/phone.
# Its own small site: a fresh SQLite database and files under DIR/.site (never var/db.sqlite3), no model training.
DIR ?= var/screenshots
screenshots: install browser
	rm -rf $(DIR)/.site && mkdir -p $(DIR)
	env -u DATABASE_URL -u CELERY_BROKER_URL SALIENT_VAR_DIR=$(abspath $(DIR))/.site $(BIN)/python manage.py migrate -v0
	env -u DATABASE_URL -u CELERY_BROKER_URL SALIENT_VAR_DIR=$(abspath $(DIR))/.site $(BIN)/python manage.py screenshots --out $(DIR)

# gunicorn on GUNICORN_BIND (127.0.0.1:8000); WEB_CONCURRENCY workers x GUNICORN_THREADS threads.
serve: migrate
	$(BIN)/gunicorn -c studio/gunicorn_config.py studio.wsgi

# One Celery worker per queue (`make worker`), or the one named (`make worker QUEUE=evidence`).
QUEUES := evidence default periodic
CONCURRENCY_evidence ?= 1
CONCURRENCY_default ?= 2
CONCURRENCY_periodic ?= 1
CELERY_WORKER = $(BIN)/celery -A workers worker --loglevel=info -Q $(1) -n $(1)@%h --concurrency=$(CONCURRENCY_$(1))

worker: install
ifdef QUEUE
	$(if $(filter $(QUEUE),$(QUEUES)),,$(error QUEUE=$(QUEUE) is not one of: $(QUEUES)))
	$(call CELERY_WORKER,$(QUEUE))
else
	trap 'kill 0' INT TERM; $(foreach q,$(QUEUES),$(call CELERY_WORKER,$(q)) &) wait
endif

beat: install
	mkdir -p var
	$(BIN)/celery -A workers beat --loglevel=info --schedule var/celerybeat-schedule

# ruff (settings in pyproject.toml) and the import contracts (pyproject.toml [tool.importlinter]); `make test` runs it first.
lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint install system-packages
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) $(BIN)/python -m pytest $(XDIST_ARGS) $(PYTEST_ARGS)

# The inner loop: no lint, and no slow, browser, Celery-worker or PostgreSQL test (the marker expression of
# [tool.mutmut] pytest_add_cli_args in pyproject.toml); SQLite and the embedded broker unless DATABASE_URL says.
FAST_MARKERS = $(shell $(BIN)/python -c "import tomllib; a = tomllib.load(open('pyproject.toml', 'rb'))['tool']['mutmut']['pytest_add_cli_args']; print(a[a.index('-m') + 1])")

# One process unless TEST_WORKERS is given (on the command line or in the environment).
FAST_XDIST_ARGS = $(if $(filter command line environment,$(origin TEST_WORKERS)),$(XDIST_ARGS))

test-fast: install
	$(BIN)/python -m pytest -m "$(FAST_MARKERS)" $(FAST_XDIST_ARGS) $(PYTEST_ARGS)

clean:
	rm -rf var .pytest_cache

# Mutation testing of the security-critical modules ([tool.mutmut] in pyproject.toml); prints the survivors.
# `make mutation MUTANTS='annotation.tokens*'` mutates one module. Slow: not part of `make test`.
MUTANTS ?=
mutation: install
	rm -rf mutants
	nice -n 10 $(BIN)/mutmut run $(MUTANTS) || true
	$(BIN)/mutmut results
