//! Prints the scanner's spans for every line of a corpus, for `bench/pii_presidio.py`.
//!
//! ```text
//! cargo run --release -p ballast-capture --example redact_spans -- tests/pii/corpus.jsonl
//! ```
//!
//! stdout: one JSON object per input line, `{"spans": [{"start", "end", "kind"}]}` with offsets
//! in Unicode code points (like the corpus). stderr: one JSON object with the timing of the scan
//! alone (corpus already in memory, best of 5 passes).

use std::time::Instant;

use ballast_capture::redact::Scanner;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: redact_spans CORPUS.jsonl")?;
    let texts: Vec<String> = std::fs::read_to_string(&path)?
        .lines()
        .map(|l| -> Result<String, Box<dyn std::error::Error>> {
            let v: serde_json::Value = serde_json::from_str(l)?;
            Ok(v["text"].as_str().ok_or("line without text")?.to_owned())
        })
        .collect::<Result<_, _>>()?;
    let scanner = Scanner::all();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        let mut n = 0usize;
        for text in &texts {
            n += scanner.find(text).len();
        }
        best = best.min(t.elapsed().as_secs_f64());
        std::hint::black_box(n);
    }
    let mut out = String::new();
    for text in &texts {
        let spans: Vec<serde_json::Value> = scanner
            .find(text)
            .iter()
            .map(|s| {
                serde_json::json!({
                    "start": text[..s.start].chars().count(),
                    "end": text[..s.end].chars().count(),
                    "kind": s.kind.as_str(),
                })
            })
            .collect();
        out.push_str(&serde_json::json!({ "spans": spans }).to_string());
        out.push('\n');
    }
    print!("{out}");
    eprintln!(
        "{}",
        serde_json::json!({
            "strings": texts.len(),
            "seconds": best,
            "ms_per_1000": best * 1000.0 / texts.len() as f64 * 1000.0,
        })
    );
    Ok(())
}
