#!/usr/bin/env bash
# RETR/STOR throughput of the embedded driver (host runner: embassy + smoltcp on a TAP device) beside
# the tokio server (`ferry`) in the same run, with curl as the client. Prints figures and ratios; no
# assertions. Needs root (network namespaces).
#
#   bench/embedded.sh [SIZE_MIB] [RUNS]      # default 64 MiB, 3 runs each (median printed)
#
# The two links differ, and the figures say so: the host runner is reached through a TAP device (each
# frame crosses /dev/net/tun into the process and smoltcp), the tokio server through a veth pair into a
# second namespace (kernel TCP at both ends). Both are virtual links on this machine; the client is
# the same curl in the same namespace. Host runner buffers: 32 KiB per data socket, 8 KiB chunk.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${1:-64}
RUNS=${2:-3}
cargo build -q --release -p ferry-embassy --example host
cargo build -q --release -p ferry
HOST=target/release/examples/host
FERRY=target/release/ferry

NS=fe-bench-$$
SRV=fe-bsrv-$$
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    ip netns del "$SRV" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$NS"
ip netns add "$SRV"
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip tuntap add dev tapb mode tap
ip netns exec "$NS" ip addr add 10.77.0.1/24 dev tapb
ip netns exec "$NS" ip link set tapb up
ip netns exec "$NS" ip link add vethc type veth peer name veths netns "$SRV"
ip netns exec "$NS" ip addr add 10.78.0.1/24 dev vethc
ip netns exec "$NS" ip link set vethc up
ip netns exec "$SRV" ip addr add 10.78.0.2/24 dev veths
ip netns exec "$SRV" ip link set veths up
ip netns exec "$SRV" ip link set lo up

mkdir -p "$WORK/embassy" "$WORK/tokio"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/file.bin"
cp "$WORK/file.bin" "$WORK/embassy/file.bin"
cp "$WORK/file.bin" "$WORK/tokio/file.bin"

ip netns exec "$NS" "$HOST" --tap tapb --address 10.77.0.2/24 --root "$WORK/embassy" \
    --user bench:bench > "$WORK/host.out" 2>&1 &
PIDS+=($!)
FERRY_LOG=warn ip netns exec "$SRV" "$FERRY" --root "$WORK/tokio" --listen 10.78.0.2:21 \
    --anonymous off --user bench:bench > "$WORK/ferry.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    grep -q "listening on" "$WORK/host.out" 2>/dev/null && grep -q "listening" "$WORK/ferry.out" 2>/dev/null && break
    sleep 0.1
done

# Median of RUNS curl measurements, in MB/s.
measure() { # ADDR DIRECTION(retr|stor)
    local addr=$1 dir=$2 speeds=()
    for _ in $(seq "$RUNS"); do
        if [ "$dir" = retr ]; then
            s=$(ip netns exec "$NS" curl -sS -o /dev/null -w '%{speed_download}' "ftp://bench:bench@$addr/file.bin")
        else
            s=$(ip netns exec "$NS" curl -sS -T "$WORK/file.bin" -w '%{speed_upload}' "ftp://bench:bench@$addr/up.bin")
        fi
        speeds+=("$s")
    done
    printf '%s\n' "${speeds[@]}" | sort -n | awk '{a[NR]=$1} END{printf "%.1f", a[int((NR+1)/2)]/1e6}'
}

echo "RETR/STOR of ${SIZE_MIB} MiB, median of ${RUNS} curl runs each, MB/s"
printf '%-6s %22s %22s %8s\n' op "embassy (TAP, smoltcp)" "tokio ferry (veth)" ratio
for op in retr stor; do
    e=$(measure 10.77.0.2 "$op")
    t=$(measure 10.78.0.2 "$op")
    printf '%-6s %22s %22s %8s\n' "$op" "$e" "$t" "$(awk -v e="$e" -v t="$t" 'BEGIN{printf "%.2f", e/t}')"
done
