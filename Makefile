# Entry points: test, test-all, check-dist, wheel, check-wheel, bench, bench-instr, conformance, lint, clean,
# fuzz (the stdlib-vs-uvloop_like differential test, long: FUZZ_EXAMPLES=5000),
# sanitize (libuv, uvl.c and the native core _core.c under ASan+UBSan in
# .venv-sanitize, then the unit suite; docs/sanitize.md).
# Each bootstraps a virtualenv ($(VENV)) with $(PYTHON) and installs what it needs.
#
# What runs where: `make test` runs the unit suite (with the framework tests,
# marker `frameworks`) on the default core (native on CPython), the unit suite
# on the Python core (test-pure), the unit suite under PYTHONASYNCIODEBUG=1,
# the reliability suite (tests/reliability), conformance on both cores and
# lint, on $(PYTHON).  test-all's per-interpreter columns run the unit suite
# without the framework tests (test-unit-core) on each interpreter's default
# core; the framework and reliability suites run once per CI.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.uvloop_like-installed
BENCH_STAMP := $(VENV)/.uvloop_like-bench
SOURCES := pyproject.toml setup.py build_ffi.py uvloop_like/_native/uvl.c vendor/fetch_libuv.py uvloop_like/_core.c uvloop_like/_native/uvl_core_api.h
PYTEST_FLAGS ?= -q
HYPOTHESIS := 'hypothesis>=6.100,<7'
# The frameworks of docs/recipes.md (tests/test_recipes.py; anyio is above); granian's wheels: CPython.
RECIPES := 'hypercorn>=0.14' 'granian>=2.5; platform_python_implementation == "CPython"'

.PHONY: test test-unit test-unit-core test-pure conformance-pure test-debug test-reliability fuzz sanitize test-all check-dist check-wheel wheel conformance bench bench-instr lint clean dev docs

dev: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) $(SOURCES)
	@# --prefer-binary: an older wheel beats building from source (PyPy 3.9 gets
	@# cryptography, for trustme, as a wheel; the newest needs Rust and crates.io).
	$(PY) -m pip install -q --prefer-binary 'setuptools>=77' wheel 'cffi>=1.15; python_version < "3.13"' \
		'cffi>=1.17; python_version >= "3.13"' 'pytest>=7' 'pytest-timeout>=2' 'aiohttp>=3.8' 'trustme>=1.0' 'uvicorn>=0.36' 'pytest-asyncio>=0.23' 'anyio>=4' 'gunicorn>=21' \
		'blockbuster>=1.5; platform_python_implementation != "PyPy"' \
		$(RECIPES) \
		$(HYPOTHESIS) \
		'pyopenssl>=23; platform_python_implementation != "PyPy"' 'pyopenssl>=23,<25; platform_python_implementation == "PyPy"'
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	$(PY) -c "import uvloop_like, sys; print('uvloop_like on', sys.version.split()[0], 'libuv', uvloop_like.libuv_version())"
	touch $(STAMP)

test: test-unit test-pure test-debug test-reliability conformance lint

UNIT := tests --ignore=tests/conformance --ignore=tests/reliability
# The framework tests (aiohttp, uvicorn, pytest-asyncio: slow, and about those
# frameworks more than about the loop) and the load tests marked `once` run
# once, in test-unit.
NO_FRAMEWORKS := -m "not frameworks and not once"

test-unit: $(STAMP)
	$(PY) -m pytest $(UNIT) $(PYTEST_FLAGS)

# test-all's column: the unit suite without the framework tests.
test-unit-core: $(STAMP)
	$(PY) -m pytest $(UNIT) $(NO_FRAMEWORKS) $(PYTEST_FLAGS)

# The unit suite on the Python core (UVLOOP_LIKE_PURE=1).  test-unit runs the
# default core: on CPython the native one (uvloop_like/_core.c), and the
# session stops at once if it did not build; on PyPy the Python one, which
# test-unit has then covered, so this target says so and passes.
IS_CPYTHON = $(PY) -c "import platform, sys; sys.exit(platform.python_implementation() != 'CPython')"
test-pure: $(STAMP)
	@$(IS_CPYTHON) || { echo "test-pure: PyPy runs only the Python core (test-unit ran it); skipped"; exit 0; } && \
		UVLOOP_LIKE_PURE=1 $(PY) -m pytest $(UNIT) $(NO_FRAMEWORKS) $(PYTEST_FLAGS)

test-debug: $(STAMP)
	PYTHONASYNCIODEBUG=1 $(PY) -m pytest $(UNIT) $(NO_FRAMEWORKS) $(PYTEST_FLAGS)

# Fault injection, load and lifetime checks on both loops, plus the stdlib vs
# uvloop_like differential test with a small, derandomized example count.
# (A venv made before hypothesis joined the test dependencies gets it here.)
test-reliability: $(STAMP)
	@$(PY) -c "import hypothesis" 2>/dev/null || $(PY) -m pip install -q --prefer-binary $(HYPOTHESIS)
	FUZZ_DERANDOMIZE=1 $(PY) -m pytest tests/reliability $(PYTEST_FLAGS)

# The differential test (tests/reliability/test_differential.py) with many
# random examples: make fuzz FUZZ_EXAMPLES=20000.  A failure prints the
# shrunk operation list and a blob to replay it (@reproduce_failure).
FUZZ_EXAMPLES ?= 5000
fuzz: $(STAMP)
	@$(PY) -c "import hypothesis" 2>/dev/null || $(PY) -m pip install -q --prefer-binary $(HYPOTHESIS)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest tests/reliability/test_differential.py $(PYTEST_FLAGS) \
		--timeout=0 --hypothesis-show-statistics

# CPython's test_asyncio on both cores: the default (native on CPython), then
# the Python core (on CPython; on PyPy the default is the Python core).
conformance: $(STAMP)
	$(PY) -m pytest tests/conformance $(PYTEST_FLAGS)
	@$(IS_CPYTHON) || exit 0; $(MAKE) --no-print-directory conformance-pure

conformance-pure: $(STAMP)
	UVLOOP_LIKE_PURE=1 $(PY) -m pytest tests/conformance $(PYTEST_FLAGS)

# mypy --strict on a typed user's file: the public API's annotations and stubs.
lint: $(STAMP)
	$(PY) -m pip install -q 'ruff==0.17.6' 'mypy==2.4.1; python_version >= "3.10"'
	$(PY) -m ruff check uvloop_like tests bench build_ffi.py setup.py vendor/fetch_libuv.py docs/gen_plots.py docs/nav_hook.py
	$(PY) -m mypy --strict --no-incremental tests/typing/usage.py

# The unit suite on every supported interpreter installed here (CPython 3.9-3.13
# from pyenv or PATH, PyPy 3.9 as pypy3), one venv each: .venv-3.9 ... .venv-pypy3.
# TEST_ALL_ONLY="3.9 pypy3" restricts the run; a summary per interpreter ends it.
test-all:
	bash .ci/test-all.sh

# libuv, uvl.c and _core.c built with -fsanitize=address,undefined (in a copy
# of the tree, into .venv-sanitize), the unit suite run on the native core and
# the scheduler tests on the Python core, with the runtimes preloaded; any
# sanitizer report fails it.  SANITIZE_TESTS="tests/test_tcp.py" narrows it.
sanitize:
	PYTHON=$(PYTHON) bash .ci/sanitize.sh

# The sdist holds libuv, every module and both licences, and installs into a
# fresh venv with no network (and stops with one clear line with no compiler);
# then check-wheel.
check-dist:
	bash .ci/check-dist.sh
	bash .ci/check-wheel.sh

# A manylinux_2_28 (or older) wheel for $(PYTHON) in dist/, built from the
# sdist and repaired by auditwheel.
wheel:
	bash .ci/build-wheel.sh

# make wheel, then the wheel installs into a fresh venv with no compiler on
# PATH (CC=/bin/false) and passes a smoke test (TCP, TLS, subprocess, DNS).
check-wheel:
	bash .ci/check-wheel.sh

bench: $(STAMP)
	@test -f $(BENCH_STAMP) || { $(PY) -m pip install -q uvloop || echo "uvloop not installable here: benchmarking without it"; touch $(BENCH_STAMP); }
	@# wrk (Debian's package) drives the HTTP workloads; without it a Python client does.
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -q wrk >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q wrk >/dev/null 2>&1; }; }; } || \
		echo "wrk not installable here: the HTTP workloads use the Python client"
	$(PY) -m bench

# Instructions per operation under valgrind's callgrind (the loop's process only),
# side by side for every loop; about 10 minutes.  BENCH_ARGS="--only call_soon*" narrows it.
bench-instr: $(STAMP)
	@test -f $(BENCH_STAMP) || { $(PY) -m pip install -q uvloop || echo "uvloop not installable here: benchmarking without it"; touch $(BENCH_STAMP); }
	@command -v valgrind >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -q valgrind >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q valgrind >/dev/null 2>&1; }; }; } || \
		{ echo "valgrind is not installed and not installable here"; exit 1; }
	$(PY) -m bench --instr $(BENCH_ARGS)

# The documentation site (mkdocs.yml) into site/; its hook docs/gen_plots.py
# draws the benchmark figures from docs/bench/bench-run.json first.
DOCS_STAMP := $(VENV)/.uvloop_like-docs
DOCS_DEPS := 'mkdocs>=1.6,<2' 'mkdocs-material>=9.5,<10' 'mkdocstrings[python]>=1,<2' 'matplotlib>=3.7,<4'

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -q --prefer-binary $(DOCS_DEPS)
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

clean:
	rm -rf build dist site *.egg-info uvloop_like/_uv*.so uvloop_like/_uv.c .venv .venv-* .pytest_cache
