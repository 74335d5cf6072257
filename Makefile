# Two entry points for a fresh machine (see README): `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# The settings default to production (DEBUG off, no dev login, SECRET_KEY required); the
# two commands opt in to development here, explicitly.
DEV_ENV := DEBUG=1 CHAT_DEV_LOGIN=1
# npm ci writes node_modules/.package-lock.json: newer than the lock file means installed.
NODE_STAMP := node_modules/.package-lock.json
# The H5 page's bundle (frontend/ -> static/build/) and the mini-program's client library
# and mp-html (-> miniprogram/lib/, miniprogram/components/), rebuilt when a source is newer.
BUNDLE := static/build/h5.js
MP_BUNDLE := miniprogram/lib/chat-client.js miniprogram/lib/markdown.js miniprogram/components/mp-html/index.js
FRONTEND_SOURCES := $(shell find frontend -type f -not -path 'frontend/tests/*')
# Hashes for every file; no index or wheel folder of this machine written into the lock.
LOCK_OPTIONS := --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links

.PHONY: run test lint format install system-deps build messages lock

# Exact versions with hashes from the lock files (`make lock` writes both from pyproject.toml:
# requirements.lock for production, requirements-dev.lock adds the test tools), then the
# project itself without resolving anything; `pip check` proves the set consistent.
$(STAMP): pyproject.toml requirements-dev.lock
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip check
	touch $(STAMP)

lock:
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet 'pip-tools>=7.4,<8'
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile $(LOCK_OPTIONS) -o requirements.lock pyproject.toml
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile $(LOCK_OPTIONS) --extra dev -o requirements-dev.lock pyproject.toml

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

$(BUNDLE) $(MP_BUNDLE) &: $(NODE_STAMP) $(FRONTEND_SOURCES)
	npm run build

install: $(STAMP) $(NODE_STAMP)

build: $(BUNDLE) $(MP_BUNDLE)

run: $(STAMP) $(BUNDLE) $(MP_BUNDLE)
	$(DEV_ENV) $(PY) manage.py migrate --noinput
	$(DEV_ENV) $(PY) manage.py reap_streams
	$(DEV_ENV) $(PY) manage.py runserver $(HOST):$(PORT)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The admin's Chinese catalog (locale/): collect the strings marked for translation, then
# compile; translate what it reports untranslated or fuzzy and run it again.
messages: $(STAMP)
	PY=$(PY) ./scripts/messages.sh

test: lint $(BUNDLE) $(MP_BUNDLE)
	./scripts/system-deps.sh
	npm test
	$(DEV_ENV) $(PY) -m pytest $(ARGS)
