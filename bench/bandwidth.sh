#!/usr/bin/env bash
# Bandwidth limits: what a --download-rate / --upload-rate limit gives, with one and with four
# sessions at once, and what Ferry gives without a limit, measured with curl over loopback.
#
#   bench/bandwidth.sh                     # builds release binaries
#   FERRY_BIN=target/release/ferry RATE=10M SIZE_MB=100 RUNS=3 bench/bandwidth.sh
#
# Prints one line per case: the limit, the sessions, the bytes moved in all, the wall time and the
# rate (MiB/s), and the ratio to the limit. Each case is run RUNS times; the median is printed. No
# timing is asserted: this prints figures for docs/benchmarks.md.
set -euo pipefail

cd "$(dirname "$0")/.."
if [[ -z ${FERRY_BIN:-} ]]; then
    cargo build -q --release -p ferry
fi
FERRY_BIN=${FERRY_BIN:-target/release/ferry}
RATE=${RATE:-10M}          # the limit, as the flag takes it (1024-based)
SIZE_MB=${SIZE_MB:-100}    # MiB per session for the limited cases (10 s at 10M)
FREE_MB=${FREE_MB:-1024}   # MiB for the unlimited cases
RUNS=${RUNS:-3}
command -v curl >/dev/null || { echo "bandwidth: curl is needed" >&2; exit 1; }

WORK=$(mktemp -d)
FERRY_PID=
stop() {
    if [[ -n $FERRY_PID ]]; then
        kill "$FERRY_PID" 2>/dev/null || true
        wait "$FERRY_PID" 2>/dev/null || true
        FERRY_PID=
    fi
}
trap 'stop; rm -rf "$WORK"' EXIT

mkdir -p "$WORK/root"
head -c $((SIZE_MB << 20)) /dev/zero >"$WORK/limited.bin"
head -c $((FREE_MB << 20)) /dev/zero >"$WORK/free.bin"
cp "$WORK/limited.bin" "$WORK/root/limited.bin"
cp "$WORK/free.bin" "$WORK/root/free.bin"
PASS=bw-$RANDOM$RANDOM
ADDR=

# start_ferry ARGS...: serves $WORK/root with the extra flags.
start_ferry() {
    stop
    : >"$WORK/ferry.out"
    FERRY_LOG=warn FERRY_USERS="bench:$PASS" "$FERRY_BIN" --root "$WORK/root" --listen 127.0.0.1:0 \
        "$@" >"$WORK/ferry.out" 2>"$WORK/ferry.err" &
    FERRY_PID=$!
    ADDR=
    for _ in $(seq 100); do
        ADDR=$(sed -n 's|.*listening on ftp://\([0-9.]*:[0-9]*\)/.*|\1|p' "$WORK/ferry.out" | head -n1)
        [[ -n $ADDR ]] && return 0
        kill -0 "$FERRY_PID" 2>/dev/null || { cat "$WORK/ferry.err" >&2; exit 1; }
        sleep 0.1
    done
    echo "bandwidth: ferry did not report its address" >&2
    exit 1
}

# run_case DIRECTION SESSIONS FILE: prints "bytes seconds" for SESSIONS curl transfers at once.
run_case() {
    local dir=$1 n=$2 file=$3 pids=() start end i
    start=$(date +%s.%N)
    for i in $(seq "$n"); do
        if [[ $dir == download ]]; then
            curl -s -o /dev/null "ftp://bench:$PASS@$ADDR/$(basename "$file")" &
        else
            curl -s -T "$file" "ftp://bench:$PASS@$ADDR/up-$i.bin" &
        fi
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    end=$(date +%s.%N)
    echo "$(( $(stat -c %s "$file") * n )) $(echo "$end - $start" | bc -l)"
}

# median of RUNS runs of run_case; prints the line.
report() {
    local label=$1 limit=$2 dir=$3 n=$4 file=$5 rates=() r bytes secs
    for r in $(seq "$RUNS"); do
        read -r bytes secs < <(run_case "$dir" "$n" "$file")
        rates+=("$(echo "$bytes / $secs / 1048576" | bc -l)")
        rm -f "$WORK"/root/up-*.bin
    done
    local median
    median=$(printf '%s\n' "${rates[@]}" | sort -g | sed -n "$(( (RUNS + 1) / 2 ))p")
    if [[ $limit == none ]]; then
        printf '%-22s %-9s %2d session(s)  %8.1f MiB/s  (runs: %s)\n' "$label" "$dir" "$n" "$median" \
            "$(printf '%.1f ' "${rates[@]}")"
    else
        local limit_mib
        limit_mib=$(echo "$(numfmt --from=iec "$limit") / 1048576" | bc -l)
        printf '%-22s %-9s %2d session(s)  %8.2f MiB/s  %.3fx the limit  (runs: %s)\n' "$label" "$dir" "$n" \
            "$median" "$(echo "$median / $limit_mib" | bc -l)" "$(printf '%.2f ' "${rates[@]}")"
    fi
}

command -v bc >/dev/null || { echo "bandwidth: bc is needed" >&2; exit 1; }
echo "# ferry $("$FERRY_BIN" --version | awk '{print $2}'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# limit $RATE (1024-based), $SIZE_MB MiB per session limited, $FREE_MB MiB unlimited, median of $RUNS"
for zc in on off; do
    start_ferry --download-rate "$RATE" --upload-rate "$RATE" --zero-copy "$zc"
    for n in 1 4; do
        report "limit $RATE zero-copy $zc" "$RATE" download "$n" "$WORK/limited.bin"
        report "limit $RATE zero-copy $zc" "$RATE" upload "$n" "$WORK/limited.bin"
    done
done
# Unlimited: no flag, and a limit far above what loopback moves (the throttle's own cost).
start_ferry
report "no limit" none download 1 "$WORK/free.bin"
report "no limit" none upload 1 "$WORK/free.bin"
start_ferry --download-rate 100G --upload-rate 100G
report "limit 100G" none download 1 "$WORK/free.bin"
report "limit 100G" none upload 1 "$WORK/free.bin"
