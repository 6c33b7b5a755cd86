#!/usr/bin/env bash
# Before and after: the large-file throughput of two Ferry binaries in one run, alternating which goes
# first, on a quiet machine (bench/quiet.sh), each run on a freshly started server over a root on tmpfs.
# Prints the median MB/s of each binary per workload with its range, and B/A.
#
#   bench/ab.sh OLD_FERRY NEW_FERRY              # e.g. a release build copied out of target/ before a change
# Settings (environment):
#   BENCH_WORKLOADS=retr,stor,retr-tls,stor-tls  ferry-bench workloads      BENCH_SIZE=1G  file size
#   BENCH_REPEAT=7                               runs of each binary         BENCH_ARGS   more ferry args
#   FERRY_BENCH_BIN=target/release/ferry-bench   the client (built when missing)
#   BENCH_OUT=target/bench/ab-DATE               result folder
#   and the quiet-machine settings of bench/quiet.sh (BENCH_MAX_OTHER_CPU, BENCH_ALLOW_BUSY...).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
die() {
    printf 'ab.sh: %s\n' "$*" >&2
    exit 1
}
[[ $# -eq 2 ]] || die "usage: bench/ab.sh OLD_FERRY NEW_FERRY"
A=$(realpath "$1")
B=$(realpath "$2")
[[ -x $A && -x $B ]] || die "both binaries must exist and be executable"
WORKLOADS=${BENCH_WORKLOADS:-retr,stor,retr-tls,stor-tls}
SIZE=${BENCH_SIZE:-1G}
REPEAT=${BENCH_REPEAT:-7}
OUT=${BENCH_OUT:-$REPO/target/bench/ab-$(date +%Y%m%d-%H%M%S)}
if [[ -z ${FERRY_BENCH_BIN:-} ]]; then
    cargo build --release -q -p ferry-bench
fi
FERRY_BENCH_BIN=${FERRY_BENCH_BIN:-$REPO/target/release/ferry-bench}
# shellcheck source=bench/quiet.sh
. "$REPO/bench/quiet.sh"

mkdir -p "$OUT"
WORK=$(mktemp -d /dev/shm/ferry-ab.XXXXXX)
SERVER_PID=
cleanup() {
    [[ -n $SERVER_PID ]] && kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK" "$QUIET_TIMES"
}
trap cleanup EXIT
mkdir -p "$WORK/root"
"$A" gen-cert --cert "$WORK/cert.pem" --key "$WORK/key.pem" >/dev/null
PASS=ab-$RANDOM$RANDOM
printf '%s\n' "A $A" "B $B" >"$OUT/binaries.txt"

run_one() { # A|B binary rep
    local json="$OUT/$3-$1.json" out="$WORK/server.out" addr=""
    for ((attempt = 1; ; attempt++)); do
        wait_quiet
        t0=$(machine_ticks)
        our_seconds
        c0=$OUR_SECONDS w0=$EPOCHREALTIME
        : >"$out"
        # shellcheck disable=SC2086 # BENCH_ARGS are words
        FERRY_LOG=warn FERRY_USERS="bench:$PASS" "$2" --root "$WORK/root" --listen 127.0.0.1:0 \
            --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" --tls-required none \
            ${BENCH_ARGS:-} >"$out" 2>>"$OUT/ferry-$1.log" &
        SERVER_PID=$!
        for ((i = 0; i < 300; i++)); do
            addr=$(sed -n 's|.*listening on ftp://\([0-9.]*:[0-9]*\)/.*|\1|p' "$out" | head -n 1)
            [[ -n $addr ]] && break
            kill -0 "$SERVER_PID" 2>/dev/null || die "$2 did not start"
            sleep 0.1
        done
        "$FERRY_BENCH_BIN" "$addr" bench "$PASS" --label "$1" -w "$WORKLOADS" --size "$SIZE" \
            --json "$json" >/dev/null || echo "  (ferry-bench reported a failure)" >&2
        kill -TERM "$SERVER_PID"
        wait "$SERVER_PID" || true
        SERVER_PID=
        other_cpus "$t0" "$c0" "$w0"
        busy=0
        at_most "$OTHER_CPUS" "$MAX_OTHER" && at_most "$QUIET_BEFORE" "$MAX_OTHER" || busy=1
        annotate "$json" "$OTHER_CPUS" "$QUIET_BEFORE" "$(loadavg)" "$attempt" "$busy"
        echo "  $1 run $3: other processes $OTHER_CPUS CPUs" >&2
        [[ $busy == 0 || $ALLOW_BUSY == 1 ]] && break
        mv "$json" "$json.disturbed-$attempt"
        ((attempt < ATTEMPTS)) || die "refusing: other processes kept the machine busy ($OTHER_CPUS CPUs)"
    done
}

for ((rep = 1; rep <= REPEAT; rep++)); do
    if ((rep % 2)); then
        run_one A "$A" "$rep"
        run_one B "$B" "$rep"
    else
        run_one B "$B" "$rep"
        run_one A "$A" "$rep"
    fi
done

python3 - "$OUT" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
runs = {"A": {}, "B": {}}
busy = 0
for path in glob.glob(os.path.join(out, "*-[AB].json")):
    doc = json.load(open(path))
    busy += bool(doc.get("conditions", {}).get("busy"))
    for r in doc["results"]:
        if "mb_per_s" in r:
            runs[doc["label"]].setdefault(r["workload"], []).append(r["mb_per_s"])
print("| workload | A: MB/s, median (range) | B: MB/s, median (range) | B/A |")
print("|---|---|---|---|")
for w in sorted(set(runs["A"]) | set(runs["B"])):
    a, b = runs["A"].get(w, []), runs["B"].get(w, [])
    cell = lambda v: f"{statistics.median(v):,.0f} ({min(v):,.0f}–{max(v):,.0f})" if v else "–"
    ratio = f"{statistics.median(b) / statistics.median(a):.2f}×" if a and b else "–"
    print(f"| {w} | {cell(a)} | {cell(b)} | {ratio} |")
print(f"\n{open(os.path.join(out, 'binaries.txt')).read().strip()}")
if busy:
    print(f"**{busy} runs marked busy** (BENCH_ALLOW_BUSY=1): not valid figures.")
PY
