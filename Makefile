# MPO Portal: `make run` to run it, `make test` to test it. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := docker-registry apache2-utils skopeo chromium chromium-driver redis-server

.PHONY: run dev-keys test test-postgres test-production image image-test venv test-deps system-deps lint bench clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed requirements-test.txt
	$(PY) -m pip install -q -r requirements-test.txt
	touch $@

venv: $(VENV)/.installed

## dev-keys: development keys under var/ (once; production passes PORTAL_SECRET_KEY and PORTAL_ENCRYPTION_KEYS)
dev-keys: venv
	$(PY) -m portal.devkeys

## run: development keys, migrate, make an admin if there is none, then the web server and the django-q2 cluster
## (HOST and PORT come from the environment: `make run PORT=9000`; serve has the defaults)
run: dev-keys
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py ensure_admin
	$(PY) manage.py serve

## system-deps: the real servers the tests start (registry, browser), from Debian's packages
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; }; \
	fi

test-deps: $(VENV)/.test-installed system-deps

## test: everything the tests need, then pytest (the tests start their own registries, API emulator and browser)
test: test-deps
	$(PY) -m pytest $(PYTEST_ARGS)

## test-postgres: the same suite on a throwaway PostgreSQL server (Debian's postgresql package)
test-postgres: test-deps
	@dpkg -s postgresql >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; }
	tests/scripts/with-postgres $(PY) -m pytest $(PYTEST_ARGS)

## test-production: several replicas on PostgreSQL + Redis (two web servers, two qclusters, fail-over, outages)
test-production: test-deps
	@dpkg -s postgresql >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; }
	tests/scripts/with-postgres tests/scripts/with-redis $(PY) -m pytest -p no:cacheprovider tests/production $(PYTEST_ARGS)

## image: the container image (Containerfile) as $(IMAGE); BASE=... to build on a base other than a local mmdebstrap one
IMAGE ?= localhost/mpo-portal:latest
image:
	IMAGE=$(IMAGE) BASE=$(BASE) container/build-image

## image-test: the image's roles (migrate, web, worker, probe) on a real PostgreSQL, Redis and registry
image-test: image test-deps
	@dpkg -s postgresql >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; }
	IMAGE=$(IMAGE) tests/scripts/with-postgres $(PY) tests/scripts/image-test

lint: test-deps
	$(VENV)/bin/ruff check .

bench: test-deps
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) var
