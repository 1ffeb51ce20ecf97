#!/usr/bin/env bash
# What `make fuzz` needs besides the build dependencies: clang (14 on Debian 12) and its runtime
# libraries (libFuzzer, ASan, UBSan: libclang-rt-14-dev). Debian packages only; fast when all is
# present (no apt-get update).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive
die() { echo "fuzz/deps.sh: error: $*" >&2; exit 1; }

"$ROOT/scripts/deps.sh" build

CC=${FUZZ_CC:-clang}
SUDO=()
[ "$(id -u)" -eq 0 ] || { command -v sudo >/dev/null 2>&1 && SUDO=(sudo); }

# Can $CC link a libFuzzer target with ASan and UBSan?
probe() {
    local d rc; d=$(mktemp -d)
    printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' >"$d/p.c"
    "$CC" -fsanitize=fuzzer,address,undefined "$d/p.c" -o "$d/p" >/dev/null 2>&1 && rc=0 || rc=1
    rm -rf "$d"
    return $rc
}

if ! command -v "$CC" >/dev/null 2>&1 || ! probe; then
    missing=()
    command -v "$CC" >/dev/null 2>&1 || missing+=(clang)
    # clang's libFuzzer/ASan/UBSan runtimes live in a package of their own on Debian 12
    ver=$(clang --version 2>/dev/null | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
    missing+=("libclang-rt-${ver:-14}-dev")
    command -v apt-get >/dev/null 2>&1 || die "cannot link a libFuzzer target and no apt-get here (need ${missing[*]})"
    if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then die "missing ${missing[*]} (run as root)"; fi
    echo "fuzz/deps.sh: installing ${missing[*]}" >&2
    log=$(mktemp)
    if ! { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2; rm -f "$log"; die "apt-get install ${missing[*]} failed"
    fi
    rm -f "$log"
    probe || die "$CC still cannot link with -fsanitize=fuzzer,address,undefined"
fi
exit 0
