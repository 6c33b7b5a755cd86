#!/usr/bin/env bash
# Peak RSS of Ferry on S3 storage under many sessions at once (docs/benchmarks.md, "S3 memory").
#
# Starts a one-node Garage (replication factor 1: the figure is Ferry's memory, not Garage's), then, each
# against a fresh release Ferry (--storage s3, 8 MiB parts, --max-sessions-per-ip 1000):
#   - $N slow readers: RETRs of a 64 MiB object whose clients read nothing (4 KiB receive buffers),
#     held $HOLD s;
#   - $N concurrent uploads of $UPLOAD_MIB MiB each (more than one part, so every upload needs its
#     whole working set).
# Prints the server's RSS after start and its peak (VmHWM) for each. No assertion: figures only.
#
# Usage: bench/s3-memory.sh   (needs ~/.cargo/bin/garage; N=200 HOLD=10 UPLOAD_MIB=12 BENCH_TMP=/tmp;
#                              FERRY_BIN=target/release/ferry, EXTRA="--s3-buffer-budget 256")
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-200}
export HOLD=${HOLD:-10}
UPLOAD_MIB=${UPLOAD_MIB:-12}
TMP_BASE=${BENCH_TMP:-/tmp}
GARAGE=${GARAGE_BIN:-$HOME/.cargo/bin/garage}
FERRY_BIN=${FERRY_BIN:-target/release/ferry}
EXTRA=${EXTRA:-}
KEY_ID=GK0123456789abcdef01234567
SECRET=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
BUCKET=bench

work=$(mktemp -d "$TMP_BASE/ferry-s3-mem.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

d=$work/garage
mkdir -p "$d/meta" "$d/data"
s3=$(free_port); rpc=$(free_port); admin=$(free_port)
cat >"$d/garage.toml" <<EOF
metadata_dir = "$d/meta"
data_dir = "$d/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:$admin"
EOF
RUST_LOG=garage=warn "$GARAGE" -c "$d/garage.toml" server >"$d/log" 2>&1 &
pids+=($!)
g() { RUST_LOG=error "$GARAGE" -c "$d/garage.toml" "$@"; }
retry() { for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; "$@"; }
retry g node id -q
id=$(g node id -q 2>/dev/null)
retry g layout assign -z z -c 10G "${id%@*}"
retry g layout apply --version 1
retry g bucket create "$BUCKET"
retry g key import --yes -n bench "$KEY_ID" "$SECRET"
retry g bucket allow --read --write --owner "$BUCKET" --key "$KEY_ID"
endpoint="http://127.0.0.1:$s3"

start_ferry() {
    local out=$work/ferry.out
    # shellcheck disable=SC2086
    AWS_ACCESS_KEY_ID=$KEY_ID AWS_SECRET_ACCESS_KEY=$SECRET "$FERRY_BIN" --listen 127.0.0.1:0 \
        --storage s3 --s3-endpoint "$endpoint" --s3-bucket "$BUCKET" --s3-region garage \
        --max-sessions-per-ip 1000 $EXTRA \
        --user bench:bench --anonymous off --log-level warn >"$out" 2>"$work/ferry.log" &
    ferry_pid=$!
    pids+=("$ferry_pid")
    for _ in $(seq 300); do grep -q 'listening on ftp://' "$out" && break; sleep 0.1; done
    ferry_addr=$(sed -n 's|.*listening on ftp://\(127[0-9.]*:[0-9]*\)/.*|\1|p' "$out" | head -n1)
    base=$(awk '/VmRSS/ {print $2}' "/proc/$ferry_pid/status")
}
stop_ferry() {
    peak=$(awk '/VmHWM/ {print $2}' "/proc/$ferry_pid/status")
    kill "$ferry_pid"; wait "$ferry_pid" 2>/dev/null || true
    echo "  server RSS: $((base / 1024)) MiB after start, peak $((peak / 1024)) MiB"
}

start_ferry
python3 bench/s3_load.py "$ferry_addr" uploads 1 $((64 << 20)) >/dev/null
g bucket info "$BUCKET" >/dev/null 2>&1 || true
# The 64 MiB object is up0.bin.
python3 bench/s3_load.py "$ferry_addr" slow-readers "$N" up0.bin
stop_ferry

start_ferry
python3 bench/s3_load.py "$ferry_addr" uploads "$N" $((UPLOAD_MIB << 20))
stop_ferry
