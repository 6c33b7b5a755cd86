#!/usr/bin/env bash
# What a stalled disk does to everybody else. One folder of the served root is a FUSE file system whose
# every read blocks for BENCH_STALL_DELAY seconds (bench/stallfs.py: a disk or an NFS server that stops
# answering). While K sessions download from it (curl, K = 0, 1, 2...), 50 other sessions send NOOPs back
# to back (ferry-bench noop-concurrent); their round-trip latency is the figure: p50, p99 and the maximum,
# against the question "do NOOPs of 50 other sessions stay under 50 ms?". Each case runs with
# --zero-copy on and off, BENCH_REPEAT times, on a quiet machine (bench/quiet.sh), on a fresh server.
#
# Usage (as root: FUSE mount; installs fuse3, libfuse2 and fusepy if missing):
#   bench/stall.sh
# Settings (environment):
#   BENCH_STALL_DELAY=2          seconds each read of the stalled folder blocks
#   BENCH_STALLED=0,1,NPROC      stalled downloads at once, one case per value (NPROC: one per CPU,
#                                as many as the server has worker threads)
#   BENCH_ZERO_COPY=on,off       --zero-copy settings, one case per value
#   BENCH_NOOP_CONNECTIONS=50    sessions sending NOOPs     BENCH_NOOP_DURATION=10 seconds of NOOPs
#   BENCH_REPEAT=3               runs of each case (medians are quoted)
#   BENCH_WORKERS                tokio worker threads of the server (default: one per CPU)
#   BENCH_OUT=target/bench/stall-DATE   result folder
#   FERRY_BIN, FERRY_BENCH_BIN   prebuilt binaries instead of `cargo build --release`
#   and the quiet-machine settings of bench/quiet.sh (BENCH_MAX_OTHER_CPU, BENCH_ALLOW_BUSY...).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)

log() { printf '\n==== %s ====\n' "$*" >&2; }
die() {
    printf 'stall.sh: %s\n' "$*" >&2
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "run as root (mounts a FUSE file system)"

DELAY=${BENCH_STALL_DELAY:-2}
STALLED=${BENCH_STALLED:-0,1,$(nproc)}
ZERO_COPY=${BENCH_ZERO_COPY:-on,off}
CONNS=${BENCH_NOOP_CONNECTIONS:-50}
DURATION=${BENCH_NOOP_DURATION:-10}
REPEAT=${BENCH_REPEAT:-3}
OUT=${BENCH_OUT:-$REPO/target/bench/stall-$(date +%Y%m%d-%H%M%S)}

# --- tools -------------------------------------------------------------------------------------------
command -v fusermount >/dev/null && command -v curl >/dev/null && [[ -e /usr/lib/x86_64-linux-gnu/libfuse.so.2 || -n $(ldconfig -p | grep 'libfuse\.so\.2') ]] || {
    log "apt-get install fuse3 libfuse2 curl"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fuse3 libfuse2 curl >/dev/null
}
python3 -c 'import fuse' 2>/dev/null || {
    log "pip install fusepy"
    python3 -m pip install -q fusepy
}
if [[ -z ${FERRY_BIN:-} || -z ${FERRY_BENCH_BIN:-} ]]; then
    log "cargo build --release -p ferry -p ferry-bench"
    cargo build --release -q -p ferry -p ferry-bench
fi
FERRY_BIN=${FERRY_BIN:-$REPO/target/release/ferry}
FERRY_BENCH_BIN=${FERRY_BENCH_BIN:-$REPO/target/release/ferry-bench}
ulimit -n 65536 2>/dev/null || true
# shellcheck source=bench/quiet.sh
. "$REPO/bench/quiet.sh"

# --- the root: files, and the stalled folder -----------------------------------------------------------
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/ferry-stall.XXXXXX)
ROOT=$WORK/root
SRC=$WORK/slow-source
READS=$WORK/reads.log
mkdir -p "$ROOT/stalled" "$SRC"
IFS=, read -r -a stalled_counts <<<"$STALLED"
IFS=, read -r -a zero_copy_modes <<<"$ZERO_COPY"
max_stalled=0
for k in "${stalled_counts[@]}"; do ((k > max_stalled)) && max_stalled=$k; done
# One (sparse) file per stalled download, so that no two share cached pages.
for ((k = 1; k <= max_stalled; k++)); do truncate -s 1G "$SRC/big$k.bin"; done
PASS=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
SERVER_PID=
FUSE_PID=
CURLS=()

cleanup() {
    local p
    for p in "${CURLS[@]}"; do kill "$p" 2>/dev/null || true; done
    [[ -n $SERVER_PID ]] && kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
    fusermount -u "$ROOT/stalled" 2>/dev/null || true
    [[ -n $FUSE_PID ]] && kill "$FUSE_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK" "$QUIET_TIMES"
}
trap cleanup EXIT

python3 "$REPO/bench/stallfs.py" "$SRC" "$ROOT/stalled" "$DELAY" "$READS" >"$OUT/stallfs.log" 2>&1 &
FUSE_PID=$!
for ((i = 0; i < 100; i++)); do
    mountpoint -q "$ROOT/stalled" && break
    kill -0 "$FUSE_PID" 2>/dev/null || die "the FUSE file system did not start (see $OUT/stallfs.log)"
    sleep 0.1
done
mountpoint -q "$ROOT/stalled" || die "the FUSE file system was not mounted"

start_server() { # zero-copy
    local line out=$WORK/server.out
    : >"$out"
    local workers=()
    [[ -n ${BENCH_WORKERS:-} ]] && workers=(env "TOKIO_WORKER_THREADS=$BENCH_WORKERS")
    FERRY_LOG=warn FERRY_USERS="bench:$PASS" setsid "${workers[@]}" "$FERRY_BIN" --root "$ROOT" \
        --listen 127.0.0.1:0 --zero-copy "$1" --max-sessions-per-ip 10000 >"$out" 2>>"$OUT/ferry.log" &
    SERVER_PID=$!
    for ((i = 0; i < 300; i++)); do
        line=$(grep -o 'listening on ftp://127\.0\.0\.1:[0-9]*' "$out" | head -n 1 || true)
        [[ -n $line ]] && break
        kill -0 "$SERVER_PID" 2>/dev/null || die "ferry did not start (see $OUT/ferry.log)"
        sleep 0.1
    done
    [[ -n $line ]] || die "ferry printed no listening line"
    PORT=${line##*:}
}

stop_server() {
    kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

# Starts `k` downloads from the stalled folder and waits until each has a read blocked in the file system.
start_stalls() { # k
    local k
    : >"$READS"
    CURLS=()
    for ((k = 1; k <= $1; k++)); do
        curl -s --max-time 3600 "ftp://bench:$PASS@127.0.0.1:$PORT/stalled/big$k.bin" -o /dev/null &
        CURLS+=($!)
    done
    for ((i = 0; i < 600; i++)); do
        (($(cut -d' ' -f3 "$READS" | sort -u | wc -l) >= $1)) && return 0
        sleep 0.05
    done
    die "the stalled downloads never reached the file system"
}

stop_stalls() {
    local p
    for p in "${CURLS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${CURLS[@]}"; do wait "$p" 2>/dev/null || true; done
    CURLS=()
}

log "results in $OUT (each read of /stalled blocks ${DELAY} s; $CONNS sessions send NOOPs for $DURATION s)"
for ((rep = 1; rep <= REPEAT; rep++)); do
    for zc in "${zero_copy_modes[@]}"; do
        for k in "${stalled_counts[@]}"; do
            json="$OUT/zero-copy-$zc-stalled-$k-$rep.json"
            log "--zero-copy $zc, $k stalled download(s) (repetition $rep of $REPEAT)"
            for ((attempt = 1; ; attempt++)); do
                wait_quiet
                t0=$(machine_ticks)
                our_seconds
                c0=$OUR_SECONDS w0=$EPOCHREALTIME
                start_server "$zc"
                start_stalls "$k"
                "$FERRY_BENCH_BIN" "127.0.0.1:$PORT" bench "$PASS" --label "zero-copy-$zc-stalled-$k" \
                    -w noop-concurrent --noop-connections "$CONNS" --noop-duration "$DURATION" \
                    --json "$json" >/dev/null || echo "  (ferry-bench reported a failure)" >&2
                stop_stalls
                stop_server
                other_cpus "$t0" "$c0" "$w0"
                busy=0
                at_most "$OTHER_CPUS" "$MAX_OTHER" && at_most "$QUIET_BEFORE" "$MAX_OTHER" || busy=1
                annotate "$json" "$OTHER_CPUS" "$QUIET_BEFORE" "$(loadavg)" "$attempt" "$busy"
                python3 - "$json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
l = r["latency"]
print(f"  NOOP p50 {l['p50_ms']:.2f} ms, p99 {l['p99_ms']:.2f} ms, max {l['max_ms']:.0f} ms; "
      f"{r['noops_per_s']:.0f} NOOP/s, errors {r['errors'] + r['open_errors']}", file=sys.stderr)
PY
                echo "  other processes: $OTHER_CPUS CPUs during the run, $QUIET_BEFORE before it" >&2
                [[ $busy == 0 || $ALLOW_BUSY == 1 ]] && break
                mv "$json" "$json.disturbed-$attempt"
                ((attempt < ATTEMPTS)) || die "refusing: other processes kept the machine busy ($OTHER_CPUS CPUs)"
            done
        done
    done
done

python3 - "$OUT" "$DELAY" "$CONNS" <<'PY'
import glob, json, os, statistics, sys
out, delay, conns = sys.argv[1], sys.argv[2], sys.argv[3]
cases = {}
for path in sorted(glob.glob(os.path.join(out, "zero-copy-*.json"))):
    doc = json.load(open(path))
    name = os.path.basename(path)[: -len(".json")].rsplit("-", 1)[0]
    cases.setdefault(name, []).append(doc)
print(f"\nNOOP round trips of {conns} sessions while downloads read a folder whose every read blocks "
      f"{delay} s (medians of the repetitions, range in brackets):\n")
print("| --zero-copy | stalled downloads | NOOP p50 | NOOP p99 | NOOP max | under 50 ms? | other CPUs |")
print("|---|---|---|---|---|---|---|")
for name, docs in sorted(cases.items(), key=lambda kv: (kv[0].split("-")[2], int(kv[0].split("-")[-1]))):
    zc, k = name.split("-")[2], name.split("-")[-1]
    rs = [d["results"][0] for d in docs]
    def cell(key):
        v = [r["latency"][key] for r in rs if r["noops"]]
        if not v:
            return "–"
        m = statistics.median(v)
        return f"{m:.1f} ms" + (f" ({min(v):.1f}–{max(v):.1f})" if len(v) > 1 else "")
    worst = max(r["latency"]["max_ms"] for r in rs)
    other = [d.get("conditions", {}).get("other_cpus", 0) for d in docs]
    busy = any(d.get("conditions", {}).get("busy") for d in docs)
    failed = sum(r["open_errors"] + r["errors"] for r in rs)
    if failed:
        # Sessions that could not even log in (or NOOPs without a reply within ferry-bench's timeout):
        # the server did not answer at all.
        verdict = f"**no**: {failed} sessions/NOOPs got no reply ({', '.join(set(e for r in rs for e in r['error_samples']))})"
    else:
        verdict = "yes" if worst < 50 else f"**no** (max {worst:.0f} ms)"
    print(f"| {zc} | {k} | {cell('p50_ms')} | {cell('p99_ms')} | {cell('max_ms')} | {verdict} | "
          f"{statistics.median(other):.2f}" + (" **busy**" if busy else "") + " |")
PY
