"""Turns the JSON results of bench/run_benchmarks.sh into the Markdown table of docs/benchmarks.md."""
import json
import os
import sys

out = sys.argv[1]


def load(name):
    path = os.path.join(out, name + ".json")
    return json.load(open(path)) if os.path.exists(path) else None


inproc = {r["batch"]: r for r in load("inproc")}
rows = []
eng64 = inproc[64]["rows_per_s"]
for proto in ("http", "grpc"):
    r = load(f"eff_{proto}")
    srv = r["throughput_ok_per_s"] * 64
    rows.append((f"1. serving efficiency, {proto}, 64-row requests, 4 clients",
                 f"{srv:,.0f} rows/s vs in-process {eng64:,.0f} rows/s", f"{srv / eng64:.2f}"))
eng1 = inproc[1]["p50_call_us"]
for proto in ("http", "grpc"):
    r = load(f"light_{proto}")["latency_ok"]
    rows.append((f"2. overhead at batch 1, {proto}, 1 client",
                 f"p50 {r['p50_us']:.0f} µs, p99 {r['p99_us']:.0f} µs; engine p50 {eng1:.0f} µs",
                 f"p50 +{r['p50_us'] - eng1:.0f} µs, p99 +{r['p99_us'] - eng1:.0f} µs"))
on, off = load("c64_on"), load("c64_off")
rows.append(("3. batching gain, 64 clients, gRPC",
             f"{on['throughput_ok_per_s']:,.0f} req/s on vs {off['throughput_ok_per_s']:,.0f} off",
             f"{on['throughput_ok_per_s'] / off['throughput_ok_per_s']:.2f}x"))
cap = load("c8_off")["throughput_ok_per_s"]
rows.append(("4. capacity of the unbatched server (8 clients, gRPC, none refused)", f"{cap:,.0f} req/s", ""))
rss = open(os.path.join(out, "peak_rss_kb")).read().strip()
for x in (2, 5, 10):
    r = load(f"overload_{x}x")
    rows.append((f"4. overload {x}x ({r['offered_rate']:,.0f} req/s offered, gRPC open loop, unbatched server)",
                 f"goodput {r['throughput_ok_per_s']:,.0f} req/s; admitted p99 {r['latency_ok']['p99_us'] / 1000:.1f} ms; "
                 f"rejected {r['rejected']:,} (p50 {r['latency_rejected']['p50_us'] / 1000:.2f} ms, p99 {r['latency_rejected']['p99_us'] / 1000:.1f} ms); "
                 f"errors {r['errors'] + r['timeouts']}; client_dropped {r['client_dropped']}",
                 f"{100 * r['throughput_ok_per_s'] / cap:.0f}% of capacity"))
rows.append(("4. peak RSS of the server over all runs above", f"{int(rss) / 1024:.0f} MiB", ""))
b, f = load("json_ballast"), load("json_fastapi")
if f:
    rows.append(("5. vs FastAPI + onnxruntime (2 workers), JSON tensors, 16 clients",
                 f"ballast {b['throughput_ok_per_s']:,.0f} req/s p99 {b['latency_ok']['p99_us'] / 1000:.2f} ms; "
                 f"FastAPI {f['throughput_ok_per_s']:,.0f} req/s p99 {f['latency_ok']['p99_us'] / 1000:.2f} ms",
                 f"throughput {b['throughput_ok_per_s'] / max(f['throughput_ok_per_s'], 1e-9):.1f}x, "
                 f"p99 {f['latency_ok']['p99_us'] / max(b['latency_ok']['p99_us'], 1e-9):.1f}x lower"))
print("| benchmark | measured | ratio |")
print("| --- | --- | --- |")
for r in rows:
    print("| " + " | ".join(r) + " |")
