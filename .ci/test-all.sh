#!/usr/bin/env bash
# `make test-all`: the unit suite (tests/, without tests/conformance, the
# reliability suite and the framework tests, which `make test` runs once:
# `make test-unit-core`) on every supported interpreter installed on this machine, each in its own venv
# (.venv-3.9 ... .venv-3.13, .venv-pypy3), then one summary line per interpreter.
#
# Interpreters: CPython 3.9-3.13 from pyenv (newest patch release of each minor,
# found by globbing $(pyenv root)/versions), else python3.X on PATH; PyPy 3.9 as
# pypy3 on PATH.  TEST_ALL_ONLY="3.9 pypy3" restricts the run to those tags.
#
# Exits non-zero if any interpreter fails, if a run passes no test at all (pytest
# exits 5 when it collects nothing; a run where everything skipped counts too),
# or if no interpreter was found.
set -uo pipefail
cd "$(dirname "$0")/.."

MAKE=${MAKE:-make}
LOGDIR=build/test-all
mkdir -p "$LOGDIR"
rm -f "$LOGDIR"/*.log

# The version check runs the interpreter, so a pyenv shim whose version is not
# installed (it exits non-zero) is never taken.
is_python() {  # is_python PATH MAJOR.MINOR IMPLEMENTATION
    [ -x "$1" ] && "$1" -c "import platform, sys
sys.exit(not ('%d.%d' % sys.version_info[:2] == '$2'
              and platform.python_implementation() == '$3'))" >/dev/null 2>&1
}

count() {  # count "3 failed, 120 passed in 9s" passed -> 120 (0 when absent)
    local n
    n=$(printf '%s\n' "$1" | grep -oE "[0-9]+ $2" | head -n 1 | grep -oE '^[0-9]+' || true)
    echo "${n:-0}"
}

tags=()
paths=()
pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
for minor in 9 10 11 12 13; do
    found=""
    if [ -d "$pyenv_root/versions" ]; then
        # 3.13.0 but not 3.13.0t (free-threaded) nor 3.13-dev.
        dir=$(find "$pyenv_root/versions" -mindepth 1 -maxdepth 1 -name "3.$minor.*" 2>/dev/null \
              | grep -E "/3\.$minor\.[0-9]+$" | sort -V | tail -n 1)
        if [ -n "$dir" ] && is_python "$dir/bin/python3" "3.$minor" CPython; then
            found="$dir/bin/python3"
        fi
    fi
    if [ -z "$found" ] && command -v "python3.$minor" >/dev/null 2>&1; then
        candidate=$(command -v "python3.$minor")
        if is_python "$candidate" "3.$minor" CPython; then
            found=$candidate
        fi
    fi
    if [ -n "$found" ]; then
        tags+=("3.$minor")
        paths+=("$found")
    fi
done
if command -v pypy3 >/dev/null 2>&1 && is_python "$(command -v pypy3)" 3.9 PyPy; then
    tags+=("pypy3")
    paths+=("$(command -v pypy3)")
fi

if [ -n "${TEST_ALL_ONLY:-}" ]; then
    keep_tags=()
    keep_paths=()
    for i in "${!tags[@]}"; do
        for want in $TEST_ALL_ONLY; do
            if [ "${tags[$i]}" = "$want" ]; then
                keep_tags+=("${tags[$i]}")
                keep_paths+=("${paths[$i]}")
            fi
        done
    done
    tags=("${keep_tags[@]+"${keep_tags[@]}"}")
    paths=("${keep_paths[@]+"${keep_paths[@]}"}")
fi

# TEST_ALL_SKIP="3.11": leave those tags out (CI: the interpreter `make test`
# already ran the whole unit suite on).
if [ -n "${TEST_ALL_SKIP:-}" ]; then
    keep_tags=()
    keep_paths=()
    for i in "${!tags[@]}"; do
        skip=0
        for unwanted in $TEST_ALL_SKIP; do
            [ "${tags[$i]}" = "$unwanted" ] && skip=1
        done
        if [ "$skip" -eq 0 ]; then
            keep_tags+=("${tags[$i]}")
            keep_paths+=("${paths[$i]}")
        fi
    done
    tags=("${keep_tags[@]+"${keep_tags[@]}"}")
    paths=("${keep_paths[@]+"${keep_paths[@]}"}")
fi

if [ "${#tags[@]}" -eq 0 ] || [ -z "${tags[0]}" ]; then
    echo "test-all: no supported interpreter found (CPython 3.9-3.13, PyPy 3.9)" >&2
    exit 1
fi

echo "test-all: ${tags[*]}"
for tag in 3.9 3.10 3.11 3.12 3.13 pypy3; do
    case " ${tags[*]} " in
        *" $tag "*) ;;
        *) echo "test-all: $tag is not installed here: not tested" ;;
    esac
done

results=()
failed=0
total_passed=0
total_failed=0
for i in "${!tags[@]}"; do
    tag=${tags[$i]}
    py=${paths[$i]}
    log="$LOGDIR/$tag.log"
    version=$("$py" -c 'import platform; print(platform.python_implementation(), platform.python_version())')
    echo
    echo "======== test-all: $version ($py) -> .venv-$tag ========"
    start=$(date +%s)
    "$MAKE" --no-print-directory test-unit-core PYTHON="$py" VENV=".venv-$tag" 2>&1 \
        | awk -f .ci/limit-output.awk | tee "$log"
    rc=${PIPESTATUS[0]}
    secs=$(( $(date +%s) - start ))
    # pytest -q ends with e.g. "3 failed, 120 passed, 2 skipped in 9.81s".
    summary=$(grep -E '^(=+ )?(no tests ran|[0-9]+ (passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?))' "$log" \
              | tail -n 1 | sed -E 's/^=+ //; s/ =+$//')
    passed=$(count "$summary" passed)
    nfailed=$(( $(count "$summary" failed) + $(count "$summary" errors?) ))
    total_passed=$(( total_passed + passed ))
    total_failed=$(( total_failed + nfailed ))
    if [ "$rc" -eq 0 ] && [ "$passed" -gt 0 ]; then
        status=PASS
    else
        status=FAIL
        failed=1
        if [ "$rc" -eq 0 ]; then
            summary="no test passed; ${summary:-no pytest summary}"
            total_failed=$(( total_failed + 1 ))
        elif [ -z "$summary" ]; then
            summary="exit $rc before pytest finished (build or install failure?): see $log"
            total_failed=$(( total_failed + 1 ))
        else
            summary="exit $rc: $summary"
        fi
    fi
    results+=("$(printf '  %-6s %-16s %-4s %4ss  %s' "$tag" "$version" "$status" "$secs" "$summary")")
done

echo
echo "======== test-all summary (logs in $LOGDIR/) ========"
printf '%s\n' "${results[@]}"
echo "test-all: $total_passed passed, $total_failed failed"
exit "$failed"
