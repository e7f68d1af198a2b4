#!/usr/bin/env bash
# Runs one libFuzzer target from a scratch copy of its seed corpus; fails on
# any crash, leak, timeout or sanitizer report (what CTest's `fuzz` tests run).
#   run_fuzz.sh FUZZER SEED_DIR WORK_DIR [libFuzzer flags...]
#   CHAT_FUZZ_SECONDS=15      how long (the default)
#   CHAT_FUZZ_RUNS=10000000   a number of executions instead (the long run,
#                             in WORK_DIR-long, apart from the short runs')
# The seed corpus is never written to: new inputs go to WORK_DIR/corpus, a
# crashing input to WORK_DIR/artifacts (replay it: FUZZER FILE).
set -euo pipefail
fuzzer=$1 seeds=$2 work=$3
shift 3
[[ -z "${CHAT_FUZZ_RUNS:-}" ]] || work="$work-long"
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
cp "$seeds"/* "$work/corpus/"
if [[ -n "${CHAT_FUZZ_RUNS:-}" ]]; then
  budget=(-runs="$CHAT_FUZZ_RUNS")
else
  budget=(-max_total_time="${CHAT_FUZZ_SECONDS:-15}")
fi
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
echo "run_fuzz: $(basename "$fuzzer") ${budget[*]} $* (work: $work)"
status=0
"$fuzzer" "${budget[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$@" "$work/corpus" >"$work/log" 2>&1 || status=$?
# The log of a clean run is mostly "#N NEW/REDUCE" lines: show its head and tail.
if ((status != 0)); then
  tail -n 100 "$work/log"
  echo "run_fuzz: FAILED (exit $status); the input: $(ls "$work/artifacts"/* 2>/dev/null)"
  exit 1
fi
grep -E '^(INFO: Seed|INFO: seed corpus|Done|stat::)' "$work/log" || true
tail -n 3 "$work/log" | grep -v '^stat::' || true
echo "run_fuzz: ok"
