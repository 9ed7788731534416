# The two commands: `make demo` and `make test`. Both build .venv on first use, installing exactly
# the versions pinned in requirements/lock.txt. `make test` also proves the declared minimum
# versions: the suite runs again in .venv-lowest against requirements/lowest.txt.
# `make lock` regenerates both files after a dependency change (docs/installation.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOWEST := .venv-lowest
LOWEST_STAMP := $(LOWEST)/.installed
# uv only compiles the lock files; it lives in a venv of its own so that it never enters .venv.
UV_VERSION := 0.13.9
UV := .venv-uv/bin/uv
# -qq: only errors (pip's "quiet" still prints a warning per configured index lacking a package).
PIP_INSTALL := python -m pip install -qq --disable-pip-version-check --no-input
COMPILE := $(UV) pip compile --quiet --universal --python-version 3.11 --custom-compile-command 'make lock'

.PHONY: demo test test-deep lint typecheck unit test-lowest bench lock lock-upgrade clean system

# Debian packages the suite needs beside Python: PostgreSQL's server binaries (the review desk's
# PostgreSQL tests start a real server) and Chromium (the review page's browser test).
SYSTEM_PACKAGES := postgresql chromium

$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/$(PIP_INSTALL) -c requirements/lock.txt -e '.[dev]'
	$(BIN)/python -c "$$CHECK_INSTALLED" requirements/lock.txt
	touch $@

# A venv of its own, rebuilt from scratch whenever an input changes, so nothing stale survives.
$(LOWEST_STAMP): pyproject.toml requirements/lowest.txt
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -c "$$CHECK_LOWEST"
	$(LOWEST)/bin/$(PIP_INSTALL) -r requirements/lowest.txt
	$(LOWEST)/bin/$(PIP_INSTALL) --no-deps -e .
	$(LOWEST)/bin/python -c "$$CHECK_INSTALLED" requirements/lowest.txt
	touch $@

demo: $(STAMP)
	@bash examples/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check moderation tests benchmarks
	$(BIN)/ruff format --check moderation tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy moderation

# `make unit PYTEST_ARGS='-k policy'` runs some of it. pytest exits 5 when it collects no test:
# make fails on that like on any other non-zero status (nothing here may mask it with `|| true`).
unit: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

# The whole suite against the lowest versions pyproject.toml allows (requirements/lowest.txt).
test-lowest: $(LOWEST_STAMP) $(STAMP)
	$(LOWEST)/bin/pytest -p no:cacheprovider $(PYTEST_ARGS)

test: system lint typecheck unit test-lowest

system:
	@bash .ci/system-packages $(SYSTEM_PACKAGES)

# The property tests at ten times their examples (tests/profiles.py): for a change to the pure core
# (policy, triage, outcome, replay) or before a release. Minutes longer than `make test`.
test-deep: $(STAMP)
	MODERATION_HYPOTHESIS=deep $(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/policy.py
	$(BIN)/python benchmarks/image.py
	$(BIN)/python benchmarks/cold_start.py
	$(BIN)/python benchmarks/audit.py
	$(BIN)/python benchmarks/replay.py
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/overhead.py

$(UV):
	$(PYTHON) -m venv .venv-uv
	.venv-uv/bin/$(PIP_INSTALL) uv==$(UV_VERSION)

# Regenerate both lock files from pyproject.toml, keeping every pin that still fits
# (`make lock-upgrade` moves everything to the newest versions that fit).
lock: $(UV)
	$(COMPILE) $(LOCK_FLAGS) --all-extras pyproject.toml -o requirements/lock.txt
	$(COMPILE) $(LOCK_FLAGS) --resolution lowest-direct pyproject.toml requirements/lowest.in \
		-o requirements/lowest.txt

lock-upgrade:
	$(MAKE) lock LOCK_FLAGS=--upgrade

clean:
	rm -rf $(VENV) $(LOWEST) .venv-uv build *.egg-info .mypy_cache .pytest_cache .ruff_cache

# Every installed distribution (but pip itself and this project) must be pinned, at the installed
# version, in the file given as argument: a dependency added to pyproject.toml without `make lock`
# would otherwise be installed at whatever version is newest that day.
define CHECK_INSTALLED
import re, sys
from importlib.metadata import distributions

def norm(name): return re.sub(r"[-_.]+", "-", name).lower()

lock = sys.argv[1]
pins = {}  # a name may be pinned once per environment marker (python_full_version < '3.12', ...)
for n, v in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", open(lock).read(), re.M):
    pins.setdefault(norm(n), set()).add(v)
off = sorted(f"{d.name}=={d.version}" for d in distributions() if norm(d.name) not in ("pip", "setuptools", "moderation") and d.version not in pins.get(norm(d.name), ()))
if off:
    sys.exit(f"installed but not pinned in {lock}: {' '.join(off)}\n"
             "Dependencies changed in pyproject.toml? Run `make lock`. Left over from an older lock? `make clean`.")
endef
export CHECK_INSTALLED

# requirements/lowest.txt must pin every runtime dependency at the minimum pyproject.toml declares.
define CHECK_LOWEST
import re, sys, tomllib

def norm(name): return re.sub(r"[-_.]+", "-", name).lower()
def ver(v): return re.sub(r"(\.0)+$$", "", v)

deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
pins = dict((norm(n), ver(v)) for n, v in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", open("requirements/lowest.txt").read(), re.M))
bad = []
for dep in deps:
    m = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[[^]]*\])?\s*>=\s*([^,;\s]+)", dep)
    if not m or pins.get(norm(m[1])) != ver(m[2]):
        bad.append(dep)
if bad:
    sys.exit(f"requirements/lowest.txt does not pin these at their declared minimum: {bad}\n"
             "Give each a `>=` minimum in pyproject.toml and run `make lock`.")
endef
export CHECK_LOWEST
