#!/usr/bin/env bash
# Ferry on S3 storage against a direct S3 client, in one run (docs/benchmarks.md, "Object storage").
#
# Starts a three-node Garage cluster on loopback (replication factor 3, sqlite metadata, data under
# $BENCH_TMP), then for each of $BENCH_REPEAT rounds, alternating:
#   - ferry-bench RETR and STOR of a $BENCH_SIZE file through Ferry (release build, --storage s3, one
#     Garage node as endpoint);
#   - rclone (Debian) writing and reading an object of the same size directly over S3 on the same node
#     (`rclone copyto` of a local file, `rclone cat` to /dev/null).
# Then the server's peak RSS (VmHWM) during one upload of $BENCH_UPLOAD_SIZE through a fresh Ferry.
# Prints MB/s, the Ferry/rclone ratios and the peak RSS. No assertion: figures only.
#
# Usage: bench/s3.sh    (needs ~/.cargo/bin/garage, rclone; BENCH_SIZE=256M BENCH_UPLOAD_SIZE=1G
#                        BENCH_REPEAT=3 BENCH_TMP=/tmp BENCH_PART=8 (MiB) by default)
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=${BENCH_SIZE:-256M}
UPLOAD_SIZE=${BENCH_UPLOAD_SIZE:-1G}
REPEAT=${BENCH_REPEAT:-3}
PART=${BENCH_PART:-8}
TMP_BASE=${BENCH_TMP:-/tmp}
GARAGE=${GARAGE_BIN:-$HOME/.cargo/bin/garage}
KEY_ID=GK0123456789abcdef01234567
SECRET=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
BUCKET=bench

die() { printf 's3.sh: %s\n' "$*" >&2; exit 1; }
[[ -x $GARAGE ]] || die "garage not found at $GARAGE"
command -v rclone >/dev/null || die "rclone not installed (apt-get install rclone)"

if [[ -z ${FERRY_BIN:-} ]]; then
    cargo build --release -p ferry -p ferry-bench --quiet
    FERRY_BIN=target/release/ferry
    FERRY_BENCH_BIN=target/release/ferry-bench
fi
FERRY_BENCH_BIN=${FERRY_BENCH_BIN:-target/release/ferry-bench}

work=$(mktemp -d "$TMP_BASE/ferry-s3-bench.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- the Garage cluster ----------------------------------------------------------------------------
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
s3_ports=()
for i in 0 1 2; do
    d=$work/garage$i
    mkdir -p "$d/meta" "$d/data"
    s3=$(free_port); rpc=$(free_port); admin=$(free_port)
    s3_ports+=("$s3")
    cat >"$d/garage.toml" <<EOF
metadata_dir = "$d/meta"
data_dir = "$d/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$secret"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:$admin"
EOF
    RUST_LOG=garage=warn "$GARAGE" -c "$d/garage.toml" server >"$d/log" 2>&1 &
    pids+=($!)
done
g() { RUST_LOG=error "$GARAGE" -c "$work/garage0/garage.toml" "$@"; }
retry() { for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; "$@"; }
node_id() { RUST_LOG=error "$GARAGE" -c "$work/garage$1/garage.toml" node id -q 2>/dev/null; }
for i in 0 1 2; do retry node_id "$i"; done
for i in 1 2; do retry g node connect "$(node_id "$i")"; done
for i in 0 1 2; do
    id=$(node_id "$i"); retry g layout assign -z "zone$i" -c 10G "${id%@*}"
done
retry g layout apply --version 1
retry g bucket create "$BUCKET"
retry g key import --yes -n bench "$KEY_ID" "$SECRET"
retry g bucket allow --read --write --owner "$BUCKET" --key "$KEY_ID"
endpoint="http://127.0.0.1:${s3_ports[0]}"
echo "garage $("$GARAGE" --version | sed -n 1p), 3 nodes, replication factor 3, endpoint $endpoint"

cat >"$work/rclone.conf" <<EOF
[garage]
type = s3
provider = Other
access_key_id = $KEY_ID
secret_access_key = $SECRET
region = garage
endpoint = $endpoint
force_path_style = true
no_check_bucket = true
EOF
rc() { env -u AWS_CA_BUNDLE rclone --config "$work/rclone.conf" "$@"; }
rclone version 2>/dev/null | sed -n 1p

# --- Ferry -----------------------------------------------------------------------------------------
start_ferry() {
    local out=$work/ferry.out
    AWS_ACCESS_KEY_ID=$KEY_ID AWS_SECRET_ACCESS_KEY=$SECRET "$FERRY_BIN" --listen 127.0.0.1:0 \
        --storage s3 --s3-endpoint "$endpoint" --s3-bucket "$BUCKET" --s3-region garage \
        --s3-part-size "$PART" --user bench:bench --anonymous off --log-level warn >"$out" 2>"$work/ferry.log" &
    ferry_pid=$!
    pids+=("$ferry_pid")
    for _ in $(seq 300); do grep -q 'listening on ftp://' "$out" && break; sleep 0.1; done
    ferry_addr=$(sed -n 's|.*listening on ftp://\(127[0-9.]*:[0-9]*\)/.*|\1|p' "$out" | head -n1)
    : >"$out"
}
stop_ferry() { kill "$ferry_pid"; wait "$ferry_pid" 2>/dev/null || true; }

bytes() { numfmt --from=iec "${1%B}"; }
size_bytes=$(bytes "$SIZE")
head -c "$size_bytes" /dev/urandom >"$work/local.bin"
mbps() { python3 -c "print(f'{$1/1e6/$2:.1f}')"; }
now() { date +%s.%N; }

# MB/s of a workload in a ferry-bench JSON report.
figure() {
    python3 -c 'import json, sys
report = json.load(open(sys.argv[1]))
print(format(next(r["mb_per_s"] for r in report["results"] if r.get("workload") == sys.argv[2]), ".1f"))' "$1" "$2"
}

declare -a f_retr f_stor r_read r_write
for round in $(seq "$REPEAT"); do
    start_ferry
    "$FERRY_BENCH_BIN" "$ferry_addr" bench bench -w retr,stor --size "$SIZE" --label s3 --timeout 600 \
        --json "$work/ferry-$round.json" >"$work/bench-$round.txt"
    stop_ferry
    f_retr+=("$(figure "$work/ferry-$round.json" retr)")
    f_stor+=("$(figure "$work/ferry-$round.json" stor)")
    t0=$(now); rc copyto "$work/local.bin" "garage:$BUCKET/rclone-$round.bin"; t1=$(now)
    r_write+=("$(mbps "$size_bytes" "$(python3 -c "print($t1-$t0)")")")
    t0=$(now); rc cat "garage:$BUCKET/rclone-$round.bin" >/dev/null; t1=$(now)
    r_read+=("$(mbps "$size_bytes" "$(python3 -c "print($t1-$t0)")")")
    echo "round $round: ferry RETR ${f_retr[-1]} MB/s, STOR ${f_stor[-1]} MB/s; rclone read ${r_read[-1]} MB/s, write ${r_write[-1]} MB/s"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
fr=$(median "${f_retr[@]}"); fs=$(median "${f_stor[@]}"); rr=$(median "${r_read[@]}"); rw=$(median "${r_write[@]}")
echo
echo "median of $REPEAT ($SIZE, part size ${PART} MiB):"
echo "  RETR through Ferry  $fr MB/s   rclone cat     $rr MB/s   ratio $(python3 -c "print(f'{$fr/$rr:.2f}')")"
echo "  STOR through Ferry  $fs MB/s   rclone copyto  $rw MB/s   ratio $(python3 -c "print(f'{$fs/$rw:.2f}')")"

# --- upload memory ---------------------------------------------------------------------------------
start_ferry
base=$(awk '/VmRSS/ {print $2}' "/proc/$ferry_pid/status")
"$FERRY_BENCH_BIN" "$ferry_addr" bench bench -w stor --size "$UPLOAD_SIZE" --label mem --timeout 600 >"$work/mem.txt"
peak=$(awk '/VmHWM/ {print $2}' "/proc/$ferry_pid/status")
stop_ferry
echo "  server RSS: $((base / 1024)) MiB after start, peak $((peak / 1024)) MiB during a $UPLOAD_SIZE upload (part size ${PART} MiB)"
