#!/usr/bin/env bash
# Footprint of an idle daemon over N registered SQLite tenants (issue: "100,000 registered idle
# tenants: under 1 KiB of RSS per tenant, zero database connections, listening within 3 s").
#
#   bench/scripts/footprint.sh BIN_DIR [N] [LABELS] [IDLE_S] [SOURCE]
#
# BIN_DIR holds avocetd and avocet (e.g. target/release); N tenants (default 100000), each
# with one label when LABELS=1 (default 0); RSS is read IDLE_S seconds (default 15) after the
# daemon first answers. SOURCE is `config` (the default: tenants in the TOML file) or
# `registered` (tenants in the control store, as `Fleet.RegisterTenant` leaves them: the
# daemon is started once to create the store, stopped, the rows are written, and it is
# started again and measured). Prints one line: seconds until listening, seconds until answering
# `avocet fleets`, RSS and peak RSS in KiB, KiB per tenant, and the daemon's open sockets
# (the listener and the client's connection; SQLite tenants have none, and nothing connects
# to a tenant until it is used). Nothing is written outside a temporary directory.
set -euo pipefail
bin=$(cd "$1" && pwd); n=${2:-100000}; labels=${3:-0}; idle=${4:-15}; source=${5:-config}
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d); trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$work" "$n" "$labels" "$port" "$repo" "$source" <<'PY'
import sys
work, n, labels, port, repo = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5]
in_config = sys.argv[6] == "config"
lines = [f'listen = "127.0.0.1:{port}"', f'control_store = "sqlite://{work}/control.db?mode=rwc"',
         '[fleets.big]', 'dialect = "sqlite"', f'migrations = "{repo}/migrations/sqlite"', 'tenants = [']
for i in range(n if in_config else 0):
    label = f', labels = {{ region = "eu-{i % 7}" }}' if labels else ''
    lines.append(f'  {{ id = "t{i:06d}", dsn = "sqlite://{work}/db/t{i:06d}.db?mode=rwc"{label} }},')
lines.append(']')
open(f'{work}/avocet.toml', 'w').write('\n'.join(lines) + '\n')
PY
if [ "$source" = registered ]; then
  "$bin/avocetd" --config "$work/avocet.toml" >/dev/null 2>"$work/avocetd.log" &
  pid=$!
  until "$bin/avocet" --addr "http://127.0.0.1:$port" fleets >/dev/null 2>&1; do sleep 0.05; done
  kill -TERM "$pid"; wait "$pid" || true
  python3 - "$work" "$n" "$labels" <<'PY'
import json, sqlite3, sys
work, n, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
db = sqlite3.connect(f"{work}/control.db")
rows = [("big", f"t{i:06d}", f"sqlite://{work}/db/t{i:06d}.db?mode=rwc", None,
         json.dumps({"region": f"eu-{i % 7}"} if labels else {}), "footprint", 0) for i in range(n)]
db.executemany("INSERT INTO registered_tenants (fleet, tenant, dsn, schema_name, labels, "
               "registered_by, registered_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
db.commit()
PY
fi
start=$(date +%s.%N)
"$bin/avocetd" --config "$work/avocet.toml" >/dev/null 2>"$work/avocetd.log" &
pid=$!
until (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/avocetd.log"; exit 1; }
  sleep 0.02
done
listening=$(echo "$(date +%s.%N) - $start" | bc)
until "$bin/avocet" --addr "http://127.0.0.1:$port" fleets >/dev/null 2>&1; do sleep 0.05; done
answering=$(echo "$(date +%s.%N) - $start" | bc)
sleep "$idle"
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
sockets=$(find "/proc/$pid/fd" -lname 'socket:*' | wc -l)
per=$(echo "scale=2; $rss / $n" | bc)
echo "source=$source tenants=$n labels=$labels listening_s=$listening answering_s=$answering rss_kib=$rss peak_kib=$peak kib_per_tenant=$per sockets=$sockets"
