#!/bin/sh
# Headless "browser" for OAuth tests, used as BROWSER=tests/e2e/fake-browser.sh by 63-auth-flow: follows the
# authorization URL ($1) through the dev IdP's auto-approving redirects (AUTO_APPROVE=1) to the client's loopback
# callback. Detached and retried, because some clients start their callback listener only after "opening the
# browser". Appends what it did to $FAKE_BROWSER_LOG when set.
JAR="${TMPDIR:-/tmp}/fake-browser.$$.jar"
( for i in 1 2 3 4 5; do
    sleep 1
    if curl -s -o /dev/null -L --max-redirs 20 -c "$JAR" -b "$JAR" -w '%{http_code} %{url_effective}\n' "$1" \
         >>"${FAKE_BROWSER_LOG:-/dev/null}" 2>&1; then
      break
    fi
  done; rm -f "$JAR" ) >/dev/null 2>&1 &
[ -n "${FAKE_BROWSER_LOG:-}" ] && echo "open $1" >>"$FAKE_BROWSER_LOG"
exit 0
