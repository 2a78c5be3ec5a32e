//! The scanner against the labelled corpus in `tests/pii/corpus.jsonl` (made by
//! `tests/pii/make_corpus.py`): recall and precision per kind.
//!
//! Corpus offsets are Unicode code points; they are converted to byte offsets here. A detection
//! matches a label when both have the same kind, they overlap, and the characters in one but
//! not the other are all non-alphanumeric (separators, brackets, `+`, whitespace). The same rule
//! is used by `bench/pii_presidio.py`.
#![allow(clippy::unwrap_used)] // tests fail by panicking

use ballast_capture::redact::{Kind, Scanner, Span};

struct Line {
    text: String,
    spans: Vec<Span>,
}

fn corpus() -> Vec<Line> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/pii/corpus.jsonl");
    let raw = std::fs::read_to_string(path).unwrap();
    raw.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let text = v["text"].as_str().unwrap().to_owned();
            // code point index -> byte offset
            let mut bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
            bytes.push(text.len());
            let spans = v["spans"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| Span {
                    start: bytes[s["start"].as_u64().unwrap() as usize],
                    end: bytes[s["end"].as_u64().unwrap() as usize],
                    kind: Kind::parse(s["kind"].as_str().unwrap(), "kind").unwrap(),
                })
                .collect();
            Line { text, spans }
        })
        .collect()
}

/// Same kind, overlapping, and differing only in non-alphanumeric characters.
fn matches(text: &str, a: &Span, b: &Span) -> bool {
    if a.kind != b.kind || a.end <= b.start || b.end <= a.start {
        return false;
    }
    let (lo, hi) = (a.start.min(b.start), a.end.max(b.end));
    let (ilo, ihi) = (a.start.max(b.start), a.end.min(b.end));
    text[lo..ilo]
        .chars()
        .chain(text[ihi..hi].chars())
        .all(|c| !c.is_alphanumeric())
}

#[derive(Default, Clone, Copy)]
struct Tally {
    labels: usize,
    found: usize,
    detections: usize,
    correct: usize,
}

fn tally() -> ([Tally; 5], Vec<String>) {
    let scanner = Scanner::all();
    let mut t = [Tally::default(); 5];
    let mut errors = Vec::new();
    for line in corpus() {
        let got = scanner.find(&line.text);
        for g in &line.spans {
            let k = &mut t[g.kind as usize];
            k.labels += 1;
            if got.iter().any(|d| matches(&line.text, d, g)) {
                k.found += 1;
            } else {
                errors.push(format!(
                    "missed {}: {:?} in {:?}",
                    g.kind,
                    &line.text[g.start..g.end],
                    line.text
                ));
            }
        }
        for d in &got {
            let k = &mut t[d.kind as usize];
            k.detections += 1;
            if line.spans.iter().any(|g| matches(&line.text, d, g)) {
                k.correct += 1;
            } else {
                errors.push(format!(
                    "false {}: {:?} in {:?}",
                    d.kind,
                    &line.text[d.start..d.end],
                    line.text
                ));
            }
        }
    }
    (t, errors)
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

#[test]
fn corpus_recall_and_precision_meet_the_goals() {
    let (t, errors) = tally();
    for e in errors.iter().take(60) {
        eprintln!("{e}");
    }
    let mut failed = Vec::new();
    for kind in Kind::ALL {
        let k = t[kind as usize];
        let (recall, precision) = (ratio(k.found, k.labels), ratio(k.correct, k.detections));
        eprintln!(
            "{kind:>5}: labels {:>4} recall {:.4} precision {:.4} ({} detections)",
            k.labels, recall, precision, k.detections
        );
        assert!(
            k.labels >= 300,
            "{kind}: corpus too small ({} labels)",
            k.labels
        );
        let min_recall = match kind {
            Kind::Card | Kind::Iban => 1.0,
            Kind::Email | Kind::Phone | Kind::Ssn => 0.99,
        };
        if recall < min_recall {
            failed.push(format!("{kind} recall {recall:.4} < {min_recall}"));
        }
        if precision < 0.99 {
            failed.push(format!("{kind} precision {precision:.4} < 0.99"));
        }
    }
    assert!(failed.is_empty(), "{failed:?}");
}

#[test]
fn corpus_covers_every_iban_country_and_the_mastercard_two_series() {
    let lines = corpus();
    let mut countries = std::collections::BTreeSet::new();
    let mut two_series = 0;
    for l in &lines {
        for s in &l.spans {
            let v: String = l.text[s.start..s.end]
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect();
            match s.kind {
                Kind::Iban => {
                    countries.insert(v[..2].to_ascii_uppercase());
                }
                Kind::Card if (2221..=2720).contains(&v[..4].parse::<u32>().unwrap()) => {
                    two_series += 1
                }
                _ => {}
            }
        }
    }
    assert_eq!(countries.len(), 89, "{countries:?}");
    assert!(two_series >= 30, "{two_series}");
}
