#!/usr/bin/env python3
"""Summarise one `oha --output-format csv` run as one JSON line.

    python bench/oha_goodput.py RUN.csv DURATION_S INTENDED_RATE [--timeline BIN_S]

oha writes one row per answered request (request-start, ..., request-duration, bytes, status);
with `-q RATE --latency-correction` the duration runs from the request's intended send time.
Goodput is 200 responses within 100 ms of that time, per second. `answered_rate` is what came
back per second; a point whose answered rate is under 90% of the intended rate is marked
`void` (the generator could not offer it, or requests hung; both are reported).
"""

from __future__ import annotations

import csv
import json
import sys

SLO = 0.100


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    path, duration, intended = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    timeline = None
    if "--timeline" in sys.argv:
        timeline = float(sys.argv[sys.argv.index("--timeline") + 1])
    ok, ok_fast, refused, other = [], 0, [], 0
    bins: dict[int, list[int]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            start = float(row["request-start"])
            d = float(row["request-duration"])
            status = int(row["status"])
            good = status == 200 and d <= SLO
            if status == 200:
                ok.append(d)
                ok_fast += good
            elif status in (429, 503):
                refused.append(d)
            else:
                other += 1
            if timeline:
                b = bins.setdefault(int(start / timeline), [0, 0])
                b[0] += 1
                b[1] += good
    answered = len(ok) + len(refused) + other
    out = {
        "intended_rate": intended,
        "answered_rate": answered / duration,
        "void": answered / duration < 0.9 * intended,
        "ok": len(ok),
        "refused": len(refused),
        "other": other,
        "goodput_per_s": ok_fast / duration,
        "ok_p50_ms": (pct(ok, 0.5) or 0) * 1e3,
        "ok_p99_ms": (pct(ok, 0.99) or 0) * 1e3,
        "refused_p99_ms": (pct(refused, 0.99) or 0) * 1e3,
    }
    if timeline:
        out["timeline"] = [
            {"t": k * timeline, "answered": v[0], "good": v[1]} for k, v in sorted(bins.items())
        ]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
