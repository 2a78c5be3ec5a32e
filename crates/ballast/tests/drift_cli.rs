//! `ballast drift` as a user runs it: on the committed scipy fixtures, JSON to stdout and the
//! HTML report to a file; unusable input exits 64 naming the file or column.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ballast");

fn fixtures() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ballast-monitor/tests/fixtures/drift")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("drift-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn drift_prints_scipy_equal_json_and_writes_one_html_file() {
    let f = fixtures();
    let html = scratch("report.html");
    let out = Command::new(BIN)
        .args(["drift", "--json", "--categorical", "code", "--reference"])
        .arg(f.join("small_ref.csv"))
        .arg("--current")
        .arg(f.join("small_cur.parquet"))
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.join("expected/small.json")).unwrap())
            .unwrap();
    let (g, w) = (
        got["features"].as_array().unwrap(),
        want["features"].as_array().unwrap(),
    );
    assert_eq!(g.len(), w.len());
    for (g, w) in g.iter().zip(w) {
        assert_eq!(g["name"], w["name"]);
        assert_eq!(g["kind"], w["kind"]);
        assert_eq!(g["drifted"], w["drifted"], "{}", g["name"]);
        for (test, field) in [("ks", "p_value"), ("ks", "statistic"), ("chi2", "p_value")] {
            if let Some(b) = w["tests"][test][field].as_f64() {
                let a = g["tests"][test][field].as_f64().unwrap();
                assert!(
                    (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                    "{} {test}.{field}: {a} vs {b}",
                    g["name"]
                );
            }
        }
    }
    let want_share = want["drifted_share"].as_f64().unwrap();
    assert!((got["drifted_share"].as_f64().unwrap() - want_share).abs() < 1e-12);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<svg"));
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("<script"));
}

#[test]
fn unusable_input_exits_64_naming_the_file_or_column() {
    let f = fixtures();
    let run = |reference: PathBuf, current: PathBuf| {
        let out = Command::new(BIN)
            .arg("drift")
            .arg("--reference")
            .arg(reference)
            .arg("--current")
            .arg(current)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(f.join("no-such.csv"), f.join("small_cur.parquet"));
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("no-such.csv"), "{err}");

    let fewer = scratch("fewer.csv");
    std::fs::write(&fewer, "n1,n2\n1,2\n").unwrap();
    let (code, err) = run(f.join("small_ref.csv"), fewer);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("'n30'") && err.contains("fewer.csv"), "{err}");

    let broken = scratch("broken.parquet");
    std::fs::write(&broken, b"PAR1 truncated").unwrap();
    let (code, err) = run(f.join("small_ref.csv"), broken);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("broken.parquet"), "{err}");
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// The HTML report in a real browser: it loads from a file with no console messages and no
/// network errors, and feature names are escaped. Skips (saying so) only when no chromium is
/// installed; `.ci/run` installs it.
#[test]
fn html_report_renders_in_headless_chromium_without_console_errors() {
    let dir = scratch("escape");
    std::fs::create_dir_all(&dir).unwrap();
    let (r, c) = (dir.join("r.csv"), dir.join("c.csv"));
    let evil = "<img src=x onerror=alert(1)>";
    let header = format!("\"{evil}\",plain\n");
    let rows_r: String = (0..200)
        .map(|i| format!("{},{}\n", i % 17, i % 5))
        .collect();
    let rows_c: String = (0..150)
        .map(|i| format!("{},{}\n", i % 13 + 3, i % 4))
        .collect();
    std::fs::write(&r, header.clone() + &rows_r).unwrap();
    std::fs::write(&c, header + &rows_c).unwrap();
    let html = dir.join("report.html");
    let out = Command::new(BIN)
        .arg("drift")
        .arg("--reference")
        .arg(&r)
        .arg("--current")
        .arg(&c)
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        !page.contains(evil),
        "a feature name reached the page unescaped"
    );
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));

    let Some(chromium) = on_path("chromium").or_else(|| on_path("chromium-browser")) else {
        eprintln!("skipped: no chromium on PATH (Debian package `chromium`)");
        return;
    };
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {log}");
    assert!(dom.contains("<svg") && dom.contains("Data drift"), "{dom}");
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("net::ERR_"))
        .collect();
    assert!(
        bad.is_empty(),
        "console or network errors:\n{}",
        bad.join("\n")
    );
}
