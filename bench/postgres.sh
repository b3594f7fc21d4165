#!/usr/bin/env bash
# Times msgr on PostgreSQL against msgr on SQLite, side by side, in one
# run, on loopback only.
#
#   bash bench/postgres.sh            # everything (a few minutes)
#   RUNS=30 MESSAGES=50000 bash bench/postgres.sh
#   JOBS=create bash bench/postgres.sh   # some of the jobs: persistent, create, wake, nodes
#
# Uses the PostgreSQL server in MSGR_BENCH_DATABASE_URL (a user who may
# create databases; the run makes and drops its own), else makes a
# throwaway cluster in a temporary directory (installing Debian's
# postgresql package if initdb is missing), with PostgreSQL's durable
# defaults (fsync and synchronous_commit on), as the SQLite store commits
# durably too. Starts one msgr server on SQLite and two on one PostgreSQL
# database, and prints medians and ratios: one-shot create (with the mean
# time of each request on each server, from their own metrics), the time
# from a send's acknowledgement to a waiting reader's answer on another
# server, and persistent sends through one and two servers (with how busy
# the machine's cores were meanwhile). The
# persistent jobs come last: they queue and delete hundreds of thousands
# of messages, and PostgreSQL's autovacuum then works for a while after
# them, which the one-shot jobs would measure too.
#
# On one machine, two servers share the cores one server had: the second
# brings none. The nodes job gives each PostgreSQL server a CPU budget of
# its own (NODE_CORES, a cgroup's CPU quota), as a node on a machine of its
# own has, and compares two such servers with one; it needs root and a
# cgroup CPU controller it may write (v2, or v1 at /sys/fs/cgroup/cpu), and
# says so and skips itself without them.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-40}
# Each job is run in ROUNDS alternating rounds, so that drift in the
# machine's load lands on both sides; medians are over all rounds.
ROUNDS=${ROUNDS:-5}
MESSAGES=${MESSAGES:-100000}
# The persistent loads go to one recipient, then are spread over this many
# (one queue each, as on a server with many users).
RECIPIENTS=${RECIPIENTS:-16}
WAKES=${WAKES:-200}
# Each server's CPU budget in the nodes job, in cores, one set of runs each.
NODE_CORES=${NODE_CORES:-0.25 0.5 0.75}
NODE_MESSAGES=${NODE_MESSAGES:-30000}
JOBS=${JOBS:-persistent create wake nodes}
OUT=${OUT:-target/bench-postgres}
BODY='Hello John! How are you?'

# --- tools -------------------------------------------------------------------
missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v python3 >/dev/null || missing+=(python3)
command -v curl >/dev/null || missing+=(curl)
command -v psql >/dev/null || missing+=(postgresql-client)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release --quiet --bin msgr --example load
target_dir=$(realpath "${CARGO_TARGET_DIR:-target}")
MSGR_BIN=$target_dir/release/msgr
LOAD_BIN=$target_dir/release/examples/load

work=$(mktemp -d)
chmod 755 "$work"
mkdir -p "$OUT"
rm -f "$OUT"/*.json
pids=()
cgroups=()
pg_ctl_cmd=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for group in "${cgroups[@]}"; do rmdir "$group" 2>/dev/null || true; done
  if [ -n "${bench_db:-}" ]; then drop_db; fi
  if [ ${#pg_ctl_cmd[@]} -gt 0 ]; then "${pg_ctl_cmd[@]}" -m immediate stop >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ratio() { # A / B, or - for a job not run
  python3 -c 'import sys; a, b = sys.argv[1:]; print("-" if "-" in (a, b) else "%.2f" % (float(a) / float(b)))' "$1" "$2"
}
median_of() { python3 -c 'import statistics, sys; print("%.0f" % statistics.median(map(float, sys.argv[1:])))' "$@"; }
# median NAME INDEX: median ms of the INDEXth command over $OUT/NAME-*.json
median() {
  python3 - "$OUT" "$1" "$2" <<'PY'
import glob, json, statistics, sys
out, name, index = sys.argv[1], sys.argv[2], int(sys.argv[3])
times = [t for f in glob.glob(f"{out}/{name}-[0-9]*.json") for t in json.load(open(f))["results"][index]["times"]]
print("%.2f" % (statistics.median(times) * 1000))
PY
}

# --- PostgreSQL ----------------------------------------------------------------
if [ -z "${MSGR_BENCH_DATABASE_URL:-}" ]; then
  pg_bin=$(command -v initdb || ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$pg_bin" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)
  fi
  pg_bin=$(dirname "$pg_bin")
  as_postgres=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --user-group --no-create-home postgres
    as_postgres=(runuser -u postgres --)
  fi
  mkdir "$work/pg"
  chown postgres: "$work/pg" 2>/dev/null || true
  "${as_postgres[@]}" "$pg_bin/initdb" -D "$work/pg/data" -U postgres --auth=trust -E UTF8 >/dev/null
  PG_PORT=$(free_port)
  pg_ctl_cmd=("${as_postgres[@]}" "$pg_bin/pg_ctl" -D "$work/pg/data")
  "${pg_ctl_cmd[@]}" -l "$work/pg/log" -w start \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $work/pg -c max_connections=200 -c shared_buffers=256MB" >/dev/null
  MSGR_BENCH_DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
fi
# The run's own database, dropped at exit (after the servers stop).
bench_db="msgr_bench_$$"
psql -q "$MSGR_BENCH_DATABASE_URL" -c "CREATE DATABASE $bench_db" >/dev/null
drop_db() { psql -q "$MSGR_BENCH_DATABASE_URL" -c "DROP DATABASE IF EXISTS $bench_db WITH (FORCE)" >/dev/null 2>&1 || true; }
server_url=${MSGR_BENCH_DATABASE_URL%%\?*}
DB_URL="${server_url%/*}/$bench_db"

# --- servers -----------------------------------------------------------------
# The queue and rate limits are raised, as in bench/compare.sh.
LIMITS=(--max-queued-messages 10000000 --max-queued-bytes 100000000000
  --max-registrations-per-hour 100000 --max-logins-per-minute 100000
  --max-connections-per-source 1000 --max-lookups-per-minute 100000)
SQLITE_METRICS=$(free_port)
PG_METRICS=$(free_port)
start_server() { # NAME STORE-ARGS...: start it (not in a subshell: its pid is kept)
  local name=$1; shift
  "$MSGR_BIN" serve 0 --bind 127.0.0.1 "$@" "${LIMITS[@]}" >"$work/$name.out" 2>"$work/$name.log" &
  pids+=("$!")
}
port_of() { # NAME: wait for the server's address, print its port
  for _ in $(seq 100); do grep -q listening "$work/$1.out" 2>/dev/null && break; sleep 0.1; done
  sed -n 's/^msgr listening on .*:\([0-9]*\)$/\1/p' "$work/$1.out"
}
start_server sqlite --data-dir "$work/sqlite" --metrics "127.0.0.1:$SQLITE_METRICS"
start_server pg-a --database "$DB_URL" --metrics "127.0.0.1:$PG_METRICS"
PG_A_PID=${pids[-1]}
SQLITE_PORT=$(port_of sqlite)
PG_A=$(port_of pg-a)
# The second after the first has made the tables and the certificate.
start_server pg-b --database "$DB_URL"
PG_B_PID=${pids[-1]}
PG_B=$(port_of pg-b)
for port in "$SQLITE_PORT" "$PG_A"; do
  M="$MSGR_BIN --server localhost:$port --config-dir $work/client"
  for user in Alice John; do $M --user "$user" register >/dev/null 2>&1; done
  $M --user Alice key John >/dev/null
  $M --user Alice login >/dev/null
done
echo "msgr $($MSGR_BIN --version | cut -d' ' -f2): SQLite on port $SQLITE_PORT, PostgreSQL servers on ports $PG_A and $PG_B; $(nproc) cores; $RUNS runs, $ROUNDS rounds"
echo

wants() { [[ " $JOBS " == *" $1 "* ]]; }
single=(- - -) spread=(- - -) busy_single=(- - -) busy_spread=(- - -) create_sqlite=- create_pg=- wake_sqlite=- wake_same=- wake_across=-
breakdown=''

# --- 1. one-shot create ----------------------------------------------------------
# requests PORT: each request type's total seconds and count so far, from
# the server's metrics
requests() { curl -s "http://127.0.0.1:$1/metrics" | sed -n 's/^msgr_request_duration_seconds_\(sum\|count\){type="\([a-z_]*\)"} \(.*\)$/\2 \1 \3/p'; }
# mean_ms BEFORE AFTER TYPE: mean milliseconds of TYPE between two snapshots
mean_ms() {
  python3 - "$1" "$2" "$3" <<'PY'
import sys
def load(path):
    values = {}
    for line in open(path):
        kind, field, value = line.split()
        values[kind, field] = float(value)
    return values
before, after, kind = load(sys.argv[1]), load(sys.argv[2]), sys.argv[3]
count = after.get((kind, "count"), 0) - before.get((kind, "count"), 0)
total = after.get((kind, "sum"), 0) - before.get((kind, "sum"), 0)
print("%.2f ms" % (total / count * 1000) if count else "-")
PY
}
if wants create; then
  requests "$SQLITE_METRICS" >"$work/sqlite-before"; requests "$PG_METRICS" >"$work/pg-before"
  for round in $(seq "$ROUNDS"); do
    hyperfine -N --warmup 2 --runs $((RUNS / ROUNDS)) --export-json "$OUT/create-$round.json" --style none \
      "$MSGR_BIN --server localhost:$SQLITE_PORT --config-dir $work/client --user Alice create John '$BODY'" \
      "$MSGR_BIN --server localhost:$PG_A --config-dir $work/client --user Alice create John '$BODY'" >/dev/null
  done
  create_sqlite=$(median create 0); create_pg=$(median create 1)
  requests "$SQLITE_METRICS" >"$work/sqlite-after"; requests "$PG_METRICS" >"$work/pg-after"
  for kind in authenticate get_key send; do
    breakdown+="| \`$kind\` | $(mean_ms "$work/sqlite-before" "$work/sqlite-after" $kind) | $(mean_ms "$work/pg-before" "$work/pg-after" $kind) |
"
  done
fi

# --- 2. wake-up of a waiting reader ---------------------------------------------
wake_p50() { "$LOAD_BIN" "$@" --mode wake --messages "$WAKES" | sed -n 's/.* p50=\([0-9.]*\) ms.*/\1/p'; }
if wants wake; then
  wake_sqlite=$(wake_p50 --server "localhost:$SQLITE_PORT")
  wake_same=$(wake_p50 --server "localhost:$PG_A")
  wake_across=$(wake_p50 --server "localhost:$PG_A" --server "localhost:$PG_B")
fi

# --- 3. persistent sends: SQLite, PostgreSQL through one server, through two ---
# load_run ARGS: "RATE BUSY", the rate of one persistent load (msg/s) and
# how busy the machine's cores were meanwhile (%, as the load generator
# reports it: near 100 the machine is the limit, well below something
# waits, a lock or a round trip).
load_run() {
  "$LOAD_BIN" "$@" --mode persistent --clients 8 --window 16 --messages "${messages:-$MESSAGES}" |
    sed -n 's/.* rate=\([0-9]*\) msg\/s.* cores_busy=\([0-9]*\)%.*/\1 \2/p'
}
# persistent RECIPIENTS: median rates on SQLite, through one PostgreSQL
# server and through two, into rates, and the median busy shares of the
# machine's CPU time during each, into busy
persistent() {
  local sqlite=() one=() two=() sqlite_busy=() one_busy=() two_busy=() run
  for _ in $(seq "$ROUNDS"); do
    read -ra run <<<"$(load_run --recipients "$1" --server "localhost:$SQLITE_PORT")"
    sqlite+=("${run[0]}"); sqlite_busy+=("${run[1]}")
    read -ra run <<<"$(load_run --recipients "$1" --server "localhost:$PG_A")"
    one+=("${run[0]}"); one_busy+=("${run[1]}")
    read -ra run <<<"$(load_run --recipients "$1" --server "localhost:$PG_A" --server "localhost:$PG_B")"
    two+=("${run[0]}"); two_busy+=("${run[1]}")
  done
  rates=("$(median_of "${sqlite[@]}")" "$(median_of "${one[@]}")" "$(median_of "${two[@]}")")
  busy=("$(median_of "${sqlite_busy[@]}")" "$(median_of "${one_busy[@]}")" "$(median_of "${two_busy[@]}")")
}
if wants persistent; then
  persistent 1
  single=("${rates[@]}") busy_single=("${busy[@]}")
  persistent "$RECIPIENTS"
  spread=("${rates[@]}") busy_spread=("${busy[@]}")
fi

# --- 4. two nodes against one, each server on a CPU budget of its own ----------
# cpu_budget_dir NAME: make a cgroup for one server and print its directory,
# or print nothing if this machine lets us make none
cpu_budget_dir() {
  local dir
  if [ -w /sys/fs/cgroup/cgroup.subtree_control ] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    echo +cpu >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || return 0
    dir=/sys/fs/cgroup/msgr-bench-$$-$1
  elif [ -w /sys/fs/cgroup/cpu ]; then
    dir=/sys/fs/cgroup/cpu/msgr-bench-$$-$1
  else
    return 0
  fi
  if mkdir "$dir" 2>/dev/null; then echo "$dir"; fi
}
# set_budget DIR CORES: limit the cgroup to CORES of CPU time, measured
# over 10 ms periods (short, so that a server is held back in small steps);
# fails if the system refuses (a quota under 1 ms, say: CORES below 0.1)
set_budget() {
  local quota
  quota=$(python3 -c 'import sys; print(round(float(sys.argv[1]) * 10000))' "$2")
  if [ -e "$1/cpu.max" ]; then
    echo "$quota 10000" >"$1/cpu.max"
  else
    echo 10000 >"$1/cpu.cfs_period_us" && echo "$quota" >"$1/cpu.cfs_quota_us"
  fi
}
node_rows=''
if wants nodes; then
  node_a=$(cpu_budget_dir a) node_b=$(cpu_budget_dir b)
  for group in "$node_a" "$node_b"; do if [ -n "$group" ]; then cgroups+=("$group"); fi; done
  if [ ${#cgroups[@]} -lt 2 ]; then
    echo "nodes job skipped: it needs root and a cgroup CPU controller it may write (cgroup v2, or v1 at /sys/fs/cgroup/cpu)" >&2
  elif ! { echo "$PG_A_PID" >"$node_a/cgroup.procs" && echo "$PG_B_PID" >"$node_b/cgroup.procs"; } 2>/dev/null; then
    echo "nodes job skipped: the servers could not be moved into their cgroups" >&2
  else
    for cores in $NODE_CORES; do
      if ! { set_budget "$node_a" "$cores" && set_budget "$node_b" "$cores"; } 2>/dev/null; then
        echo "nodes job stopped: the system refused a budget of $cores cores (0.1 is the least)" >&2
        break
      fi
      row="| $cores |"
      for recipients in 1 "$RECIPIENTS"; do
        one=() two=()
        for _ in $(seq "$ROUNDS"); do
          read -ra run <<<"$(messages=$NODE_MESSAGES load_run --recipients "$recipients" --server "localhost:$PG_A")"
          one+=("${run[0]}")
          read -ra run <<<"$(messages=$NODE_MESSAGES load_run --recipients "$recipients" --server "localhost:$PG_A" --server "localhost:$PG_B")"
          two+=("${run[0]}")
        done
        one_rate=$(median_of "${one[@]}") two_rate=$(median_of "${two[@]}")
        row+=" $one_rate msg/s | $two_rate msg/s | $(ratio "$two_rate" "$one_rate") |"
      done
      node_rows+="$row
"
    done
  fi
fi

cat <<REPORT
| job | SQLite | PostgreSQL | ratio (PostgreSQL/SQLite) |
| --- | --- | --- | --- |
| persistent sends to one recipient, 8 connections × 16 in flight, one server | ${single[0]} msg/s | ${single[1]} msg/s | $(ratio "${single[1]}" "${single[0]}") |
| the same through two servers on one database | | ${single[2]} msg/s | $(ratio "${single[2]}" "${single[1]}") of one server |
| persistent sends spread over $RECIPIENTS recipients, one server | ${spread[0]} msg/s | ${spread[1]} msg/s | $(ratio "${spread[1]}" "${spread[0]}") |
| the same through two servers on one database | | ${spread[2]} msg/s | $(ratio "${spread[2]}" "${spread[1]}") of one server |
| one-shot create, median wall | $create_sqlite ms | $create_pg ms | $(ratio "$create_pg" "$create_sqlite") |
| waiting reader woken, acknowledgement to answer, p50 (same server) | $wake_sqlite ms | $wake_same ms | |
| the same, reader on the other server | | $wake_across ms | |

How busy the machine's cores were during the persistent loads (median
share of CPU time not idle, every process counted; from /proc/stat):

| persistent sends | SQLite | PostgreSQL, one server | PostgreSQL, two servers |
| --- | --- | --- | --- |
| to one recipient | ${busy_single[0]} % | ${busy_single[1]} % | ${busy_single[2]} % |
| spread over $RECIPIENTS recipients | ${busy_spread[0]} % | ${busy_spread[1]} % | ${busy_spread[2]} % |

Mean time of each request of the one-shot creates, on the server:

| request | SQLite | PostgreSQL |
| --- | --- | --- |
${breakdown:-| - | - | - |
}

Two PostgreSQL servers against one, each server held to a CPU budget of
its own, as on a machine of its own (median of $ROUNDS alternating rounds
of $NODE_MESSAGES persistent sends; PostgreSQL and the load generator
share what is left of the $(nproc) cores):

| each server's budget (cores) | to one recipient, one server | two servers | two against one | over $RECIPIENTS recipients, one server | two servers | two against one |
| --- | --- | --- | --- | --- | --- | --- |
${node_rows:-| - | - | - | - | - | - | - |
}
REPORT
