#!/usr/bin/env bash
# Runs the standard scenarios against our two topologies and the peers, side by
# side in one run, and prints a Markdown table (raw JSON lines go to
# bench/results/<date>.jsonl).
#   bench/run.sh                 # everything (about 20 minutes; RUNS=1 for about 10)
#   bench/run.sh ours            # only our topologies
#   bench/run.sh peers           # only the peers
#   PEERS='django async 1 18001' bench/run.sh peers   # some of them ('node 2 18101,18102;...')
#   PEERS='django async 1 18001;groupsvc-django async 1 18001' ...  # the tutorial's app on
#                                # channels_redis, then on our layer (channels_groupsvc)
#   SCENARIOS="T2 L1" SCALE=0 THREADS=2 bench/run.sh ours   # a subset (SCALE=F1: F1 but not S1)
#   EDGE_BIN=/tmp/old/edge GROUPSVC_BIN=/tmp/old/groupsvc ...  # other binaries (A/B)
#   GROUPSVC_FLAGS=--history_size=0 ...   # extra flags for groupsvc (A/B of a setting)
#   A_EDGE_BIN=/tmp/old/edge A_GROUPSVC_BIN=/tmp/old/groupsvc bench/run.sh ab
#                                # two edges + groupsvc of build A, then of this tree, alternating
# Scenarios (see bench/README.md): T1 closed loop, T2 fixed open-loop load (CPU
# per delivery), L1 open loop, C1 idle memory, F1 fan-out (ours), S1 idle
# connections at scale (ours). Our topologies run with the edge at each of
# THREADS (default "1 2"; --threads of the edge), and the two edges also over
# SHARDS groupsvc shards (default 3; SHARDS=1 skips that topology).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
what="${1:-all}"
scripts/build build >/dev/null
loadgen="$root/build/bench/loadgen"
results="$root/bench/results"
mkdir -p "$results"
out="$results/$(date -u +%Y-%m-%dT%H%M%SZ).jsonl"
warmup=${WARMUP:-3s}
duration=${DURATION:-10s}
runs=${RUNS:-3}
t2_rate=${T2_RATE:-3000}  # Messages/s: below every system's saturation here (Django aside).
edge_threads=${THREADS:-1 2}
shard_count=${SHARDS:-3}  # The sharded topology's groupsvc shards (1: no sharded topology).
only=${SCENARIOS:-T1 T2 L1 C1}  # And, for ours, S1 and F1 unless SCALE=0.
pids_started=()

cleanup() {
  for pid in "${pids_started[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

wait_ready() {  # PORT
  for _ in $(seq 200); do
    curl -fs "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "edge on $1 never became ready" >&2
  return 1
}

wait_port() {  # PORT
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

record() {  # SYSTEM SCENARIO JSON
  printf '{"system":"%s","scenario":"%s","result":%s}\n' "$1" "$2" "$3" | tee -a "$out" >&2
}

# The standard scenarios against TARGETS with server PIDS (named NAMES in the
# per-process figures: CPU and context switches per message).
scenarios() {  # SYSTEM TARGETS PIDS [NAMES]
  local system="$1" targets="$2" pids="$3" names="${4:-}"
  local run
  has() { [[ " $only " == *" $1 "* ]]; }
  # T1, T2 and L1 run RUNS times each (the table shows medians): this machine is shared and noisy.
  for ((run = 0; run < runs; run++)); do
    has T1 && record "$system" T1 "$("$loadgen" --targets="$targets" --server_pids="$pids" \
      --server_names="$names" --mode=closed --rooms=10 --members=10 --size=64 --warmup="$warmup" --duration="$duration")"
    has T2 && record "$system" T2 "$("$loadgen" --targets="$targets" --server_pids="$pids" \
      --server_names="$names" --mode=open --rate="$t2_rate" --rooms=10 --members=10 --size=64 --warmup="$warmup" \
      --duration="$duration")"
    has L1 && record "$system" L1 "$("$loadgen" --targets="$targets" --server_pids="$pids" \
      --server_names="$names" --mode=open --rate=200 --rooms=10 --members=10 --size=64 --warmup="$warmup" \
      --duration="$duration")"
  done
  has C1 && record "$system" C1 "$("$loadgen" --targets="$targets" --server_pids="$pids" --mode=idle \
    --connections=2000 --rooms=20 --members=100 --hold=5s --room_prefix=idle)"
  return 0
}

start_ours() {  # EDGES (0: one edge with the in-process layer) THREADS [SHARDS]
  local edges="$1" threads="${2:-1}" shards="${3:-1}"
  ulimit -n 20000 2>/dev/null || true
  if ((edges == 0)); then
    "${EDGE_BIN:-$root/build/edge/edge}" --listen=127.0.0.1:18201 --metrics_listen=127.0.0.1:18301 \
      --max_connections_per_ip=20000 --threads="$threads" 2>/dev/null &
    pids_started+=($!)
    OURS_PIDS=$!
    OURS_NAMES=edge
    OURS_TARGETS=127.0.0.1:18201
    wait_ready 18201
    return
  fi
  # One groupsvc on 18250 (metrics 18251), or shards on 18260... (metrics 18270...).
  local list="127.0.0.1:18250" i
  GROUPSVC_METRICS=18251
  OURS_PIDS=""
  OURS_NAMES=""
  if ((shards == 1)); then
    # shellcheck disable=SC2086  # GROUPSVC_FLAGS may hold several flags.
    "${GROUPSVC_BIN:-$root/build/groupsvc/groupsvc}" --listen=127.0.0.1:18250 --metrics_listen=127.0.0.1:18251 \
      ${GROUPSVC_FLAGS:-} 2>/dev/null &
    pids_started+=($!)
    OURS_PIDS=$!
    OURS_NAMES=groupsvc
  else
    list=""
    GROUPSVC_METRICS=""
    for ((i = 0; i < shards; i++)); do list+="${list:+,}127.0.0.1:$((18260 + i))"; done
    for ((i = 0; i < shards; i++)); do
      "${GROUPSVC_BIN:-$root/build/groupsvc/groupsvc}" --listen=127.0.0.1:$((18260 + i)) \
        --metrics_listen=127.0.0.1:$((18270 + i)) --shards="$list" --shard_index="$i" \
        ${GROUPSVC_FLAGS:-} 2>/dev/null &
      pids_started+=($!)
      OURS_PIDS+="${OURS_PIDS:+,}$!"
      OURS_NAMES+="${OURS_NAMES:+,}groupsvc-$i"
      GROUPSVC_METRICS+="${GROUPSVC_METRICS:+ }$((18270 + i))"
    done
  fi
  OURS_TARGETS=""
  for ((i = 0; i < edges; i++)); do
    "${EDGE_BIN:-$root/build/edge/edge}" --listen=127.0.0.1:$((18201 + i)) \
      --groupsvc="$list" --metrics_listen=127.0.0.1:$((18301 + i)) \
      --max_connections_per_ip=20000 --edge_id=bench-$i --threads="$threads" 2>/dev/null &
    pids_started+=($!)
    OURS_PIDS+=",$!"
    OURS_NAMES+=",edge-$i"
    OURS_TARGETS+="${OURS_TARGETS:+,}127.0.0.1:$((18201 + i))"
  done
  for ((i = 0; i < edges; i++)); do wait_ready $((18201 + i)); done
  # Ready is one shard attached: wait for every link.
  for ((i = 0; i < edges && shards > 1; i++)); do
    for _ in $(seq 200); do
      (($(curl -fs "http://127.0.0.1:$((18301 + i))/metrics" | grep -c '^edge_layer_shard_up{.*} 1$') == shards)) && break
      sleep 0.05
    done
  done
}

stop_ours() {
  cleanup
  pids_started=()
  sleep 1
}

metric() {  # NAME: summed over every groupsvc shard's metrics port
  local port sum=0 v
  for port in $GROUPSVC_METRICS; do
    v=$(curl -fs "http://127.0.0.1:$port/metrics" | awk -v n="$1" '$1 == n {print $2}')
    sum=$(awk -v a="$sum" -v b="${v:-0}" 'BEGIN {print a + b}')
  done
  echo "$sum"
}

run_ours() {
  local threads
  for threads in $edge_threads; do
    start_ours 0 "$threads"
    scenarios "ours-1-edge-t$threads" "$OURS_TARGETS" "$OURS_PIDS" "$OURS_NAMES"
    stop_ours
    start_ours 2 "$threads"
    scenarios "ours-2-edges+groupsvc-t$threads" "$OURS_TARGETS" "$OURS_PIDS" "$OURS_NAMES"
    stop_ours
    if ((shard_count > 1)); then
      start_ours 2 "$threads" "$shard_count"
      scenarios "ours-2-edges+${shard_count}-shards-t$threads" "$OURS_TARGETS" "$OURS_PIDS" \
        "$OURS_NAMES"
      stop_ours
    fi
  done
  [[ "${SCALE:-1}" == 1 || "${SCALE:-1}" == F1 ]] || return 0
  if [[ "${SCALE:-1}" == F1 ]]; then  # F1 alone.
    fan_out 1
    ((shard_count > 1)) && fan_out "$shard_count"
    return 0
  fi
  start_ours 0 1
  # S1: as many idle sockets on one edge as the 20,000 open files per process
  # allow, from two load generator processes (each below its own limit).
  local edge_pid="$OURS_PIDS"
  "$loadgen" --targets="$OURS_TARGETS" --server_pids="$edge_pid" --mode=idle --connections=9500 \
    --rooms=95 --members=100 --hold=20s --room_prefix=s1a --source_ips=127.0.0.2 >/tmp/s1a.json &
  local first=$!
  sleep 6
  record "ours-1-edge-t1" S1 "$("$loadgen" --targets="$OURS_TARGETS" --server_pids="$edge_pid" \
    --mode=idle --connections=9500 --rooms=95 --members=100 --hold=5s --room_prefix=s1b \
    --source_ips=127.0.0.3)"
  wait "$first" || true
  record "ours-1-edge-t1" S1-first-half "$(cat /tmp/s1a.json)"
  stop_ours

  fan_out 1
  ((shard_count > 1)) && fan_out "$shard_count"
  return 0
}

# F1: one room of 1,000 members over both edges, one sender at 100 messages/s,
# through one groupsvc or SHARDS shards.
fan_out() {  # SHARDS
  local system="ours-2-edges+groupsvc-t2"
  (($1 > 1)) && system="ours-2-edges+$1-shards-t2"
  start_ours 2 2 "$1"
  local in0 out0 msg0
  in0=$(metric groupsvc_events_in_total)
  out0=$(metric groupsvc_stream_deliveries_total)
  msg0=$(metric groupsvc_stream_messages_out_total)
  record "$system" F1 "$("$loadgen" --targets="$OURS_TARGETS" --server_pids="$OURS_PIDS" \
    --mode=open --rate=100 --rooms=1 --members=1000 --senders_per_room=1 --size=64 \
    --warmup="$warmup" --duration="$duration" --room_prefix=fanout)"
  local in1 out1 msg1
  in1=$(metric groupsvc_events_in_total)
  out1=$(metric groupsvc_stream_deliveries_total)
  msg1=$(metric groupsvc_stream_messages_out_total)
  # Deliveries: the event once per edge with its local recipients (must be 2).
  # Stream messages: fewer still when one message carries several deliveries.
  record "$system" F1-per-group-send "$(awk -v a="$in0" -v b="$in1" -v c="$out0" \
    -v d="$out1" -v e="$msg0" -v f="$msg1" 'BEGIN {printf "{\"deliveries\": %.3f, \"stream_messages\": %.3f}", (d - c) / (b - a), (f - e) / (b - a)}')"
  stop_ours
}

# The tutorial's Django project (examples/django_chat) on daphne with our layer
# (channels_groupsvc) and one groupsvc, instead of channels_redis and redis.
start_django_groupsvc() {  # VARIANT NODES
  local variant="$1" nodes="$2" n db
  "${GROUPSVC_BIN:-$root/build/groupsvc/groupsvc}" --listen=127.0.0.1:18250 --metrics_listen= \
    2>/dev/null &
  pids_started+=($!)
  DJ_PIDS=$!
  db="$(mktemp -d)/db.sqlite3"
  local env=(CHAT_GROUPSVC=127.0.0.1:18250 CHAT_CONSUMER="$variant" CHAT_DJANGO_DB="$db"
             CHAT_ALLOWED_HOSTS='*' DJANGO_SETTINGS_MODULE=chatsite.settings
             PYTHONPATH="$root/examples/django_chat" PYTHONDONTWRITEBYTECODE=1)
  (cd "$root/examples/django_chat" && env "${env[@]}" "$root/build/venv/bin/python" manage.py migrate -v 0)
  for ((n = 0; n < nodes; n++)); do
    (cd "$root/examples/django_chat" && exec env "${env[@]}" "$root/build/venv/bin/python" -m daphne \
      -b 127.0.0.1 -p $((18001 + n)) chatsite.asgi:application >/dev/null 2>&1) &
    pids_started+=($!)
    DJ_PIDS+=",$!"
  done
  for ((n = 0; n < nodes; n++)); do wait_port $((18001 + n)); done
}

run_peers() {
  # The peers of ../shared/peers, copied (that folder is read-only) and set up.
  local shared="$root/../shared/peers"
  [[ -d "$shared" ]] || { echo "no $shared: skipping the peers" >&2; return 0; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-django \
    python3-django-channels python3-daphne python3-channels-redis redis-server >/dev/null
  rm -rf /tmp/peers && cp -r "$shared" /tmp/peers && chmod -R u+w /tmp/peers
  (cd /tmp/peers/node && npm ci --no-audit --no-fund --loglevel=error)
  # shellcheck source=/dev/null
  source /tmp/peers/common/lib.sh
  local peer
  local specs=("node 1 18101" "node 2 18101,18102" "django sync 1 18001" "django async 1 18001"
               "django async 2 18001,18002" "groupsvc-django async 1 18001"
               "groupsvc-django async 2 18001,18002")
  [[ -n "${PEERS:-}" ]] && IFS=';' read -r -a specs <<<"$PEERS"
  for spec in "${specs[@]}"; do
    read -r -a a <<<"$spec"
    if [[ "${a[0]}" == groupsvc-django ]]; then
      # Our layer under the tutorial's Django app: "groupsvc-django async 1 18001".
      start_django_groupsvc "${a[1]}" "${a[2]}"
      targets=$(echo "${a[3]}" | sed 's/\([0-9]*\)/127.0.0.1:\1/g')
      scenarios "groupsvc-django-${a[1]}-${a[2]}" "$targets" "$DJ_PIDS"
      cleanup
      pids_started=()
      sleep 1
      continue
    fi
    if [[ "${a[0]}" == node ]]; then
      peer=$(/tmp/peers/node/start.sh "${a[1]}")
      ports="${a[2]}"
    else
      peer=$(/tmp/peers/django/start.sh "${a[1]}" "${a[2]}")
      ports="${a[3]}"
    fi
    targets=$(echo "$ports" | sed 's/\([0-9]*\)/127.0.0.1:\1/g')
    scenarios "$peer" "$targets" "$(peer_pids "$peer")"
    "/tmp/peers/${a[0]}/stop.sh" all >/dev/null 2>&1 || true
    sleep 1
  done
}

# A/B of two builds in one session: the two edges and one groupsvc of build A
# (A_EDGE_BIN, A_GROUPSVC_BIN) and of this tree's build, alternating AB_ROUNDS
# times (default 2), each round RUNS runs of SCENARIOS (default T2 L1 here).
run_ab() {
  local round threads="${edge_threads%% *}"
  [[ -x "${A_EDGE_BIN:-}" && -x "${A_GROUPSVC_BIN:-}" ]] || {
    echo "bench/run.sh ab needs A_EDGE_BIN and A_GROUPSVC_BIN (the other build's binaries)" >&2
    exit 2
  }
  for ((round = 0; round < ${AB_ROUNDS:-2}; round++)); do
    EDGE_BIN="$A_EDGE_BIN" GROUPSVC_BIN="$A_GROUPSVC_BIN" start_ours 2 "$threads"
    scenarios "A-2-edges+groupsvc-t$threads" "$OURS_TARGETS" "$OURS_PIDS" "$OURS_NAMES"
    stop_ours
    EDGE_BIN="" GROUPSVC_BIN="" start_ours 2 "$threads"
    scenarios "B-2-edges+groupsvc-t$threads" "$OURS_TARGETS" "$OURS_PIDS" "$OURS_NAMES"
    stop_ours
  done
}

case "$what" in
  ab) [[ -n "${SCENARIOS:-}" ]] || only="T2 L1"; run_ab ;;
  ours) run_ours ;;
  peers) run_peers ;;
  all) run_ours; run_peers ;;
  *) echo "usage: bench/run.sh [all|ours|peers|ab]" >&2; exit 2 ;;
esac

python3 "$root/bench/table.py" "$out"
