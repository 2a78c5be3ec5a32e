//! Throughput of [`Scanner::redact`] with every detector on: strings/s and MB/s on the labelled
//! corpus (every line has numbers, most have PII), on its lines with the PII removed (decoys
//! only), and on plain prose without digits or `@` (the common case: no regex runs); then each
//! detector alone on the corpus.
//!
//! ```text
//! cargo run --release -p ballast-capture --example redact_bench
//! ```

use std::time::Instant;

use ballast_capture::redact::{Kind, Scanner};

fn bench(name: &str, scanner: &Scanner, texts: &[String]) {
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut counts = [0u64; 5];
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..10 {
            for text in texts {
                std::hint::black_box(scanner.redact(text, &mut counts));
            }
        }
        best = best.min(t.elapsed().as_secs_f64() / 10.0);
    }
    println!(
        "{name:<32} {:>7} strings  {:>10.0} strings/s  {:>7.1} MB/s  {:>8.2} ms per 1,000",
        texts.len(),
        texts.len() as f64 / best,
        bytes as f64 / best / 1e6,
        best * 1e6 / texts.len() as f64,
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/pii/corpus.jsonl");
    let mut corpus = Vec::new();
    let mut decoys = Vec::new();
    for line in std::fs::read_to_string(path)?.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let text = v["text"].as_str().ok_or("line without text")?.to_owned();
        let empty = v["spans"].as_array().is_some_and(Vec::is_empty);
        if empty {
            decoys.push(text.clone());
        }
        corpus.push(text);
    }
    let prose: Vec<String> = (0..3000)
        .map(|i| {
            format!(
                "Model output looks fine for request {}; the customer asked about the delivery \
                 window and was told it would arrive early next week.",
                ["one", "two", "three"][i % 3]
            )
        })
        .collect();
    let t = Instant::now();
    let scanner = Scanner::all();
    println!(
        "Scanner::all() built in {:.2} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    bench("corpus (PII + decoys)", &scanner, &corpus);
    for kind in Kind::ALL {
        bench(
            &format!("corpus, {kind} detector only"),
            &Scanner::new(&[kind]),
            &corpus,
        );
    }
    bench("corpus lines without PII", &scanner, &decoys);
    bench("prose, no digits or @", &scanner, &prose);
    Ok(())
}
