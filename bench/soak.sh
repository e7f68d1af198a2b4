#!/usr/bin/env bash
# Soak: L1 (open loop, 200 messages/s, 10 rooms x 10 members, 64-byte frames)
# through two edges and groupsvc for SOAK_SECONDS, sampling each server's RSS
# (VmRSS) and open files every SOAK_INTERVAL seconds. Prints a table and a
# verdict: after the warm-up, every sample within SOAK_TOLERANCE % of the
# first one after it, no message missing, no server gone. Exit 0 when flat.
#   bench/soak.sh                          # 10 minutes (SOAK_SECONDS=600), warm-up 60 s
#   SOAK_SECONDS=60 bench/soak.sh          # a quick check (warm-up: a third of the run)
# Raw samples go to bench/results/soak-<date>.tsv, loadgen's JSON line beside them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${SOAK_SECONDS:-600}
interval=${SOAK_INTERVAL:-10}
tolerance=${SOAK_TOLERANCE:-5}
warmup=${SOAK_WARMUP:-60}
((warmup > seconds / 3)) && warmup=$((seconds / 3))
build=${BUILD_DIR:-build}
base=${SOAK_PORT_BASE:-18400}
CHAT_TARGET="${CHAT_TARGET:-edge groupsvc loadgen}" scripts/build "$build" >/dev/null
results="$root/bench/results"
mkdir -p "$results"
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
tsv="$results/soak-$stamp.tsv"
json="$results/soak-$stamp.json"
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
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

ulimit -n 20000 2>/dev/null || true
"$root/$build/groupsvc/groupsvc" --listen=127.0.0.1:$((base + 50)) \
  --metrics_listen=127.0.0.1:$((base + 51)) 2>/dev/null &
pids+=($!)
names=(groupsvc)
for i in 0 1; do
  "$root/$build/edge/edge" --listen=127.0.0.1:$((base + 1 + i)) --groupsvc=127.0.0.1:$((base + 50)) \
    --metrics_listen=127.0.0.1:$((base + 11 + i)) --edge_id=soak-$i 2>/dev/null &
  pids+=($!)
  names+=("edge-$i")
done
wait_ready $((base + 1))
wait_ready $((base + 2))

# loadgen measures after its own warm-up; the servers are sampled from the start.
"$root/$build/bench/loadgen" --targets=127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2)) \
  --server_pids="$(IFS=,; echo "${pids[*]}")" --mode=open --rate=200 --rooms=10 --members=10 \
  --size=64 --warmup="${warmup}s" --duration="$((seconds - warmup))s" --drain=3s \
  --time_cap="$((seconds + 120))s" --room_prefix=soak >"$json" &
loadgen=$!

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

header="t_s"
for n in "${names[@]}"; do header+=$'\t'"${n}_rss_kb"$'\t'"${n}_fds"; done
echo "$header" >"$tsv"
printf '%6s' "t (s)"
for n in "${names[@]}"; do printf ' | %13s %5s' "$n RSS KB" "fds"; done
echo
start=$(date +%s)
for ((t = 0; t <= seconds; t += interval)); do
  sleep $((start + t - $(date +%s))) 2>/dev/null || true
  row="$t"
  printf '%6d' "$t"
  for pid in "${pids[@]}"; do
    r=$(rss "$pid")
    f=$(fds "$pid")
    row+=$'\t'"$r"$'\t'"$f"
    printf ' | %13s %5s' "$r" "$f"
  done
  echo
  echo "$row" >>"$tsv"
done
wait "$loadgen" || true
alive=0
for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done

echo
echo "loadgen: $(cat "$json")"
python3 - "$tsv" "$json" "$warmup" "$tolerance" "$alive" "${#pids[@]}" <<'EOF'
import json, sys
tsv, json_path, warmup, tolerance, alive, servers = sys.argv[1:]
warmup, tolerance, alive, servers = int(warmup), float(tolerance), int(alive), int(servers)
rows = [l.rstrip("\n").split("\t") for l in open(tsv)]
head, rows = rows[0], [list(map(int, r)) for r in rows[1:]]
after = [r for r in rows if r[0] >= warmup]
flat = True
print(f"after the warm-up ({warmup} s), against the first sample after it (t={after[0][0] if after else '-'} s):")
for c in range(1, len(head)):
    if len(after) < 2:
        print(f"  {head[c]}: too few samples after the warm-up")
        flat = False
        continue
    first = after[0][c]
    worst = max(abs(r[c] - first) for r in after)
    pct = 100.0 * worst / first if first else float("inf")
    ok = pct <= tolerance
    flat &= ok
    print(f"  {head[c]:>18}: {first} -> {after[-1][c]} (min {min(r[c] for r in after)}, "
          f"max {max(r[c] for r in after)}), largest deviation {pct:.1f} % {'ok' if ok else 'NOT FLAT'}")
try:
    lg = json.load(open(json_path))
except Exception:
    lg = {}
missing, errors = lg.get("missing", -1), lg.get("errors", -1)
print(f"loadgen: sent {lg.get('sent')}, delivered {lg.get('delivered')}, missing {missing}, errors {errors}, "
      f"p50 {lg.get('p50_us', 0) / 1000:.2f} ms, p99 {lg.get('p99_us', 0) / 1000:.2f} ms; servers alive: {alive} of {servers}")
ok = flat and missing == 0 and errors == 0 and alive == servers
print(f"verdict: {'FLAT' if ok else 'NOT FLAT'} (RSS and open files within {tolerance:g} % after the warm-up, "
      f"nothing missing, every server up)")
sys.exit(0 if ok else 1)
EOF
