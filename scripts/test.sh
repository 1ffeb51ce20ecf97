#!/usr/bin/env bash
# Run the test suites and print one closing line "N passed, M failed".
#   scripts/test.sh [unit] [e2e] [smoke] [asan]   (no argument: unit + e2e)
#   unit   every $BUILD/tests/test_* (cmocka) binary
#   e2e    every tests/e2e/*.test.mjs (node:test), or the files given in E2E_FILES
#   smoke  only tests/e2e/00-smoke.test.mjs (used by the ASan build)
#   asan   then the unit tests, every fuzz corpus and regression input (fuzz/replay.c) and the smoke
#          with the ASan/UBSan build in $ASAN_BUILD (default build-asan; `make test` builds it), leak
#          detection on, counted in the same total
# Environment: BUILD (default build), GATEWAY_BIN (default $BUILD/mcp-gateway),
#   EXAMPLE_BIN (default $BUILD/mcp-example-server), UNIT_TIMEOUT / E2E_TIMEOUT (seconds per binary / file),
#   E2E_TEST_TIMEOUT_MS (node:test's limit per test, default 90000; the full ASan run raises it),
#   UNIT_WRAP (a command the unit binaries run under: `make test-valgrind` sets valgrind).
# Full logs go to $BUILD/test-logs/.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BUILD=${BUILD:-build}
case "$BUILD" in /*) BUILD_ABS=$BUILD ;; *) BUILD_ABS=$ROOT/$BUILD ;; esac
LOGDIR=$BUILD_ABS/test-logs
export BUILD
export TEST_LOG_DIR=$LOGDIR
export GATEWAY_BIN=${GATEWAY_BIN:-$BUILD_ABS/mcp-gateway}
export EXAMPLE_BIN=${EXAMPLE_BIN:-$BUILD_ABS/mcp-example-server}
UNIT_TIMEOUT=${UNIT_TIMEOUT:-120}
E2E_TIMEOUT=${E2E_TIMEOUT:-300}
E2E_TEST_TIMEOUT_MS=${E2E_TEST_TIMEOUT_MS:-90000}
ASAN_BUILD=${ASAN_BUILD:-build-asan}
LABEL=''

do_unit=0 do_e2e=0 do_smoke=0 do_asan=0
[ $# -eq 0 ] && { do_unit=1; do_e2e=1; }
for a in "$@"; do
    case "$a" in
        unit) do_unit=1 ;;
        e2e) do_e2e=1 ;;
        smoke) do_smoke=1 ;;
        asan) do_asan=1 ;;
        all) do_unit=1; do_e2e=1 ;;
        *) echo "usage: $0 [unit] [e2e] [smoke] [asan]" >&2; exit 2 ;;
    esac
done

mkdir -p "$LOGDIR"
TOTAL_PASS=0 TOTAL_FAIL=0

if [ -t 1 ]; then RED=$'\e[31m' GREEN=$'\e[32m' OFF=$'\e[0m'; else RED='' GREEN='' OFF=''; fi
report() {   # name passed failed seconds
    local color=$GREEN; [ "$3" -gt 0 ] && color=$RED
    printf '%s%-34s %3d passed, %d failed%s  (%ss)\n' "$color" "$LABEL$1" "$2" "$3" "$OFF" "$4"
}

# ---------------------------------------------------------------- unit (cmocka)
run_unit() {
    rm -f "$LOGDIR"/unit-*.log
    local bins=() b
    for b in "$BUILD_ABS"/tests/test_*; do
        [ -f "$b" ] && [ -x "$b" ] && bins+=("$b")
    done
    if [ ${#bins[@]} -eq 0 ]; then
        echo "unit: no test binaries in $BUILD/tests/ (build them with make)"
        return
    fi
    echo "== unit tests ($BUILD/tests)"
    for b in "${bins[@]}"; do
        local name log rc p f t0 t1
        name=$(basename "$b"); log=$LOGDIR/unit-$name.log
        t0=$(date +%s)
        { CMOCKA_MESSAGE_OUTPUT=STDOUT timeout -k 5 "$UNIT_TIMEOUT" ${UNIT_WRAP:-} "$b" >"$log" 2>&1; } 2>/dev/null; rc=$?
        t1=$(date +%s)
        # cmocka: "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s), listed below:" (summed over groups)
        p=$(grep -aE '^\[  PASSED  \] [0-9]+ test' "$log" | sed -E 's/^\[  PASSED  \] ([0-9]+).*/\1/' | awk '{s+=$1} END{print s+0}')
        f=$(grep -aE '^\[  FAILED  \] [0-9]+ test' "$log" | sed -E 's/^\[  FAILED  \] ([0-9]+).*/\1/' | awk '{s+=$1} END{print s+0}')
        local why=""
        if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
            f=1
            if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then why="timed out after ${UNIT_TIMEOUT}s"
            elif [ $rc -gt 128 ]; then why="killed by signal $((rc - 128))"
            else why="exit code $rc"; fi
        elif [ $rc -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
            f=1; why="no cmocka summary in the output"
        fi
        report "unit $name" "$p" "$f" $((t1 - t0))
        if [ "$f" -gt 0 ]; then
            grep -aE '^\[  (FAILED|ERROR) +\] [^0-9]|^\[  ERROR   \]|^\[   LINE   \]|ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: ' "$log" | awk '!seen[$0]++' | head -20 | sed 's/^/    /'
            if [ -n "$why" ]; then
                echo "    $name: $why; last lines of $log:"
                tail -n 15 "$log" | sed 's/^/    | /'
            fi
        fi
        TOTAL_PASS=$((TOTAL_PASS + p)); TOTAL_FAIL=$((TOTAL_FAIL + f))
    done
}

# ---------------------------------------------------------------- e2e (node:test, TAP)
run_e2e_files() {
    local files=("$@") f
    command -v node >/dev/null 2>&1 || { echo "e2e: node not found (run scripts/deps.sh test)"; TOTAL_FAIL=$((TOTAL_FAIL + 1)); return; }
    [ -d tests/node_modules/@modelcontextprotocol/sdk ] ||
        { echo "e2e: tests/node_modules missing (run scripts/deps.sh test)"; TOTAL_FAIL=$((TOTAL_FAIL + 1)); return; }
    find "$LOGDIR" -maxdepth 1 -name '*.log' ! -name 'unit-*' -delete 2>/dev/null
    [ -x "$GATEWAY_BIN" ] || echo "e2e: warning: gateway binary $GATEWAY_BIN not found"
    echo "== e2e tests (gateway: ${GATEWAY_BIN#$ROOT/})"
    for f in "${files[@]}"; do
        local name log rc p fl c t0 t1
        name=$(basename "$f" .test.mjs); log=$LOGDIR/e2e-$name.tap
        t0=$(date +%s)
        { timeout -k 5 "$E2E_TIMEOUT" node --test --test-reporter=tap --test-timeout="$E2E_TEST_TIMEOUT_MS" "$f" >"$log" 2>&1; } 2>/dev/null; rc=$?
        t1=$(date +%s)
        p=$(grep -aE '^# pass [0-9]+' "$log" | tail -1 | grep -aoE '[0-9]+' || true)
        fl=$(grep -aE '^# fail [0-9]+' "$log" | tail -1 | grep -aoE '[0-9]+' || true)
        c=$(grep -aE '^# cancelled [0-9]+' "$log" | tail -1 | grep -aoE '[0-9]+' || true)
        local why=""
        if [ -z "$p" ] && [ -z "$fl" ]; then
            p=0; fl=1
            if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then why="timed out after ${E2E_TIMEOUT}s"; else why="no TAP summary (exit code $rc)"; fi
        else
            p=${p:-0}; fl=$(( ${fl:-0} + ${c:-0} ))
            if [ $rc -ne 0 ] && [ "$fl" -eq 0 ]; then fl=1; why="node exited with code $rc"; fi
        fi
        report "e2e $name" "$p" "$fl" $((t1 - t0))
        if [ "$fl" -gt 0 ]; then
            # each failed leaf test with the first lines of its error (suites that only failed through a child are skipped)
            awk '
                function flush() {
                    if (pending != "" && kind == "cancelledByParent") ncancel++
                    else if (pending != "" && kind != "subtestsFailed") {
                        print pending; for (i = 1; i <= nerr && i <= 6; i++) print "        " err[i]
                    }
                    pending = ""; nerr = 0; kind = ""; in_err = 0
                }
                /^ *not ok / { flush(); line = $0; sub(/^ *not ok [0-9]+ - /, "", line); pending = "    FAIL " line; next }
                /^ *ok / { flush(); next }
                pending != "" && /^ *failureType: / { kind = $0; sub(/^ *failureType: */, "", kind); gsub(/\047/, "", kind); next }
                pending != "" && /^ *error: / { in_err = 1; e = $0; sub(/^ *error: */, "", e); if (e != "|-" && e != "|" && e != ">-") { gsub(/^\047|\047$/, "", e); err[++nerr] = e }; next }
                pending != "" && in_err && /^ *(code|name|expected|actual|operator|stack|failureType|duration_ms|location|cause|type):/ { in_err = 0; next }
                pending != "" && /^ *\.\.\. *$/ { in_err = 0; next }
                pending != "" && in_err { e = $0; sub(/^ */, "", e); if (e != "") err[++nerr] = e; next }
                END { flush(); if (ncancel) print "    (" ncancel " tests cancelled because a before() hook failed)" }
            ' "$log" | head -80
            [ -n "$why" ] && { echo "    $name: $why; last lines of $log:"; tail -n 15 "$log" | sed 's/^/    | /'; }
        fi
        TOTAL_PASS=$((TOTAL_PASS + p)); TOTAL_FAIL=$((TOTAL_FAIL + fl))
    done
    echo "   (logs: ${LOGDIR#$ROOT/}/)"
}

# ---------------------------------------------------------------- fuzz inputs, replayed (fuzz/replay.c)
# Each libFuzzer target's seed corpus and regression inputs once, with the ASan build's replay_<target>.
run_replay() {
    local t bin log t0 t1 f files
    for bin in "$BUILD_ABS"/fuzz/replay_*; do
        [ -x "$bin" ] || continue
        t=${bin##*/replay_}; log=$LOGDIR/replay-$t.log
        files=()
        for f in fuzz/corpus/"$t"/* fuzz/regressions/"$t"/*; do [ -f "$f" ] && files+=("$f"); done
        t0=$(date +%s)
        if timeout -k 5 "$UNIT_TIMEOUT" "$bin" "${files[@]}" >"$log" 2>&1; then
            report "fuzz replay $t" 1 0 $(( $(date +%s) - t0 ))
            TOTAL_PASS=$((TOTAL_PASS + 1))
        else
            t1=$(date +%s)
            report "fuzz replay $t" 0 1 $((t1 - t0))
            echo "    the last input named in $log failed:"; tail -n 12 "$log" | sed 's/^/    | /'
            TOTAL_FAIL=$((TOTAL_FAIL + 1))
        fi
    done
}

[ $do_unit -eq 1 ] && run_unit
if [ $do_e2e -eq 1 ]; then
    if [ -n "${E2E_FILES:-}" ]; then read -r -a files <<<"$E2E_FILES"
    else files=(tests/e2e/*.test.mjs); fi
    if [ -e "${files[0]}" ]; then run_e2e_files "${files[@]}"; else echo "e2e: no tests/e2e/*.test.mjs"; fi
elif [ $do_smoke -eq 1 ]; then
    run_e2e_files tests/e2e/00-smoke.test.mjs
fi

if [ $do_asan -eq 1 ]; then
    # the same unit binaries and the smoke under ASan/UBSan (issue #8: `make test` runs the sanitizer smoke)
    case "$ASAN_BUILD" in /*) BUILD_ABS=$ASAN_BUILD ;; *) BUILD_ABS=$ROOT/$ASAN_BUILD ;; esac
    if [ -x "$BUILD_ABS/mcp-gateway" ]; then
        LOGDIR=$BUILD_ABS/test-logs; mkdir -p "$LOGDIR"
        export BUILD=$ASAN_BUILD TEST_LOG_DIR=$LOGDIR GATEWAY_BIN=$BUILD_ABS/mcp-gateway EXAMPLE_BIN=$BUILD_ABS/mcp-example-server
        export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
        LABEL='asan '
        run_unit
        run_replay
        run_e2e_files tests/e2e/00-smoke.test.mjs
    else
        echo "asan: no ASan build in $ASAN_BUILD (make test builds it)"; TOTAL_FAIL=$((TOTAL_FAIL + 1))
    fi
fi

echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
[ "$TOTAL_FAIL" -eq 0 ] && [ "$TOTAL_PASS" -gt 0 ]
