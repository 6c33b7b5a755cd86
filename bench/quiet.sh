# Shared by the benchmark scripts (sourced): measure only on a quiet machine. Other processes on the CPUs
# measure themselves, not the servers. Settings (environment):
#   BENCH_MAX_OTHER_CPU=0.15     CPUs that other processes may use, before and during a measurement
#   BENCH_QUIET_TIMEOUT=1800     seconds to wait for a quiet machine before refusing to measure
#   BENCH_ATTEMPTS=3             tries of a measurement that other processes disturbed, then refuse
#   BENCH_ALLOW_BUSY=0           1: measure anyway, results marked busy (for development only)
# The sourcing script defines die(). Typical use around one measurement:
#   wait_quiet; t0=$(machine_ticks); our_seconds; c0=$OUR_SECONDS w0=$EPOCHREALTIME
#   ... start the server, measure, stop the server (waited for) ...
#   other_cpus "$t0" "$c0" "$w0"; echo "$OTHER_CPUS"
# Scratch file of our_seconds; the sourcing script removes it on exit.
QUIET_TIMES=$(mktemp)

MAX_OTHER=${BENCH_MAX_OTHER_CPU:-0.15}
QUIET_TIMEOUT=${BENCH_QUIET_TIMEOUT:-1800}
ATTEMPTS=${BENCH_ATTEMPTS:-3}
ALLOW_BUSY=${BENCH_ALLOW_BUSY:-0}
HZ=$(getconf CLK_TCK)

# CPU time of the whole machine, in clock ticks: user, nice, system and steal (a neighbour VM's time is
# load too); interrupt and softirq time aside, as the kernel's part of our own loopback traffic.
machine_ticks() {
    local busy k
    busy=$(awk '/^cpu / {print $2 + $3 + $4 + $9; exit}' /proc/stat)
    # ksoftirqd threads run softirq work deferred from interrupts: ours too.
    for k in /proc/[0-9]*/stat; do
        case $(cat "${k%/stat}/comm" 2>/dev/null) in
            ksoftirqd/*) busy=$((busy - $(awk '{print $14 + $15}' "$k" 2>/dev/null || echo 0))) ;;
        esac
    done
    echo "$busy"
}

# CPU seconds used by this script and its waited-for children (servers once stopped, the client,
# helpers), into OUR_SECONDS. From the shell's own `times`: call it directly, never in $(...), whose
# subshell would count only itself.
OUR_SECONDS=0
our_seconds() {
    times >"$QUIET_TIMES"
    OUR_SECONDS=$(awk '{ for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); s += a[1] * 60 + a[2] } }
         END { printf "%.3f\n", s }' "$QUIET_TIMES")
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# The processes that used the most CPU lately, for the message of a busy machine.
top_others() {
    ps -eo pcpu=,comm= --sort=-pcpu 2>/dev/null | head -n 3 | awk '{printf "%s%s %s%%", sep, $2, $1; sep=", "}'
}

# Float comparison: $1 <= $2.
at_most() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

# Waits (up to BENCH_QUIET_TIMEOUT) until other processes use at most BENCH_MAX_OTHER_CPU over 3 s;
# sets QUIET_BEFORE to the figure. Refuses to go on otherwise, unless BENCH_ALLOW_BUSY=1.
QUIET_BEFORE=
wait_quiet() {
    local start=$SECONDS t0 t1
    while :; do
        t0=$(machine_ticks)
        sleep 3
        t1=$(machine_ticks)
        QUIET_BEFORE=$(awk -v d=$((t1 - t0)) -v hz="$HZ" 'BEGIN { printf "%.2f", d / hz / 3 }')
        at_most "$QUIET_BEFORE" "$MAX_OTHER" && return 0
        echo "  machine busy: other processes use $QUIET_BEFORE CPUs (limit $MAX_OTHER), load average" \
            "$(loadavg); busiest: $(top_others)" >&2
        if ((SECONDS - start >= QUIET_TIMEOUT)); then
            if [[ $ALLOW_BUSY == 1 ]]; then
                echo "  BENCH_ALLOW_BUSY=1: measuring anyway; the result is marked busy" >&2
                return 0
            fi
            die "refusing to measure: the machine was not quiet for $QUIET_TIMEOUT s (other processes" \
                "used $QUIET_BEFORE CPUs); stop them, or BENCH_ALLOW_BUSY=1 for results marked busy"
        fi
        sleep 10
    done
}

# Other processes' CPUs since a measurement's start (machine ticks, our seconds, wall time), into
# OTHER_CPUS: the machine's CPU time minus ours, over the wall time. Call it directly (see our_seconds).
OTHER_CPUS=0
other_cpus() { # t0 c0 w0
    local t1 w1
    t1=$(machine_ticks)
    our_seconds
    w1=$EPOCHREALTIME
    OTHER_CPUS=$(awk -v t=$((t1 - $1)) -v hz="$HZ" -v c0="$2" -v c1="$OUR_SECONDS" -v w0="$3" -v w1="$w1" \
        'BEGIN { o = (t / hz - (c1 - c0)) / (w1 - w0); if (o < 0) o = 0; printf "%.2f", o }')
}

# Adds the conditions of a measurement to its JSON file.
annotate() { # json other_cpus quiet_before load attempt busy
    python3 - "$@" <<'PY'
import json, sys
path, other, before, load, attempt, busy = sys.argv[1:]
try:
    with open(path) as f:
        doc = json.load(f)
except (OSError, ValueError):
    sys.exit(0)
doc["conditions"] = {
    "other_cpus": float(other),
    "other_cpus_before": float(before),
    "load_average": load,
    "attempt": int(attempt),
    "busy": busy == "1",
}
with open(path, "w") as f:
    json.dump(doc, f, indent=1)
PY
}
