#!/usr/bin/env bash
# `make sanitize`: libuv, uvl.c (the cffi module) and _core.c (the native core)
# built with AddressSanitizer and UndefinedBehaviorSanitizer, then the unit
# suite run on that build on the native core, and the scheduler tests on the
# Python core; exits non-zero on any sanitizer report (docs/sanitize.md).
#
# The build happens in a copy of the working tree (build/sanitize/tree: tracked
# and untracked, not ignored files, plus vendor/libuv), installed editable into
# .venv-sanitize, so the sanitized _uv*.so never replaces the one .venv uses in
# this tree.  The interpreter is not instrumented, so the sanitizer runtimes are
# preloaded (LD_PRELOAD) into the test run, and every process it starts.
#
#   SANITIZE_TESTS="tests/test_tcp.py -x"  what runs on the native core (default: the unit suite)
#   SANITIZE_PURE_TESTS="tests/test_tcp.py" what runs on the Python core (default: the
#                                           scheduler tests; "" runs nothing there)
#   UVLOOP_LIKE_SANITIZE=address            the -fsanitize= list (default address,undefined)
#
# Why two passes: the native core runs every line of C the Python core runs
# (the cffi module and libuv: both cores reach libuv through it) and its own
# on top, so the unit suite runs there; the cores differ in the scheduler
# alone, whose tests then run on the Python core too.  (Not CPython: no
# native core; the unit suite runs on the Python core, once.)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-sanitize}
SAN=${UVLOOP_LIKE_SANITIZE:-address,undefined}
TREE=build/sanitize/tree
REPORTS=$PWD/build/sanitize/reports
# The default leaves out one test: test_thousand_children on the uv_spawn path
# forks 1,000 times from a process that ASan's shadow memory makes huge (about
# 30 ms a fork here), which overruns the test's own 120 s bound on a busy
# machine; the uv_spawn path is still run by every other subprocess test.
TESTS=${SANITIZE_TESTS:-tests --ignore=tests/conformance --ignore=tests/reliability \
    --deselect tests/test_subprocess.py::test_thousand_children[uvloop_like+uv_spawn]}
PURE_TESTS=${SANITIZE_PURE_TESTS-tests/test_loop_core.py tests/test_native_core.py}
CC=${CC:-gcc}

"$PYTHON" vendor/fetch_libuv.py
# Refresh the copy; keep its build/ (the sanitized libuv archive is cached there).
mkdir -p "$TREE"
rm -rf "$TREE/uvloop_like" "$TREE/tests"
git ls-files -coz --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$TREE"
if [ ! -d "$TREE/vendor/libuv/src" ] || ! cmp -s vendor/libuv/include/uv/version.h "$TREE/vendor/libuv/include/uv/version.h"; then
    rm -rf "$TREE/vendor/libuv"
    cp -a vendor/libuv "$TREE/vendor/libuv"
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
VPY=$PWD/$VENV/bin/python
"$VPY" -m pip install -q --prefer-binary 'setuptools>=77' wheel 'cffi>=1.15'
# The sanitized module, and the test dependencies from pyproject.toml's [test] extra.
(cd "$TREE" && CC="$CC" UVLOOP_LIKE_SANITIZE="$SAN" \
    "$VPY" -m pip install -q --prefer-binary --no-build-isolation -e ".[test]")

if "$VPY" -c "import platform, sys; sys.exit(platform.python_implementation() != 'CPython')"; then
    # The native core must be there and instrumented: setup.py builds it as
    # optional (a failed compile leaves the Python core), and an
    # uninstrumented one would pass every test unchecked.
    core_so=$(find "$TREE/uvloop_like" -maxdepth 1 -name '_core*.so' | head -n 1)
    [ -n "$core_so" ] || { echo "sanitize: uvloop_like/_core did not build (see the pip output above)" >&2; exit 1; }
    if command -v nm >/dev/null; then
        for want in ${SAN//,/ }; do
            case $want in address) sym=__asan_ ;; undefined) sym=__ubsan_ ;; *) continue ;; esac
            # (The symbol list is read whole before the match: `nm | grep -q`
            # under pipefail fails when grep quits first and nm gets SIGPIPE.)
            undefined_syms=$(nm -D --undefined-only "$core_so")
            case $undefined_syms in *"$sym"*) ;;
                *) echo "sanitize: $core_so is not built with -fsanitize=$want" >&2; exit 1 ;;
            esac
        done
    fi
    NATIVE=1
else
    NATIVE=0
    PURE_TESTS=""
fi

preload=()
case ",$SAN," in *,address,*) preload+=("$("$CC" -print-file-name=libasan.so)") ;; esac
case ",$SAN," in *,undefined,*) preload+=("$("$CC" -print-file-name=libubsan.so)") ;; esac
for lib in "${preload[@]}"; do
    [ -f "$lib" ] || { echo "sanitize: $lib not found (gcc's sanitizer runtime)" >&2; exit 1; }
done
LD_PRELOAD_LIST=$(IFS=:; echo "${preload[*]}")

rm -rf "$REPORTS"
mkdir -p "$REPORTS"
# detect_leaks=0: CPython keeps objects alive until exit by design, so LSan
# would report the interpreter, not us.  handle_segv=0: tests that check a
# crashing child is reported (test_crash_safety) kill it with SIGSEGV, which
# ASan would turn into a report and exit 1; a real wild access still kills
# the process and fails its test, and out-of-bounds and use-after-free are
# caught by the instrumentation, not by the signal.  Reports go to files (one
# per process: the children the tests start report too); any file fails the run.
export ASAN_OPTIONS="detect_leaks=0:handle_segv=0:log_path=$REPORTS/asan${ASAN_EXTRA_OPTIONS:+:$ASAN_EXTRA_OPTIONS}"
# PYTHONMALLOC=malloc: Python's objects (the bytes a write hands to libuv, the
# buffers cffi allocates) come from malloc, so ASan puts redzones around them
# too; with pymalloc's arenas an overrun of one object lands in another unseen.
export PYTHONMALLOC=malloc
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$REPORTS/ubsan"
run_pass() {  # run_pass CORE-ENV TESTS...: one pytest run with the sanitizers preloaded
    local core_env=$1
    shift
    echo "sanitize: -fsanitize=$SAN; LD_PRELOAD=$LD_PRELOAD_LIST; $core_env; running: $*"
    # --timeout: everything runs slower under ASan (fork() above all: the shadow
    # memory makes the address space huge); the tests' own bounds still apply.
    # shellcheck disable=SC2086  # PYTEST_FLAGS is a list of pytest arguments
    (set -f; cd "$TREE" && env "$core_env" LD_PRELOAD="$LD_PRELOAD_LIST" \
        "$VPY" -m pytest "$@" ${PYTEST_FLAGS:--q} --timeout=300)
}

set +e
rc=0
start=$(date +%s)
# shellcheck disable=SC2086  # TESTS and PURE_TESTS are lists of pytest arguments
if [ "$NATIVE" = 1 ]; then
    (set -f; run_pass UVLOOP_LIKE_CORE=native $TESTS) || rc=$?
else
    (set -f; run_pass UVLOOP_LIKE_PURE=1 $TESTS) || rc=$?
fi
if [ -n "$PURE_TESTS" ]; then
    # shellcheck disable=SC2086
    (set -f; run_pass UVLOOP_LIKE_PURE=1 $PURE_TESTS) || { r=$?; [ "$rc" -ne 0 ] || rc=$r; }
fi
echo "sanitize: the test runs took $(( $(date +%s) - start )) s"
set -e
reports=$(find "$REPORTS" -type f | sort)
if [ -n "$reports" ]; then
    for f in $reports; do
        echo "======== $f"
        cat "$f"
    done
    echo "sanitize: FAILED: $(echo "$reports" | wc -l) sanitizer report(s) (pytest exit $rc)"
    exit 1
fi
if [ "$rc" -ne 0 ]; then
    echo "sanitize: FAILED: pytest exit $rc (no sanitizer report)"
    exit "$rc"
fi
echo "sanitize: clean (no ASan/UBSan report, pytest passed)"
