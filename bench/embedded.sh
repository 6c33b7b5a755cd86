#!/usr/bin/env bash
# RETR/STOR throughput of the embedded driver (host runner: embassy + smoltcp on a TAP device) beside
# the tokio server (`ferry`) in the same run, with curl as the client. Prints figures and ratios; no
# assertions. Needs root (network namespaces).
#
#   bench/embedded.sh [SIZE_MIB] [RUNS]      # default 64 MiB, 5 rounds (median printed)
#   BEFORE=/tmp/host-before bench/embedded.sh # also runs an earlier build of the host runner (a copy of
#                                             # target/release/examples/host) and prints after/before
#
# The links differ, and the figures say so: the host runner is reached through a TAP device (each
# frame crosses /dev/net/tun into the process and smoltcp), the tokio server through a veth pair into a
# second namespace (kernel TCP at both ends, which hands 64 KiB segments across with GSO). The host
# runner runs twice, on a TAP with the Ethernet MTU (1500) and on one with jumbo frames (9000): per
# frame costs dominate it. Each round measures every server once (interleaved), so load on the machine
# hits all of them alike. Files live in /dev/shm when it exists, so that the disk is not measured.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${1:-64}
RUNS=${2:-5}
cargo build -q --release -p ferry-embassy --example host
cargo build -q --release -p ferry
HOST=target/release/examples/host
FERRY=target/release/ferry

NS=fe-bench-$$
SRV=fe-bsrv-$$
WORK=$(mktemp -d -p "$([ -d /dev/shm ] && echo /dev/shm || echo /tmp)")
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
ip netns exec "$NS" ip link add vethc type veth peer name veths netns "$SRV"
ip netns exec "$NS" ip addr add 10.78.0.1/24 dev vethc
ip netns exec "$NS" ip link set vethc up
ip netns exec "$SRV" ip addr add 10.78.0.2/24 dev veths
ip netns exec "$SRV" ip link set veths up
ip netns exec "$SRV" ip link set lo up

head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/file.bin"
declare -A ADDR
# NAME BINARY TAP-MTU NET: a host runner on its own TAP device in 10.NET.0.0/24.
SERVERS=("mtu1500 $HOST 1500 77" "mtu9000 $HOST 9000 79")
if [ -n "${BEFORE:-}" ]; then
    SERVERS+=("before1500 $BEFORE 1500 80" "before9000 $BEFORE 9000 81")
fi
NAMES=(tokio)
for spec in "${SERVERS[@]}"; do
    read -r name bin mtu net <<<"$spec"
    ip netns exec "$NS" ip tuntap add dev "t$name" mode tap
    ip netns exec "$NS" ip addr add "10.$net.0.1/24" dev "t$name"
    ip netns exec "$NS" ip link set "t$name" mtu "$mtu" up
    mkdir -p "$WORK/$name"
    cp "$WORK/file.bin" "$WORK/$name/file.bin"
    ip netns exec "$NS" "$bin" --tap "t$name" --address "10.$net.0.2/24" --root "$WORK/$name" \
        --user bench:bench > "$WORK/$name.out" 2>&1 &
    PIDS+=($!)
    ADDR[$name]=10.$net.0.2
    NAMES+=("$name")
done
mkdir -p "$WORK/tokio"
cp "$WORK/file.bin" "$WORK/tokio/file.bin"
FERRY_LOG=warn ip netns exec "$SRV" "$FERRY" --root "$WORK/tokio" --listen 10.78.0.2:21 \
    --anonymous off --user bench:bench > "$WORK/tokio.out" 2>&1 &
PIDS+=($!)
ADDR[tokio]=10.78.0.2
for name in "${NAMES[@]}"; do
    for _ in $(seq 100); do
        grep -q "listening" "$WORK/$name.out" 2>/dev/null && break
        sleep 0.1
    done
done

# RUNS rounds, each server once per round and direction; speeds in bytes/s.
declare -A SPEEDS
for _ in $(seq "$RUNS"); do
    for name in "${NAMES[@]}"; do
        url="ftp://bench:bench@${ADDR[$name]}"
        SPEEDS[$name.retr]+="$(ip netns exec "$NS" curl -sS -o /dev/null -w '%{speed_download}' "$url/file.bin") "
        SPEEDS[$name.stor]+="$(ip netns exec "$NS" curl -sS -T "$WORK/file.bin" -w '%{speed_upload}' "$url/up.bin") "
    done
done
median() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END{printf "%.1f", a[int((NR+1)/2)]/1e6}'; }

echo "RETR/STOR of ${SIZE_MIB} MiB, median of ${RUNS} interleaved curl runs each"
printf '%-5s %-34s %10s %9s\n' op server MB/s /tokio
for op in retr stor; do
    t=$(median "${SPEEDS[tokio.$op]}")
    for name in "${NAMES[@]}"; do
        case $name in
            tokio) label="tokio ferry (veth)" ;;
            mtu*) label="embassy host runner, TAP MTU ${name#mtu}" ;;
            before*) label="BEFORE host runner, TAP MTU ${name#before}" ;;
        esac
        e=$(median "${SPEEDS[$name.$op]}")
        printf '%-5s %-34s %10s %9s\n' "$op" "$label" "$e" "$(awk -v e="$e" -v t="$t" 'BEGIN{printf "%.2f", e/t}')"
    done
    if [ -n "${BEFORE:-}" ]; then
        for mtu in 1500 9000; do
            printf '%-5s after/before at MTU %s: %.2f\n' "$op" "$mtu" "$(awk -v a="$(median "${SPEEDS[mtu$mtu.$op]}")" \
                -v b="$(median "${SPEEDS[before$mtu.$op]}")" 'BEGIN{print a/b}')"
        done
    fi
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
