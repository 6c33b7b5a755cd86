#!/usr/bin/env bash
# Ferry against vsftpd and raw loopback TCP, on this machine, in one run.
#
# Starts Ferry (release build) and vsftpd (Debian package, foreground, own config, no system service)
# on 127.0.0.1 serving the same root with the same local user, measures raw loopback TCP with iperf3,
# runs every ferry-bench workload against each server in alternation (each run on a freshly started
# server), and prints Ferry/vsftpd and Ferry/loopback ratios. Results land in $BENCH_OUT as JSON.
#
# Usage (as root: it creates a local user and installs vsftpd/iperf3 if missing):
#   bench/compare.sh                     # full run (1 GiB files, 50/200/1000 clients, 1000/10000 idle)
#   BENCH_QUICK=1 bench/compare.sh       # about 2 minutes, smaller sizes and counts
#   BENCH_DOCS=1 bench/compare.sh        # also draw the charts and update docs/benchmarks.md
#
# Scale and setup (environment; defaults for the full run, BENCH_QUICK=1 ones in brackets):
#   BENCH_SIZE=1G [256M]             large RETR/STOR file       BENCH_REPEAT=3 [1]  throughput runs
#   BENCH_CLIENTS=50,200,1000 [50,200]  sessions workload clients  BENCH_DURATION=10 [4] s per run
#   BENCH_NOOP_DURATION=5 [2]        seconds of NOOPs           BENCH_NOOP_CONNECTIONS=1000 [200]
#   BENCH_IDLE=1000,10000 [1000]     idle sessions per run      BENCH_IPERF_SECS=10 [3]
#   BENCH_TLS=1                  FTPS workloads too           BENCH_SERVERS=ferry,vsftpd
#   BENCH_OUT=target/bench/DATE  result folder                BENCH_TMP=/dev/shm  where the root lives
#   FERRY_BIN, FERRY_BENCH_BIN   prebuilt binaries instead of `cargo build --release`
#   BENCH_FERRY_REV              what FERRY_BIN was built from (recorded in the results)
#   BENCH_NICE=0                 nice level of servers and client alike
#
# A quiet machine (other processes would measure themselves, not the servers):
#   BENCH_MAX_OTHER_CPU=0.15     CPUs that other processes may use, before and during a measurement
#   BENCH_QUIET_TIMEOUT=1800     seconds to wait for a quiet machine before refusing to measure
#   BENCH_ATTEMPTS=3             tries of a measurement that other processes disturbed, then refuse
#   BENCH_ALLOW_BUSY=0           1: measure anyway, results marked busy (for development only)
# Before each measurement the script samples /proc/stat for 3 s with nothing of its own running, and waits
# while other processes use more than BENCH_MAX_OTHER_CPU. During each measurement it counts the CPU
# time of the whole machine minus that of its own processes (the servers, the client, this script;
# interrupt time and the ksoftirqd threads, which do the loopback traffic's kernel work, aside): a
# measurement during which other processes used more is thrown away and repeated. Every result records
# the other processes' CPUs and the load average of its run; the summary prints them.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)

log() { printf '\n==== %s ====\n' "$*" >&2; }
die() { printf 'compare.sh: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (creates a local user for vsftpd, installs packages)"

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
    d_size=256M d_repeat=1 d_duration=4 d_noop=2 d_iperf=3 d_clients=50,200 d_idle=1000 d_noopc=200
else
    d_size=1G d_repeat=3 d_duration=10 d_noop=5 d_iperf=10 d_clients=50,200,1000 d_idle=1000,10000
    d_noopc=1000
fi
SIZE=${BENCH_SIZE:-$d_size}
REPEAT=${BENCH_REPEAT:-$d_repeat}
CLIENTS=${BENCH_CLIENTS:-$d_clients}
DURATION=${BENCH_DURATION:-$d_duration}
NOOP_DURATION=${BENCH_NOOP_DURATION:-$d_noop}
NOOP_CONNECTIONS=${BENCH_NOOP_CONNECTIONS:-$d_noopc}
IDLE=${BENCH_IDLE:-$d_idle}
IPERF_SECS=${BENCH_IPERF_SECS:-$d_iperf}
TLS=${BENCH_TLS:-1}
SERVERS=${BENCH_SERVERS:-ferry,vsftpd}
OUT=${BENCH_OUT:-$REPO/target/bench/$(date +%Y%m%d-%H%M%S)}
TMP_BASE=${BENCH_TMP:-/dev/shm}
BENCH_USER=${BENCH_USER:-ftpbench}
NICE=${BENCH_NICE:-0}
SMALL=1M

# --- tools -----------------------------------------------------------------------------------------
need_pkgs=()
command -v vsftpd >/dev/null || [[ $SERVERS != *vsftpd* ]] || need_pkgs+=(vsftpd)
command -v iperf3 >/dev/null || need_pkgs+=(iperf3)
command -v python3 >/dev/null || need_pkgs+=(python3)
if ((${#need_pkgs[@]})); then
    log "apt-get install ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d or not, the packaged service is never used: vsftpd runs below with its own config.
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
if [[ ${BENCH_DOCS:-0} == 1 ]] && ! python3 -c 'import matplotlib' 2>/dev/null; then
    log "installing matplotlib"
    python3 -m pip install -q matplotlib 2>/dev/null ||
        apt-get install -y -qq --no-install-recommends python3-matplotlib >/dev/null
fi

# Thousands of sessions need thousands of descriptors, in the servers and in the client.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if [[ -z ${FERRY_BIN:-} || -z ${FERRY_BENCH_BIN:-} ]]; then
    log "cargo build --release -p ferry -p ferry-bench"
    cargo build --release -q -p ferry -p ferry-bench
fi
FERRY_BIN=${FERRY_BIN:-$REPO/target/release/ferry}
FERRY_BENCH_BIN=${FERRY_BENCH_BIN:-$REPO/target/release/ferry-bench}

# --- a quiet machine (bench/quiet.sh: wait_quiet, machine_ticks, our_seconds, loadavg...) --------------
# shellcheck source=bench/quiet.sh
. "$REPO/bench/quiet.sh"


# --- the shared root, user and certificate ------------------------------------------------------------
mkdir -p "$OUT"
WORK=$(mktemp -d "$TMP_BASE/ferry-compare.XXXXXX")
ROOT=$WORK/root
# The benchmark user (vsftpd's session processes) must reach the root; the key stays root's.
chmod 755 "$WORK"
mkdir -p "$ROOT" "$WORK/tls"
chmod 700 "$WORK/tls"
PIDS=()
CREATED_USER=0

cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        # Each server runs in its own process group (setsid): end the group, sessions included.
        kill -TERM -- "-$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK" "$QUIET_TIMES"
    if [[ $CREATED_USER == 1 && -z ${BENCH_KEEP_USER:-} ]]; then
        userdel "$BENCH_USER" 2>/dev/null || true
    fi
}
trap cleanup EXIT

PASS=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
if ! id "$BENCH_USER" >/dev/null 2>&1; then
    useradd --no-create-home --home-dir "$ROOT" --shell /bin/sh "$BENCH_USER"
    CREATED_USER=1
else
    usermod --home "$ROOT" "$BENCH_USER"
fi
# SHA-512 crypt at its minimum cost instead of Debian's default yescrypt, which takes about 100 ms
# per login on a small VM: vsftpd is then not charged for password hashing that Ferry (whose --user
# password is compared in memory) does not do.
echo "$BENCH_USER:$PASS" | chpasswd --crypt-method SHA512 --sha-rounds 1000
grep -qx "$BENCH_USER" /etc/ftpusers 2>/dev/null && die "$BENCH_USER is listed in /etc/ftpusers"

"$FERRY_BIN" gen-cert --cert "$WORK/tls/cert.pem" --key "$WORK/tls/key.pem" >/dev/null

size_bytes() { # 1G -> 1073741824
    local s=${1%iB} n
    s=${s%B}
    n=${s%[KkMmGg]}
    case ${s: -1} in
        K | k) echo $((n << 10)) ;; M | m) echo $((n << 20)) ;; G | g) echo $((n << 30)) ;; *) echo "$s" ;;
    esac
}
SIZE_BYTES=$(size_bytes "$SIZE")
SMALL_BYTES=$(size_bytes "$SMALL")
log "preparing $ROOT ($SIZE and $SMALL files)"
head -c "$SIZE_BYTES" /dev/urandom >"$ROOT/bench-large-$SIZE_BYTES.bin"
head -c "$SMALL_BYTES" /dev/urandom >"$ROOT/bench-small-$SMALL_BYTES.bin"
chown -R "$BENCH_USER:" "$ROOT"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
FERRY_PORT=$(free_port)
VSFTPD_PORT=$(free_port)
IPERF_PORT=$(free_port)
# Passive ranges below the ephemeral range (so client ports never take them), one per server.
FERRY_PASV=${BENCH_FERRY_PASV:-20000-24999}
VSFTPD_PASV=${BENCH_VSFTPD_PASV:-25000-29999}

# Two configurations: without TLS for the plain workloads (with ssl_enable=YES every session process
# initialises OpenSSL and loads the certificate, about 10 ms per session here), with TLS for FTPS.
vsftpd_conf() { # ssl_enable
cat <<EOF
# vsftpd for benchmarking on loopback only: foreground, local user, no system service.
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$VSFTPD_PORT
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
local_root=$ROOT
chroot_local_user=NO
pam_service_name=vsftpd
secure_chroot_dir=/var/run/vsftpd/empty
userlist_enable=NO
tcp_wrappers=NO
pasv_enable=YES
pasv_min_port=${VSFTPD_PASV%-*}
pasv_max_port=${VSFTPD_PASV#*-}
connect_from_port_20=NO
max_clients=50000
max_per_ip=50000
# Its best-performing setup: no per-session network namespace (isolate_network=YES creates one per
# session, which is slow and fails in some containers), no seccomp filter, no transfer log.
isolate_network=NO
isolate=NO
seccomp_sandbox=NO
xferlog_enable=NO
dirmessage_enable=NO
use_localtime=NO
idle_session_timeout=600
data_connection_timeout=300
ssl_enable=$1
rsa_cert_file=$WORK/tls/cert.pem
rsa_private_key_file=$WORK/tls/key.pem
allow_anon_ssl=NO
force_local_data_ssl=NO
force_local_logins_ssl=NO
ssl_tlsv1=YES
ssl_sslv2=NO
ssl_sslv3=NO
require_ssl_reuse=NO
ssl_ciphers=HIGH
EOF
}
vsftpd_conf NO >"$WORK/vsftpd-plain.conf"
vsftpd_conf YES >"$WORK/vsftpd-tls.conf"
mkdir -p /var/run/vsftpd/empty

wait_port() { # port pid
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$2" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

SERVER_PID=
start_server() { # name plain|tls
    local tls_args=()
    if [[ $2 == tls ]]; then
        tls_args=(--tls-cert "$WORK/tls/cert.pem" --tls-key "$WORK/tls/key.pem" --tls-required none)
    fi
    case $1 in
        ferry)
            # Logging at warn: vsftpd runs without its transfer log too.
            FERRY_LOG=warn FERRY_USERS="$BENCH_USER:$PASS" setsid nice -n "$NICE" "$FERRY_BIN" \
                --root "$ROOT" --listen "127.0.0.1:$FERRY_PORT" --passive-ports "$FERRY_PASV" \
                --max-sessions 50000 --max-sessions-per-ip 50000 "${tls_args[@]}" \
                >>"$OUT/ferry.log" 2>&1 &
            ;;
        vsftpd)
            setsid nice -n "$NICE" vsftpd "$WORK/vsftpd-$2.conf" >>"$OUT/vsftpd.log" 2>&1 &
            ;;
        *) die "unknown server $1" ;;
    esac
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_port "$(port_of "$1")" "$SERVER_PID" || die "$1 did not start (see $OUT/$1.log)"
}

stop_server() {
    kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    # Stragglers of the group (vsftpd session processes) get a moment, then KILL; the next run starts
    # only once all of them are gone (reaping 20,000 processes takes a while and loads the CPUs).
    sleep 0.2
    kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 600; i++)); do
        pgrep -g "$SERVER_PID" >/dev/null || break
        sleep 0.1
    done
    sleep 1
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$SERVER_PID" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

port_of() { case $1 in ferry) echo "$FERRY_PORT" ;; vsftpd) echo "$VSFTPD_PORT" ;; esac; }

RUN=0
bench() { # server plain|tls tag ferry-bench-args...
    local server=$1 mode=$2 tag=$3
    shift 3
    RUN=$((RUN + 1))
    local json attempt t0 c0 w0 other busy
    json=$(printf '%s/%03d-%s-%s.json' "$OUT" "$RUN" "$server" "$tag")
    for ((attempt = 1; ; attempt++)); do
        wait_quiet
        t0=$(machine_ticks)
        our_seconds
        c0=$OUR_SECONDS w0=$EPOCHREALTIME
        start_server "$server" "$mode"
        nice -n "$NICE" "$FERRY_BENCH_BIN" "127.0.0.1:$(port_of "$server")" "$BENCH_USER" "$PASS" \
            --label "$server" --size "$SIZE_BYTES" --small-size "$SMALL_BYTES" --pid "$SERVER_PID" \
            --json "$json" "$@" || echo "  (ferry-bench reported a failure; the JSON has the details)" >&2
        stop_server
        other_cpus "$t0" "$c0" "$w0"
        other=$OTHER_CPUS
        busy=0
        at_most "$other" "$MAX_OTHER" && at_most "$QUIET_BEFORE" "$MAX_OTHER" || busy=1
        echo "  other processes: $other CPUs during the run, $QUIET_BEFORE before it (limit" \
            "$MAX_OTHER); load average $(loadavg)" >&2
        annotate "$json" "$other" "$QUIET_BEFORE" "$(loadavg)" "$attempt" "$busy"
        [[ $busy == 0 || $ALLOW_BUSY == 1 ]] && break
        # A disturbed result is kept for inspection under a name the summary does not read.
        mv "$json" "$json.disturbed-$attempt" 2>/dev/null || true
        ((attempt < ATTEMPTS)) ||
            die "refusing: other processes kept the machine busy during $server $tag in $ATTEMPTS attempts" \
                "(last: $other CPUs; busiest: $(top_others))"
        echo "  disturbed by other processes: repeating ($attempt of $ATTEMPTS)" >&2
    done
}

iperf() { # repetition
    log "raw loopback TCP: iperf3 -t $IPERF_SECS"
    wait_quiet
    iperf3 -s -1 -B 127.0.0.1 -p "$IPERF_PORT" >/dev/null 2>&1 &
    local spid=$!
    # No connection probe here: iperf3 -1 would take the probe for its one client.
    sleep 0.5
    iperf3 -c 127.0.0.1 -p "$IPERF_PORT" -t "$IPERF_SECS" -J >"$OUT/iperf3-$1.json"
    wait "$spid" 2>/dev/null || true
    python3 - "$OUT/iperf3-$1.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"  loopback TCP: {d['end']['sum_received']['bits_per_second'] / 8e6:.0f} MB/s")
PY
}

IFS=, read -r -a servers <<<"$SERVERS"
order() { # repetition -> servers, alternating who goes first
    if (($1 % 2)); then printf '%s\n' "${servers[@]}"; else printf '%s\n' "${servers[@]}" | tac; fi
}

cat >"$OUT/meta.json" <<EOF
{
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "kernel": "$(uname -r)",
  "cpus": $(nproc),
  "memory_kib": $(awk '/MemTotal/ {print $2}' /proc/meminfo),
  "cpu_model": "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)",
  "ferry_rev": "${BENCH_FERRY_REV:-$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo -dirty)}",
  "load_start": "$(cut -d' ' -f1-3 /proc/loadavg)",
  "nice": $NICE,
  "max_other_cpus": $MAX_OTHER,
  "allow_busy": $ALLOW_BUSY,
  "password_hash": "vsftpd: SHA-512 crypt at its minimum cost (1000 rounds); Ferry: FERRY_USERS, compared in memory",
  "limits": "both servers' session limits lifted: vsftpd max_clients and max_per_ip 50000; Ferry --max-sessions and --max-sessions-per-ip 50000",
  "vsftpd": "$(vsftpd -v 0>&1 2>/dev/null | head -n1)",
  "iperf3": "$(iperf3 --version | head -n1)",
  "root_fs": "$(df --output=fstype "$ROOT" | tail -n1)",
  "quick": $QUICK,
  "size": $SIZE_BYTES,
  "small_size": $SMALL_BYTES,
  "repeat": $REPEAT,
  "clients": "$CLIENTS",
  "duration": $DURATION,
  "noop_duration": $NOOP_DURATION,
  "noop_connections": $NOOP_CONNECTIONS,
  "idle": "$IDLE",
  "iperf_secs": $IPERF_SECS
}
EOF

log "results in $OUT"
started=$SECONDS
IFS=, read -r -a client_counts <<<"$CLIENTS"
IFS=, read -r -a idle_counts <<<"$IDLE"
# Every workload is repeated BENCH_REPEAT times (the summary quotes medians and their spread); within a
# repetition the servers alternate which goes first.
for ((rep = 1; rep <= REPEAT; rep++)); do
    iperf "$rep"
    for s in $(order "$rep"); do
        log "$s: retr,stor (repetition $rep of $REPEAT)"
        bench "$s" plain "throughput$rep" -w retr,stor
        if [[ $TLS == 1 ]]; then
            log "$s: retr-tls,stor-tls (repetition $rep of $REPEAT)"
            bench "$s" tls "tls$rep" -w retr-tls,stor-tls
        fi
    done
    i=0
    for c in "${client_counts[@]}"; do
        i=$((i + 1))
        for s in $(order $((rep + i))); do
            log "$s: sessions, $c clients, $DURATION s (repetition $rep of $REPEAT)"
            bench "$s" plain "sessions$c-$rep" -w sessions --clients "$c" --duration "$DURATION"
        done
    done
    for s in $(order "$rep"); do
        log "$s: NOOP, one connection and $NOOP_CONNECTIONS (repetition $rep of $REPEAT)"
        bench "$s" plain "noop-$rep" -w noop,noop-concurrent --noop-duration "$NOOP_DURATION" \
            --noop-connections "$NOOP_CONNECTIONS"
    done
    i=0
    for m in "${idle_counts[@]}"; do
        i=$((i + 1))
        for s in $(order $((rep + i))); do
            log "$s: $m idle sessions (repetition $rep of $REPEAT)"
            bench "$s" plain "idle$m-$rep" -w idle --idle "$m"
        done
    done
done
log "done in $((SECONDS - started)) s"
cut -d' ' -f1-3 /proc/loadavg >"$OUT/load-end.txt"

if [[ ${BENCH_DOCS:-0} == 1 ]]; then
    # The docs keep the raw results of the run they show.
    rm -rf "$REPO/docs/bench/results"
    mkdir -p "$REPO/docs/bench/results"
    cp "$OUT"/*.json "$OUT/load-end.txt" "$REPO/docs/bench/results/"
    python3 "$REPO/bench/plot.py" "$REPO/docs/bench/results" --charts "$REPO/docs/bench" \
        --update-docs "$REPO/docs/benchmarks.md"
else
    python3 "$REPO/bench/plot.py" "$OUT"
fi
