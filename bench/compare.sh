#!/usr/bin/env bash
# Times msgr against Mosquitto side by side, in one run, on loopback only.
#
#   bash bench/compare.sh            # everything (a few minutes)
#   RUNS=30 LEVELS="1000 100000" bash bench/compare.sh
#
# Installs Mosquitto, its clients, hyperfine and GNU time from Debian's
# packages if they are missing; starts a loopback-only Mosquitto (TLS 1.3,
# ECDSA P-256 certificate, persistence, set_tcp_nodelay true) and a msgr
# server in a temporary directory; prints medians and ratios. Results are
# also left in $OUT (default: target/bench-compare) as hyperfine JSON.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-60}
# hyperfine runs one command's runs back to back, so drift in a shared
# machine's load lands on one side; one-shot jobs are therefore timed in
# ROUNDS alternating rounds of RUNS/ROUNDS runs each, and medians are taken
# over all the runs.
ROUNDS=${ROUNDS:-5}
LEVELS=${LEVELS:-"1000 10000 100000 1000000"}
OUT=${OUT:-target/bench-compare}
BODY='Hello John! How are you?'

# --- tools -------------------------------------------------------------------
missing=()
command -v mosquitto >/dev/null || missing+=(mosquitto)
command -v mosquitto_pub >/dev/null || missing+=(mosquitto-clients)
command -v hyperfine >/dev/null || missing+=(hyperfine)
[ -x /usr/bin/time ] || missing+=(time)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release --quiet --bin msgr --example load
target_dir=$(realpath "${CARGO_TARGET_DIR:-target}")
MSGR_BIN=$target_dir/release/msgr
LOAD_BIN=$target_dir/release/examples/load

work=$(mktemp -d)
mkdir -p "$OUT"
rm -f "$OUT"/*.json
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# rounds NAME HYPERFINE-ARGS...: time in ROUNDS rounds, into $OUT/NAME-R.json
rounds() {
  local name=$1; shift
  for round in $(seq "$ROUNDS"); do
    hyperfine -N --runs $((RUNS / ROUNDS)) --export-json "$OUT/$name-$round.json" --style none "$@" >/dev/null
  done
}
# median NAME INDEX: median ms of the INDEXth command over $OUT/NAME.json or
# all of its rounds
median() {
  python3 - "$OUT" "$1" "$2" <<'PY'
import glob, json, statistics, sys
out, name, index = sys.argv[1], sys.argv[2], int(sys.argv[3])
files = glob.glob(f"{out}/{name}.json") + glob.glob(f"{out}/{name}-[0-9]*.json")
times = [t for f in files for t in json.load(open(f))["results"][index]["times"]]
print("%.2f" % (statistics.median(times) * 1000))
PY
}
ratio() { python3 -c 'import sys; print("%.2f" % (float(sys.argv[1])/float(sys.argv[2])))' "$1" "$2"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
peak_rss_kib() { # median peak RSS (KiB) of a command over 15 runs
  for _ in $(seq 15); do /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; done | sort -n | sed -n 8p
}

# --- Mosquitto ---------------------------------------------------------------
MQ_PORT=$(free_port)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -keyout "$work/mq.key" -out "$work/mq.crt" -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
mkdir -p "$work/mq"
cat > "$work/mosquitto.conf" <<CONF
listener $MQ_PORT 127.0.0.1
certfile $work/mq.crt
keyfile $work/mq.key
tls_version tlsv1.3
allow_anonymous true
persistence true
persistence_location $work/mq/
set_tcp_nodelay true
max_queued_messages 0
# stay the invoking user, who owns the temporary directory
user root
CONF
mosquitto -c "$work/mosquitto.conf" 2>"$work/mosquitto.log" &
MQ_PID=$!; pids+=("$MQ_PID")
MQ=(-h localhost -p "$MQ_PORT" --cafile "$work/mq.crt" --tls-version tlsv1.3)

# --- msgr --------------------------------------------------------------------
# The queue and rate limits are raised: the benchmark queues a million
# messages for one user, registers a user pair per load-generator run and
# opens up to 64 connections from one address.
"$MSGR_BIN" serve 0 --bind 127.0.0.1 --data-dir "$work/msgr" \
  --max-queued-messages 10000000 --max-queued-bytes 100000000000 \
  --max-registrations-per-hour 100000 --max-logins-per-minute 100000 \
  --max-connections-per-source 1000 --max-lookups-per-minute 100000 \
  >"$work/serve.out" 2>"$work/serve.log" &
MSGR_PID=$!; pids+=("$MSGR_PID")
for _ in $(seq 100); do grep -q listening "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
MSGR_PORT=$(sed -n 's/^msgr listening on .*:\([0-9]*\)$/\1/p' "$work/serve.out")
sleep 0.5 # Mosquitto starts in well under this
M="$MSGR_BIN --server localhost:$MSGR_PORT --config-dir $work/client"
for user in Alice John Bulk; do $M --user "$user" register >/dev/null 2>&1; done
$M --user Alice key John >/dev/null
$M --user Alice key Bulk >/dev/null
$M --user Alice login >/dev/null
$M --user John login >/dev/null
mosquitto_sub "${MQ[@]}" -c -i john -q 1 -t msgs/john -W 1 >/dev/null 2>&1 || true  # persistent session
mosquitto_sub "${MQ[@]}" -c -i hoard -q 1 -t msgs/hoard -W 1 >/dev/null 2>&1 || true

echo "msgr $($MSGR_BIN --version | cut -d' ' -f2) on port $MSGR_PORT, $(mosquitto -h | head -1) on port $MQ_PORT; $(nproc) cores; $RUNS runs each"
echo

# --- 1. one-shot create vs mosquitto_pub -q 1 -----------------------------------
rounds create --warmup 3 \
  "$M --user Alice create John '$BODY'" \
  "mosquitto_pub ${MQ[*]} -q 1 -t msgs/john -m '$BODY'"
$M --user John read >/dev/null; mosquitto_sub "${MQ[@]}" -c -i john -q 1 -t msgs/john -W 1 >/dev/null 2>&1 || true
create_ms=$(median create 0); pub_ms=$(median create 1)

# --- 2. one-shot read of one stored message vs mosquitto_sub -C 1 -------------
rounds read \
  --prepare "$M --user Alice create John '$BODY'" \
  --prepare "mosquitto_pub ${MQ[*]} -q 1 -t msgs/john -m '$BODY'" \
  "$M --user John read" \
  "mosquitto_sub ${MQ[*]} -c -i john -q 1 -t msgs/john -C 1"
read_ms=$(median read 0); sub_ms=$(median read 1)

# --- 3. 2000 one-shot publishes, 8 in parallel ---------------------------------
hyperfine --runs 3 --export-json "$OUT/parallel.json" --style basic \
  "seq 2000 | xargs -P 8 -I{} $M --user Alice create Bulk 'message {}'" \
  "seq 2000 | xargs -P 8 -I{} mosquitto_pub ${MQ[*]} -q 1 -t msgs/bulk -m 'message {}'" >/dev/null
par_msgr=$(python3 -c "print('%.0f' % (2000/($(median parallel 0)/1000)))")
par_mq=$(python3 -c "print('%.0f' % (2000/($(median parallel 1)/1000)))")

# --- 4. persistent connections ------------------------------------------------
# 8 connections with 16 sends in flight each; then one connection with 20
# in flight, as mosquitto_pub -l keeps (its default max_inflight), and 64
# connections sending one at a time.
persistent=$("$LOAD_BIN" --server "localhost:$MSGR_PORT" --mode persistent --clients 8 --window 16 --messages 100000 | tail -2)
persistent_one=$("$LOAD_BIN" --server "localhost:$MSGR_PORT" --mode persistent --clients 1 --window 20 --messages 100000 | tail -2)
persistent_unpipelined=$("$LOAD_BIN" --server "localhost:$MSGR_PORT" --mode persistent --clients 64 --window 1 --messages 100000 | tail -2)
seq 20000 | sed 's/^/line /' > "$work/lines"
lines_s=$( { /usr/bin/time -f %e mosquitto_pub "${MQ[@]}" -q 1 -t msgs/lines -l < "$work/lines" >/dev/null; } 2>&1 | tail -1)
lines_rate=$(python3 -c "print('%.0f' % (20000/$lines_s))")

# --- 5. client memory --------------------------------------------------------
create_rss=$(peak_rss_kib $M --user Alice create Bulk "$BODY")
pub_rss=$(peak_rss_kib mosquitto_pub "${MQ[@]}" -q 1 -t msgs/bulk -m "$BODY")

# --- 6. cost growth and server memory -------------------------------------------
# Messages are queued for another user (by the load generator, kept); at
# each level create and read-one are timed, and at 250,000 the server's RSS
# is read.
growth=""
queued=0
for level in $(printf "%s\n" $LEVELS 250000 | sort -n | uniq); do
  if [ "$level" -gt "$queued" ]; then
    "$LOAD_BIN" --server "localhost:$MSGR_PORT" --mode persistent --clients 8 --window 16 \
      --messages $((level - queued)) --keep --no-verify >/dev/null
    queued=$level
  fi
  if [ "$level" = 250000 ]; then msgr_rss=$(rss_kib "$MSGR_PID"); continue; fi
  rounds "growth-$level" --warmup 3 \
    --prepare "true" --prepare "$M --user Alice create John '$BODY'" \
    "$M --user Alice create John '$BODY'" "$M --user John read"
  $M --user John read >/dev/null
  growth+="| $level | $(median "growth-$level" 0) | $(median "growth-$level" 1) |"$'\n'
done
[ -n "${msgr_rss:-}" ] || msgr_rss=0
seq 250000 | sed 's/^/held /' | mosquitto_pub "${MQ[@]}" -q 1 -t msgs/hoard -l
sleep 1
mq_rss=$(rss_kib "$MQ_PID")

cat <<REPORT
| job | msgr | Mosquitto | ratio (msgr/Mosquitto) |
| --- | --- | --- | --- |
| one-shot create vs mosquitto_pub -q 1, median wall | $create_ms ms | $pub_ms ms | $(ratio "$create_ms" "$pub_ms") |
| one-shot read of one message vs mosquitto_sub -C 1 | $read_ms ms | $sub_ms ms | $(ratio "$read_ms" "$sub_ms") |
| 2000 one-shot publishes, 8 in parallel | $par_msgr msg/s | $par_mq msg/s | $(ratio "$par_msgr" "$par_mq") (higher is better) |
| persistent connections, 8 × 16 in flight | ${persistent//$'\n'/; } | $lines_rate msg/s (one connection, -l, no fsync) | |
| persistent, one connection, 20 in flight | ${persistent_one//$'\n'/; } | $lines_rate msg/s | |
| persistent, 64 connections, one at a time | ${persistent_unpipelined//$'\n'/; } | | |
| client peak RSS, one create | $((create_rss / 1024)) MiB | $((pub_rss / 1024)) MiB | $(ratio "$create_rss" "$pub_rss") |
| server RSS with 250,000 queued | $((msgr_rss / 1024)) MiB | $((mq_rss / 1024)) MiB | $(ratio "$msgr_rss" "$mq_rss") |

Cost growth (median ms of create and of reading one message, with this
many messages queued for another user; the server RSS above is read when
250,000 are queued, which happens after the LEVELS below 250,000):

| queued | create | read one |
| --- | --- | --- |
$growth
REPORT
