#!/usr/bin/env python3
"""Prints the Markdown table of one bench/run.sh results file (JSON lines)."""
import json
import statistics
import sys

# A scenario run several times (T1, L1) is shown as the median of each figure.
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs.setdefault(r["system"], {}).setdefault(r["scenario"], []).append(r["result"])
rows = {}
for system, scenarios in runs.items():
    for scenario, results in scenarios.items():
        merged = dict(results[-1])
        for key, value in results[0].items():
            if key in ("missing", "errors"):  # Any loss counts: summed over the runs.
                merged[key] = sum(r[key] for r in results)
            elif isinstance(value, (int, float)) and len(results) > 1:
                merged[key] = statistics.median(r[key] for r in results)
        merged["runs"] = len(results)
        rows.setdefault(system, {})[scenario] = merged

n_runs = max((r.get("runs", 1) for s in rows.values() for k, r in s.items()
              if k in ("T1", "T2", "L1")), default=1)
print(f"T1, T2 and L1: medians of {n_runs} run(s); lost: the sum over them.\n")
def us_per_delivery(r):
    return 1e6 / r["deliveries_per_server_cpu_s"] if r.get("deliveries_per_server_cpu_s") else 0


print("| system | T1 deliveries/s | T1 per server CPU-s | T1 lost | T2 µs server CPU per delivery | "
      "T2 deliveries/s, p50 / p99 ms, lost | L1 p50 / p99 ms | C1 KB per connection |")
print("|---|---:|---:|---:|---:|---|---|---:|")
for system, s in rows.items():
    t1, t2, l1, c1 = s.get("T1", {}), s.get("T2", {}), s.get("L1", {}), s.get("C1", {})
    t2_cell = (f"{t2.get('deliveries_per_s', 0):,.0f}, {t2.get('p50_us', 0) / 1000:.2f} / "
               f"{t2.get('p99_us', 0) / 1000:.2f}, {t2.get('missing', '-')}") if t2 else "-"
    print(f"| {system} | {t1.get('deliveries_per_s', 0):,.0f} | "
          f"{t1.get('deliveries_per_server_cpu_s', 0):,.0f} | {t1.get('missing', '-')} | "
          f"{us_per_delivery(t2):.2f} | {t2_cell} | "
          f"{l1.get('p50_us', 0) / 1000:.2f} / {l1.get('p99_us', 0) / 1000:.2f} | "
          f"{c1.get('kb_per_connection', 0):.1f} |")
# T2 ratios against the first system with a T2 figure (runs list ours first).
base = next((n for n, s in rows.items() if s.get("T2")), None)
if base:
    print(f"\nT2, server CPU per delivery relative to {base}:")
    for system, s in rows.items():
        if s.get("T2") and us_per_delivery(rows[base]["T2"]):
            print(f"- {system}: {us_per_delivery(s['T2']) / us_per_delivery(rows[base]['T2']):.2f}x")
for system, s in rows.items():
    if "F1" in s:
        f1 = s["F1"]
        per = s.get("F1-per-group-send", {})
        print(f"\nF1 ({system}): {f1['delivered']:,} deliveries, p50 {f1['p50_us'] / 1000:.2f} ms, "
              f"p99 {f1['p99_us'] / 1000:.2f} ms, missing {f1['missing']}; per group_send, groupsvc "
              f"put {per.get('deliveries', '-')} deliveries on edge streams, in "
              f"{per.get('stream_messages', '-')} stream messages")
    if "S1" in s:
        a, b = s.get("S1-first-half", {}), s["S1"]
        held = a.get('open', 0) + b.get('open', 0)
        # The first half's "after" is taken once both halves are open: use the
        # growth from before the first half to after the second, over all sockets.
        grown = b['server_rss_kb_after'] - a.get('server_rss_kb_before', b['server_rss_kb_before'])
        print(f"\nS1 ({system}): {held:,} idle sockets held on one edge, "
              f"{grown / max(held, 1):.2f} KB each (second half alone: {b['kb_per_connection']:.2f}); "
              f"edge RSS {b['server_rss_kb_after'] / 1024:.0f} MB")

# Where the CPU goes: each server process's CPU and context switches per
# message sent (one group_send each), medians over the runs.
per_process = {}
for system, scenarios in runs.items():
    for scenario in ("T2", "L1", "T1"):
        for r in scenarios.get(scenario, []):
            sent = r.get("sent") or 0
            for p in r.get("processes", []) if sent else []:
                key = (system, scenario, p["name"])
                per_process.setdefault(key, []).append(
                    (p["cpu_s"] * 1e6 / sent, p["switches"] / sent))
if per_process:
    print("\nPer process, per message sent (one group_send each), medians:\n")
    print("| system | scenario | process | µs CPU per message | context switches per message |")
    print("|---|---|---|---:|---:|")
    for (system, scenario, name), figures in per_process.items():
        cpu = statistics.median(f[0] for f in figures)
        switches = statistics.median(f[1] for f in figures)
        print(f"| {system} | {scenario} | {name} | {cpu:.1f} | {switches:.2f} |")
