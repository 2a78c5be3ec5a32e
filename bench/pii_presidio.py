#!/usr/bin/env python3
"""ballast's PII scanner side by side with Microsoft Presidio's analyzer on tests/pii/corpus.jsonl:
recall and precision per type, and time per 1,000 strings.

Installs nothing. Needs:

    pip install presidio-analyzer          # pulls spacy, phonenumbers, tldextract
    cargo (the script runs `cargo run --release -p ballast-capture --example redact_spans`)

Presidio's default NLP engine wants spaCy's `en_core_web_lg`, which is not on PyPI (spaCy models
are downloaded from GitHub releases by `spacy download`); where it is not installed this script
gives Presidio a blank English spaCy pipeline (tokenizer only) and says so in its output. For
the five types compared here Presidio's recognizers are patterns and checksums (EMAIL_ADDRESS,
CREDIT_CARD, US_SSN, IBAN_CODE) and libphonenumber (PHONE_NUMBER); the spaCy model only feeds
context words that raise scores, and at the default score threshold (0) every result is returned
whatever its score, so the detections are the same with either model. The model does change
Presidio's time (NER runs on every string with en_core_web_lg): the time here is a lower bound.

Matching rule (the same as crates/ballast-capture/tests/pii_corpus.rs): a detection matches a
labelled span when the kinds are equal, the spans overlap, and every character in one but not
the other is non-alphanumeric (separators, brackets, `+`, whitespace). Offsets are code points.

    python bench/pii_presidio.py [--corpus tests/pii/corpus.jsonl] [--limit N] [--explain]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = ["email", "phone", "card", "ssn", "iban"]
PRESIDIO_TO_KIND = {"EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone", "CREDIT_CARD": "card",
                    "US_SSN": "ssn", "IBAN_CODE": "iban"}


def matches(text: str, a: dict, b: dict) -> bool:
    if a["kind"] != b["kind"] or a["end"] <= b["start"] or b["end"] <= a["start"]:
        return False
    lo, hi = min(a["start"], b["start"]), max(a["end"], b["end"])
    ilo, ihi = max(a["start"], b["start"]), min(a["end"], b["end"])
    return not any(c.isalnum() for c in text[lo:ilo] + text[ihi:hi])


def score(lines: list, detections: list) -> dict:
    out = {k: {"labels": 0, "found": 0, "detections": 0, "correct": 0} for k in KINDS}
    for line, dets in zip(lines, detections):
        text, labels = line["text"], line["spans"]
        for g in labels:
            out[g["kind"]]["labels"] += 1
            out[g["kind"]]["found"] += any(matches(text, d, g) for d in dets)
        for d in dets:
            out[d["kind"]]["detections"] += 1
            out[d["kind"]]["correct"] += any(matches(text, d, g) for g in labels)
    return out


def presidio_engine():
    import spacy
    import tldextract

    # Presidio's e-mail recognizer checks TLDs with tldextract, which first tries to download the
    # public suffix list; use the snapshot it ships instead (same list, no network).
    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    model = "en_core_web_lg"
    if spacy.util.is_package(model):
        note = f"spaCy {spacy.__version__}, {model} (Presidio's default)"
    else:
        path = Path(tempfile.mkdtemp(prefix="blank_en_")) / "model"
        spacy.blank("en").to_disk(path)
        model = str(path)
        note = (f"spaCy {spacy.__version__}, blank English pipeline (en_core_web_lg is not on "
                "PyPI and cannot be downloaded here)")
    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]})
    return AnalyzerEngine(nlp_engine=provider.create_engine()), note


def run_presidio(lines: list) -> tuple[list, float, str]:
    engine, note = presidio_engine()
    engine.analyze(text="warm-up 4111 1111 1111 1111", language="en")
    out = []
    t = time.perf_counter()
    for line in lines:
        res = engine.analyze(text=line["text"], language="en")  # defaults: all entities, threshold 0
        out.append([{"start": r.start, "end": r.end, "kind": PRESIDIO_TO_KIND[r.entity_type]}
                    for r in res if r.entity_type in PRESIDIO_TO_KIND])
    elapsed = time.perf_counter() - t
    return out, elapsed, f"presidio-analyzer {_dist_version('presidio-analyzer')}, {note}"


def _dist_version(name: str) -> str:
    from importlib.metadata import version
    return version(name)


def run_ballast(lines: list) -> tuple[list, float]:
    """Spans from `cargo run --release -p ballast-capture --example redact_spans` (built if
    needed; CARGO_TARGET_DIR is honoured) and its own timing of the scan alone."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    cmd = ["cargo", "run", "--release", "--quiet", "-p", "ballast-capture", "--example",
           "redact_spans", "--", f.name]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    os.unlink(f.name)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    spans = [json.loads(l)["spans"] for l in p.stdout.splitlines()]
    timing = json.loads(p.stderr.strip().splitlines()[-1])
    return spans, timing["seconds"]


def network(ds: str) -> str:
    """A card's network by IIN, for --explain (the corpus generator's names)."""
    p2, p3, p4 = int(ds[:2]), int(ds[:3]), int(ds[:4])
    if ds[0] == "4":
        name = "visa"
    elif 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        name = "mastercard 2-series" if ds[0] == "2" else "mastercard"
    elif 2200 <= p4 <= 2205:
        name = "mir"
    elif p2 in (34, 37):
        name = "amex"
    elif 3528 <= p4 <= 3589:
        name = "jcb"
    elif p2 in (36, 38, 39) or 300 <= p3 <= 305 or p4 == 3095:
        name = "diners"
    elif ds.startswith(("6011", "65")) or 644 <= p3 <= 649 or 622126 <= int(ds[:6]) <= 622925:
        name = "discover"
    elif p2 == 62:
        name = "unionpay"
    else:
        name = "maestro/other"
    return f"{name} {len(ds)}"


def explain(lines: list, detections: list, who: str) -> None:
    """Misses by card network and length, IBAN countries missed, and false positives."""
    import collections
    tot, miss, ib_tot, ib_miss = (collections.Counter() for _ in range(4))
    false = collections.defaultdict(list)
    for line, dets in zip(lines, detections):
        text = line["text"]
        for g in line["spans"]:
            hit = any(matches(text, d, g) for d in dets)
            value = text[g["start"]:g["end"]]
            if g["kind"] == "card":
                k = network("".join(c for c in value if c.isdigit()))
                tot[k] += 1
                miss[k] += not hit
            elif g["kind"] == "iban":
                ib_tot[value[:2].upper()] += 1
                ib_miss[value[:2].upper()] += not hit
        for d in dets:
            if not any(matches(text, d, g) for g in line["spans"]):
                false[d["kind"]].append(text[d["start"]:d["end"]])
    print(f"\n{who}: card misses by network and length:",
          ", ".join(f"{k} {miss[k]}/{tot[k]}" for k in sorted(tot) if miss[k]) or "none")
    print(f"{who}: IBAN countries missed always:",
          " ".join(sorted(c for c in ib_tot if ib_miss[c] == ib_tot[c])) or "none",
          "| sometimes:", " ".join(sorted(c for c in ib_tot if 0 < ib_miss[c] < ib_tot[c])) or "none")
    for k in KINDS:
        if false[k]:
            print(f"{who}: false {k} ({len(false[k])}), e.g.", "; ".join(false[k][:6]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=str(ROOT / "tests/pii/corpus.jsonl"))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--explain", action="store_true",
                    help="also list misses by card network, IBAN country and false positives")
    args = ap.parse_args()
    lines = [json.loads(l) for l in Path(args.corpus).read_text(encoding="utf-8").splitlines()]
    if args.limit:
        lines = lines[:args.limit]
    b_spans, b_secs = run_ballast(lines)
    p_spans, p_secs, p_note = run_presidio(lines)
    b, p = score(lines, b_spans), score(lines, p_spans)
    counts = {k: b[k]["labels"] for k in KINDS}
    print(f"corpus: {args.corpus}, {len(lines)} strings, labels {counts}")
    print(f"Presidio: {p_note}; AnalyzerEngine.analyze(text, language='en') at its defaults")
    print()
    print("| type  | labels | ballast recall | ballast precision | Presidio recall | Presidio precision |")
    print("|-------|-------:|---------------:|------------------:|----------------:|-------------------:|")

    def pct(a: int, n: int) -> str:
        return f"{100 * a / n:.1f}%" if n else "n/a"

    for k in KINDS:
        print(f"| {k:<5} | {b[k]['labels']:>6} | {pct(b[k]['found'], b[k]['labels']):>14} | "
              f"{pct(b[k]['correct'], b[k]['detections']):>17} | "
              f"{pct(p[k]['found'], p[k]['labels']):>15} | "
              f"{pct(p[k]['correct'], p[k]['detections']):>18} |")
    n = len(lines)
    print()
    print(f"time per 1,000 strings: ballast {1000 * b_secs / n * 1000:.2f} ms (scan only, best of 5, "
          f"one thread), Presidio {1000 * p_secs / n:.2f} s (analyze only, one pass, one thread)")
    if args.explain:
        explain(lines, b_spans, "ballast")
        explain(lines, p_spans, "Presidio")


if __name__ == "__main__":
    main()
