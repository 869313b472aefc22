#!/usr/bin/env bash
# Runs Debian's Prometheus against a running avocetd and evaluates every query of the
# Grafana dashboard and of the rules file after real rollouts; exits non-zero when a query
# fails to evaluate, or when a dashboard query or a recording rule returns no data.
#
#   deploy/prometheus/check.sh            # builds avocetd and avocet (debug) first
#   AVOCET_BIN_DIR=target/release deploy/prometheus/check.sh
#
# avocetd serves its built-in default (fleet "demo", three SQLite tenants) in a temporary
# directory; rollouts: every tenant to version 5, then two of them to the latest, so one
# is behind; then a backup of one tenant. Alert expressions must evaluate without error;
# they return data only while their condition holds, which is said, not failed. Needs curl, jq, python3 (free ports),
# and prometheus/promtool (installed with apt-get when missing, as root or with sudo).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
rules="$repo/deploy/prometheus/avocet-rules.yml"
dashboard="$repo/deploy/grafana/avocet-dashboard.json"

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus
fi
promtool check rules "$rules"

work=$(mktemp -d)
# The binaries are copied at once: a target directory shared with other work trees may
# be rebuilt from another tree's sources meanwhile.
if [ -n "${AVOCET_BIN_DIR:-}" ]; then
    cp "$AVOCET_BIN_DIR/avocetd" "$AVOCET_BIN_DIR/avocet" "$work/"
else
    (cd "$repo" && cargo build --bins -q)
    cp "${CARGO_TARGET_DIR:-$repo/target}/debug/"{avocetd,avocet} "$work/"
fi
bin_dir=$work
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
grpc=$(free_port); admin=$(free_port); prom=$(free_port)

# Waits (at most 30 s) until `$@` succeeds.
until_ok() {
    for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "timed out: $*" >&2; return 1
}

mkdir "$work/run"
(cd "$work/run" && RUST_LOG=warn AVOCET_LISTEN="127.0.0.1:$grpc" AVOCET_ADMIN_LISTEN="127.0.0.1:$admin" \
    exec "$bin_dir/avocetd" >"$work/avocetd.log" 2>&1) &
pids+=($!)
until_ok curl -fsS "http://127.0.0.1:$admin/readyz"

cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["$rules"]
scrape_configs:
  - job_name: avocetd
    static_configs: [{targets: ["127.0.0.1:$admin"]}]
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$prom" >"$work/prometheus.log" 2>&1 &
pids+=($!)
until_ok curl -fsS "http://127.0.0.1:$prom/-/ready"

avocet() { "$bin_dir/avocet" --addr "http://127.0.0.1:$grpc" --fleet demo "$@" >/dev/null; }
avocet apply --to 5 --yes
avocet apply --tenants acme,globex --yes
# One backup, for the backup panels (its file goes under the daemon's working directory).
avocet backup --tenant acme

query() { curl -fsS "http://127.0.0.1:$prom/api/v1/query" --data-urlencode "query=$1"; }
# Prometheus has scraped the rollouts' results several times, and evaluated the rules.
scraped() {
    [ "$(query 'count_over_time(avocet_fleet_tenants_behind{fleet="demo"}[1m])' | jq -r '.data.result[0].value[1] // 0')" -ge 5 ] &&
    [ "$(query 'avocet_fleet_tenants_behind{fleet="demo"}' | jq -r '.data.result[0].value[1] // ""')" = 1 ] &&
    [ "$(query 'count(fleet:avocet_lock_wait_p95:ratio_lock_timeout)' | jq -r '.data.result[0].value[1] // 0')" -ge 1 ]
}
until_ok scraped

failed=0
check() { # kind expression [may_be_empty]
    local out status n
    if ! out=$(query "$2"); then
        echo "FAIL ($1, does not evaluate): $2"; failed=1; return
    fi
    status=$(jq -r .status <<<"$out"); n=$(jq '.data.result | length' <<<"$out")
    if [ "$status" != success ]; then
        echo "FAIL ($1, $status): $2"; failed=1
    elif [ "$n" -eq 0 ] && [ "${3:-}" != may_be_empty ]; then
        echo "FAIL ($1, no data): $2"; failed=1
    else
        echo "ok   ($1, $n series): ${2//$'\n'/ }"
    fi
}
while IFS= read -r expr; do
    expr=${expr//\$fleet/.*}; expr=${expr//\$__rate_interval/1m}; expr=${expr//\$__range/5m}
    check dashboard "$expr"
done < <(jq -r '.panels[].targets[].expr' "$dashboard")
fleets=$(curl -fsS "http://127.0.0.1:$prom/api/v1/label/fleet/values" --data-urlencode 'match[]=avocet_fleet_tenants' -G | jq -r '.data | join(",")')
[ "$fleets" = demo ] || { echo "FAIL (dashboard variable fleet): got '$fleets'"; failed=1; }
rules_json=$(curl -fsS "http://127.0.0.1:$prom/api/v1/rules")
while IFS=$'\t' read -r type name health error; do
    [ "$health" = ok ] || { echo "FAIL (rule $name, health $health): $error"; failed=1; }
done < <(jq -r '.data.groups[].rules[] | [.type, .name, .health, (.lastError // "")] | @tsv' <<<"$rules_json")
while IFS=$'\t' read -r type name expr; do
    expr=$(base64 -d <<<"$expr")
    if [ "$type" = recording ]; then
        check "record $name" "$name"
    else
        check "alert $name" "$expr" may_be_empty
    fi
done < <(jq -r '.data.groups[].rules[] | [.type, .name, (.query | @base64)] | @tsv' <<<"$rules_json")
[ "$failed" -eq 0 ] && echo "every dashboard and rule query evaluates against avocetd"
exit "$failed"
