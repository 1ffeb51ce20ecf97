#!/usr/bin/env bash
# The option entries of docs/mcp-gateway.8, generated from `mcp-gateway --help` (whose text comes
# from the one option table in src/config.c): flags under OPTIONS, variables without a flag under
# ENVIRONMENT.
#   scripts/man-options.sh BINARY            print both generated parts (flags, then variables)
#   scripts/man-options.sh BINARY options    print the flags' part; "env": the variables' part
#   scripts/man-options.sh BINARY --update   rewrite docs/mcp-gateway.8 between its lines
#                                            '.\" BEGIN GENERATED OPTIONS' / '.\" END GENERATED OPTIONS'
#                                            and '.\" BEGIN GENERATED ENVIRONMENT' / '.\" END GENERATED ENVIRONMENT'
# `make man` runs the --update form; tests/e2e/95-install checks that the page is up to date.
set -euo pipefail
BIN=${1:?usage: $0 BINARY [--update]}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PAGE=$ROOT/docs/mcp-gateway.8

generate() {   # options|env|all
    "$BIN" --help | awk -v want="$1" '
        function esc(s) { gsub(/\\/, "\\e", s); return s }
        function lit(s) { s = esc(s); gsub(/-/, "\\-", s); return s }          # flags, names, metavars
        function text(s) { s = esc(s); if (s ~ /^[.\047]/) s = "\\&" s; return s }
        function flush() {
            if (head == "") return
            if (want != "all" && want != kind) { head = ""; help = ""; envv = ""; def = ""; return }
            print ".TP"
            print head
            if (help != "") print text(help)
            if (envv != "" || def != "") {
                print ".br"
                line = ""
                if (envv != "") line = "Environment: \\fB" lit(envv) "\\fR; "
                print line "default: " (def == "unset" ? "unset" : def == "EMPTY" ? "empty" : "\\fB" lit(def) "\\fR") "."
            }
            head = ""; help = ""; envv = ""; def = ""
        }
        /^  -h, --help/ { flush(); head = "\\fB\\-h\\fR, \\fB\\-\\-help\\fR"; help = "Print the options and exit."; kind = "options"; next }
        /^  --version/  { flush(); head = "\\fB\\-\\-version\\fR"; help = "Print the version and exit."; kind = "options"; next }
        /^  --[a-z]/ {
            flush(); n = split(substr($0, 3), a, " "); flag = a[1]; meta = substr($0, 3 + length(flag) + 1)
            head = "\\fB" lit(flag) "\\fR" (meta != "" ? " \\fI" lit(meta) "\\fR" : "")
            kind = "options"; next
        }
        /^  env [A-Z]/ {
            flush(); n = split(substr($0, 7), a, " "); name = a[1]; meta = substr($0, 7 + length(name) + 1)
            head = "\\fB" lit(name) "\\fR" (meta != "" ? " \\fI" lit(meta) "\\fR" : "") 
            kind = "env"; next
        }
        /^        env [A-Z_0-9]+, default: / {
            s = substr($0, 13); i = index(s, ","); envv = substr(s, 1, i - 1)
            def = substr(s, i + 11); gsub(/^"|"$/, "", def); if (def == "") def = "EMPTY"; next
        }
        /^        default: / { def = substr($0, 18); gsub(/^"|"$/, "", def); if (def == "") def = "EMPTY"; next }
        /^        / && head != "" { s = substr($0, 9); help = help == "" ? s : help " " s; next }
        END { flush() }
    '
}

case "${2:-all}" in
    --update)
        tmp=$(mktemp) opt=$(mktemp) env=$(mktemp)
        generate options >"$opt"
        generate env >"$env"
        awk -v opt="$opt" -v env="$env" '
            /^\.\\" BEGIN GENERATED (OPTIONS|ENVIRONMENT)/ {
                print; f = /OPTIONS/ ? opt : env; while ((getline l < f) > 0) print l; close(f); skip = 1; found++; next
            }
            /^\.\\" END GENERATED (OPTIONS|ENVIRONMENT)/ { skip = 0; found++ }
            !skip { print }
            END { if (found != 4) exit 1 }
        ' "$PAGE" >"$tmp" || { rm -f "$tmp" "$opt" "$env"; echo "$0: the four marker lines were not found in $PAGE" >&2; exit 1; }
        ver=$("$BIN" --version | awk '{print $2}')
        # the version in the .TH line too
        sed -i -E "s/^(\.TH .* \"mcp-gateway )[^\"]*\"/\1$ver\"/" "$tmp"
        cat "$tmp" >"$PAGE"
        rm -f "$tmp" "$opt" "$env" ;;
    options|env|all) generate "${2:-all}" ;;
    *) echo "usage: $0 BINARY [options|env|all|--update]" >&2; exit 2 ;;
esac
