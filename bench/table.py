#!/usr/bin/env python3
"""Prints the Markdown table of one bench/run.sh results file (JSON lines)."""
import json
import sys

rows = {}
extra = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault(r["system"], {})[r["scenario"]] = r["result"]

print("| system | T1 deliveries/s | T1 per server CPU-s | T1 lost | L1 p50 / p99 ms | C1 KB per connection |")
print("|---|---:|---:|---:|---|---:|")
for system, s in rows.items():
    t1, l1, c1 = s.get("T1", {}), s.get("L1", {}), s.get("C1", {})
    print(f"| {system} | {t1.get('deliveries_per_s', 0):,.0f} | "
          f"{t1.get('deliveries_per_server_cpu_s', 0):,.0f} | {t1.get('missing', '-')} | "
          f"{l1.get('p50_us', 0) / 1000:.2f} / {l1.get('p99_us', 0) / 1000:.2f} | "
          f"{c1.get('kb_per_connection', 0):.1f} |")
for system, s in rows.items():
    if "F1" in s:
        f1 = s["F1"]
        per = s.get("F1-stream-messages-per-group-send", {}).get("value", "-")
        print(f"\nF1 ({system}): {f1['delivered']:,} deliveries, p50 {f1['p50_us'] / 1000:.2f} ms, "
              f"p99 {f1['p99_us'] / 1000:.2f} ms, missing {f1['missing']}, "
              f"stream messages per group_send: {per}")
    if "S1" in s:
        a, b = s.get("S1-first-half", {}), s["S1"]
        print(f"\nS1 ({system}): {a.get('open', 0) + b.get('open', 0):,} idle sockets held on one edge "
              f"(second half: {b['open']:,} open, {b['kb_per_connection']:.2f} KB each; "
              f"edge RSS {b['server_rss_kb_after'] / 1024:.0f} MB)")
