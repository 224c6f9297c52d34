# The two commands of the README: `make demo` (the main job) and `make test` (the suite).
# Each sets up what it needs (virtualenv, packages; the broker jars on first broker start).
# The first interpreter that runs and is 3.11+ (pyenv shims may exist but not run).
PYTHON ?= $(shell for p in python3 python3.11 python3.12 python3.13; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: demo test test-slow lint unit integration bench wheel lock clean

# The package (editable) with every extra, at the exact versions of constraints.txt, installed
# by uv (pinned there too, and installed by pip first): it resolves, downloads and installs in
# parallel, in seconds where pip takes minutes.
$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "error: Python 3.11+ is needed (set PYTHON=...)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt uv
	$(BIN)/uv pip install -q --python $(BIN)/python -c constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(BIN)/eventledger demo

# What `make lint` runs (and `make test`, beside the integration tests).
LINT := $(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy && $(BIN)/lint-imports

lint: $(STAMP)
	$(LINT)

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

# The lint, then the unit tests (CPU, no broker, no Ray) run alongside the integration and
# fault tests, at a lower CPU priority (nice): they take what the integration tests leave of
# the cores and hold none of them up. Their output follows, and either stream failing fails
# the target. (The integration tests are CPU-bound too, in starting actors: split over two
# processes on two cores, each test took three to four times as long, and the whole no less.)
test: $(STAMP)
	@nice -n 10 sh -c '$(LINT); lint=$$?; \
	  $(BIN)/pytest -q -m "not slow" -p no:cacheprovider tests/unit; units=$$?; \
	  test $$lint -eq 0 -a $$units -eq 0' > $(VENV)/lint-and-unit.log 2>&1 & checks=$$!; \
	$(BIN)/pytest -q -m "not slow" --durations=10 --ignore=tests/unit; integration=$$?; \
	wait $$checks; checked=$$?; \
	echo "--- make lint, then tests/unit (run alongside) ---"; cat $(VENV)/lint-and-unit.log; \
	test $$integration -eq 0 -a $$checked -eq 0

# The slow group: long scenarios and the harness's own checks, not in `make test` (about
# 30 minutes on 2 cores, two bench smoke runs of about 10 minutes each; docs/testing.md
# lists them).
test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow -p no:cacheprovider

# The Quix Streams peer's own venv (bench/.venv-quix) is built by the harness on first use.
# Options: make bench ARGS="--quick" (see: .venv/bin/python -m bench --help).
bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

# The wheel for `ray job submit` (docs/operations.md, "On a Ray cluster"): dist/eventledger-*.whl.
wheel: $(STAMP)
	rm -rf build dist && $(BIN)/python -m pip wheel -q --no-deps -w dist . && rm -rf build

# Re-resolve the ranges of pyproject.toml into constraints.txt, in a scratch virtualenv.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q --upgrade pip
	.venv-lock/bin/python -m pip install -q -e '.[dev]'
	{ sed -n '1,2p' constraints.txt; .venv-lock/bin/pip freeze --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .venv-lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
