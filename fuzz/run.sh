#!/usr/bin/env bash
# Runs the libFuzzer targets built by `make fuzz-build` (docs/fuzzing.md).
#   fuzz/run.sh fuzz   [target...]   fuzz each target: FUZZ_SECONDS each (default 60), or FUZZ_RUNS
#                                    executions each when set; FUZZ_JOBS targets at a time (default 1)
#   fuzz/run.sh corpus [target...]   run every seed (fuzz/corpus/<t>/) and regression input
#                                    (fuzz/regressions/<t>/) once: a quick regression check
# Targets: http jsonrpc sse jwt config session_id (default: all).
# New inputs go to $FUZZ_BUILD/corpus/<t>/ (the seed corpus in the repository is only read), crashes
# to $FUZZ_BUILD/artifacts/<t>/, logs to $FUZZ_BUILD/logs/<t>.log. FUZZ_ARGS adds libFuzzer flags.
# Exit status: 0 when no target found anything.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

FB=${FUZZ_BUILD:-build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}
RUNS=${FUZZ_RUNS:-}
JOBS=${FUZZ_JOBS:-1}
ALL=(http jsonrpc sse jwt config session_id)

MODE=${1:-}
case "$MODE" in fuzz|corpus) shift ;; *) echo "usage: $0 fuzz|corpus [target...]" >&2; exit 2 ;; esac
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")
for t in "${TARGETS[@]}"; do
    [ -x "$FB/fuzz/fuzz_$t" ] || { echo "run.sh: $FB/fuzz/fuzz_$t missing (make fuzz-build; targets: ${ALL[*]})" >&2; exit 2; }
done

max_len() {   # large enough for every seed, small enough to stay fast
    case "$1" in
        http) echo 8192 ;; session_id) echo 512 ;; *) echo 4096 ;;
    esac
}

if [ "$MODE" = corpus ]; then
    fail=0
    for t in "${TARGETS[@]}"; do
        files=()
        while IFS= read -r -d '' f; do files+=("$f"); done < <(find "fuzz/corpus/$t" "fuzz/regressions/$t" -type f -print0 2>/dev/null | sort -z)
        [ ${#files[@]} -gt 0 ] || { echo "$t: no inputs"; continue; }
        mkdir -p "$FB/logs"
        t0=$(date +%s%N)
        if "$FB/fuzz/fuzz_$t" -rss_limit_mb=2048 "${files[@]}" >"$FB/logs/$t-corpus.log" 2>&1; then
            ms=$(( ($(date +%s%N) - t0) / 1000000 ))
            printf '%-11s %4d inputs ok  (%d ms)\n' "$t" ${#files[@]} "$ms"
        else
            fail=1
            echo "$t: FAILED — see $FB/logs/$t-corpus.log"
            grep -E "ERROR|FUZZ CHECK|Running:|runtime error" "$FB/logs/$t-corpus.log" | tail -5
        fi
    done
    exit $fail
fi

run_one() {
    local t=$1 log=$FB/logs/$t.log
    mkdir -p "$FB/corpus/$t" "$FB/artifacts/$t" "$FB/logs"
    local args=(-max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
                -artifact_prefix="$FB/artifacts/$t/")
    [ -f "fuzz/$t.dict" ] && args+=(-dict="fuzz/$t.dict")
    if [ -n "$RUNS" ]; then args+=(-runs="$RUNS"); else args+=(-max_total_time="$SECONDS_EACH"); fi
    # shellcheck disable=SC2086
    "$FB/fuzz/fuzz_$t" "${args[@]}" ${FUZZ_ARGS:-} "$FB/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1
    echo $? >"$FB/logs/$t.rc"
}

summary() {
    local t=$1 log=$FB/logs/$t.log rc
    rc=$(cat "$FB/logs/$t.rc" 2>/dev/null || echo "?")
    local execs eps cov ft corp
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    local last; last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
    local what=ok
    [ "$rc" = 0 ] || what="FOUND SOMETHING (rc $rc): $(ls "$FB/artifacts/$t" 2>/dev/null | head -3 | tr '\n' ' ')see $log"
    printf '%-11s execs %-10s exec/s %-7s cov %-6s ft %-7s corpus %-12s %s\n' "$t" "${execs:-?}" "${eps:-?}" \
        "${cov:-?}" "${ft:-?}" "${corp:-?}" "$what"
    [ "$rc" = 0 ]
}

echo "fuzzing ${TARGETS[*]}: $( [ -n "$RUNS" ] && echo "$RUNS executions" || echo "${SECONDS_EACH}s") each, $JOBS at a time (logs in $FB/logs/)"
running=0
for t in "${TARGETS[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
fail=0
for t in "${TARGETS[@]}"; do summary "$t" || fail=1; done
exit $fail
