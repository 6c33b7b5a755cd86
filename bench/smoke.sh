#!/usr/bin/env bash
# A few seconds of every ferry-bench workload against Ferry, to keep the benchmark working (for CI).
# No root, no vsftpd, no timing assertions: it fails only if a workload fails.
#
#   bench/smoke.sh                 # builds debug binaries with cargo
#   FERRY_BIN=... FERRY_BENCH_BIN=... bench/smoke.sh
set -euo pipefail

cd "$(dirname "$0")/.."
if [[ -z ${FERRY_BIN:-} || -z ${FERRY_BENCH_BIN:-} ]]; then
    cargo build -q -p ferry -p ferry-bench
fi
FERRY_BIN=${FERRY_BIN:-target/debug/ferry}
FERRY_BENCH_BIN=${FERRY_BENCH_BIN:-target/debug/ferry-bench}

WORK=$(mktemp -d)
FERRY_PID=
cleanup() {
    [[ -n $FERRY_PID ]] && kill "$FERRY_PID" 2>/dev/null && wait "$FERRY_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/root"
"$FERRY_BIN" gen-cert --cert "$WORK/cert.pem" --key "$WORK/key.pem" >/dev/null
PASS=smoke-$RANDOM$RANDOM
FERRY_LOG=warn FERRY_USERS="bench:$PASS" "$FERRY_BIN" --root "$WORK/root" --listen 127.0.0.1:0 \
    --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" --tls-required none \
    >"$WORK/ferry.out" 2>"$WORK/ferry.err" &
FERRY_PID=$!
ADDR=
for _ in $(seq 100); do
    ADDR=$(sed -n 's|.*listening on ftp://\([0-9.]*:[0-9]*\)/.*|\1|p' "$WORK/ferry.out" | head -n1)
    [[ -n $ADDR ]] && break
    kill -0 "$FERRY_PID" 2>/dev/null || { cat "$WORK/ferry.err" >&2; exit 1; }
    sleep 0.1
done
[[ -n $ADDR ]] || { echo "smoke: ferry did not report its address" >&2; exit 1; }

"$FERRY_BENCH_BIN" "$ADDR" bench "$PASS" --label smoke \
    -w retr,stor,retr-tls,stor-tls,sessions,noop,noop-concurrent,idle \
    --size 2M --small-size 64K --clients 4 --duration 1 --noop-duration 0.5 \
    --noop-connections 8 --idle 16 --idle-settle 0.2 --pid "$FERRY_PID" \
    --timeout 10 --json "$WORK/smoke.json"
python3 - "$WORK/smoke.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
bad = [r for r in doc["results"] if "error" in r or r.get("errors") or r.get("open_errors")]
if bad:
    sys.exit(f"smoke: errors in {[r['workload'] for r in bad]}")
print(f"smoke: {len(doc['results'])} results, no errors")
PY
