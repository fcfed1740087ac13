#!/usr/bin/env bash
# The leaderboard against real parts:
#
# 1. the server suite (board/tests/server.rs) on a real PostgreSQL: starts the local
#    cluster (Debian's postgresql package, installed by setup.sh), makes a role and an
#    empty database, runs the suite, and stops the cluster again if it started it;
# 2. the pages in a real headless Chromium: `ktune serve` on a fresh SQLite file, the shipped
#    database and a copy whose label carries a script submitted with `ktune submit`, then
#    the DOM of the leaderboard, a ranking and a machine page checked: the rankings are
#    there and no injected script ran. SCREENSHOT=FILE also saves the leaderboard as PNG.
#
# Usage: scripts/board_check.sh KTUNE_BINARY        (as root, or a user who may `su postgres`)
#   KTUNE_SKIP_POSTGRES=1 / KTUNE_SKIP_BROWSER=1 skip a part.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "$1")
work=$(mktemp -d)
cleanup=(":")
# Undone in reverse order.
trap 'for ((i = ${#cleanup[@]} - 1; i >= 0; i--)); do eval "${cleanup[$i]}" || true; done; rm -rf "$work"' EXIT

if [ "${KTUNE_SKIP_POSTGRES:-0}" != 1 ]; then
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  if [ -z "$version" ]; then
    echo "error: no PostgreSQL cluster (scripts/setup.sh installs Debian's postgresql)" >&2
    exit 1
  fi
  if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
    echo "board: starting PostgreSQL $version"
    pg_ctlcluster "$version" main start
    cleanup+=("pg_ctlcluster $version main stop")
  fi
  port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')
  pw="ktune-test-$$"
  su postgres -c "psql -q -p $port -v ON_ERROR_STOP=1" <<SQL
DROP DATABASE IF EXISTS ktune_board_test;
DROP ROLE IF EXISTS ktune_board_test;
CREATE ROLE ktune_board_test LOGIN PASSWORD '$pw';
CREATE DATABASE ktune_board_test OWNER ktune_board_test;
SQL
  cleanup+=("su postgres -c \"psql -q -p $port -c 'DROP DATABASE IF EXISTS ktune_board_test' -c 'DROP ROLE IF EXISTS ktune_board_test'\"")
  echo "board: the server suite on PostgreSQL $version (port $port)"
  KTUNE_REQUIRE=postgres \
    KTUNE_TEST_POSTGRES="postgres://ktune_board_test:$pw@127.0.0.1:$port/ktune_board_test" \
    cargo test -p ktune-board --locked --test server -- on_postgres
fi

if [ "${KTUNE_SKIP_BROWSER:-0}" != 1 ]; then
  browser=$(command -v chromium || command -v chromium-browser || true)
  if [ -z "$browser" ]; then
    echo "error: no chromium (scripts/setup.sh installs Debian's chromium)" >&2
    exit 1
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  url="http://127.0.0.1:$port"
  "$bin" serve --db "$work/board.sqlite" --addr "127.0.0.1:$port" 2>"$work/serve.log" &
  server=$!
  cleanup+=("kill $server")
  for _ in $(seq 50); do
    python3 -c "import urllib.request; urllib.request.urlopen('$url/')" 2>/dev/null && break
    sleep 0.1
  done
  db=$(ls results/db/*.json | head -1)
  # The label is not hashed into the machine id, so this copy is valid, and hostile.
  python3 - "$db" "$work/evil.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["machine"]["label"] = ("<script>document.title='pwned'</script>"
                         "<img src=x onerror=\"document.body.dataset.pwned='1'\"> \"q\" & 'q'")
json.dump(d, open(sys.argv[2], "w"))
PY
  "$bin" submit "$db" --to "$url"
  "$bin" submit "$work/evil.json" --to "$url"
  slug=$(python3 -c "import json, urllib.request; print(json.load(urllib.request.urlopen('$url/api/problems'))[0]['slug'])")
  machine=$(python3 -c "import json; print(json.load(open('$db'))['machine']['id'])")
  # Chromium refuses to run as root without --no-sandbox; its profile lives in $work.
  flags=(--headless --no-sandbox --disable-gpu --user-data-dir="$work/profile" --virtual-time-budget=2000)
  for page in / "/rank/$slug" "/machine/$machine"; do
    "$browser" "${flags[@]}" --dump-dom "$url$page" >"$work/dom.html" 2>>"$work/chromium.log"
    python3 - "$work/dom.html" "$page" <<'PY'
import re, sys
dom, page = open(sys.argv[1]).read(), sys.argv[2]
title = re.search(r"<title>(.*?)</title>", dom, re.S)
# The injected script would set the title to exactly 'pwned'; a page whose title names the
# machine shows the hostile label there as escaped text, which is not a script running.
assert title and title.group(1).strip() != "pwned", f"{page}: a script ran (title {title})"
assert "data-pwned" not in dom, f"{page}: an injected handler ran"
assert "<script>document" not in dom, f"{page}: the hostile label is in the DOM as a script"
if page.startswith("/rank/"):
    # Every submission's row is ranked, the hostile one's too: its label shows as text.
    assert "&lt;script&gt;document.title" in dom, f"{page}: the hostile label is not shown escaped"
if page == "/":
    assert 'id="problems"' in dom and 'id="machines"' in dom, "the leaderboard lists"
if page.startswith("/rank/"):
    rows = re.findall(r'<tr class="row">', dom)
    assert 'id="by-throughput"' in dom and 'id="by-fraction"' in dom and rows, f"{page}: rankings"
print(f"chromium: {page}: rendered, rankings present, no injected script ran")
PY
  done
  if [ -n "${SCREENSHOT:-}" ]; then
    "$browser" "${flags[@]}" --window-size=1500,900 --screenshot="$SCREENSHOT" "$url/rank/$slug" 2>>"$work/chromium.log"
    echo "board: screenshot in $SCREENSHOT"
  fi
fi
echo "board: passed"
