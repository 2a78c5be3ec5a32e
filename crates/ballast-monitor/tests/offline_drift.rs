//! `ballast drift`'s statistics against scipy's, on the committed fixtures
//! (`tests/fixtures/drift/make_fixtures.py` wrote the files and scipy's results).
//! Every statistic and p-value must agree within 1e-9, absolute or relative, whichever is
//! larger: `|ours − scipy| <= 1e-9 · max(1, |scipy|)`.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use ballast_monitor::offline::{self, Options};
use serde_json::Value;

const TOLERANCE: f64 = 1e-9;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/drift")
}

/// Largest absolute and relative deviation seen over every compared number.
#[derive(Default)]
struct Deviation {
    abs: f64,
    rel: f64,
    compared: usize,
}

fn compare_number(
    what: &str,
    ours: &Value,
    theirs: &Value,
    dev: &mut Deviation,
    bad: &mut Vec<String>,
) {
    let (Some(a), Some(b)) = (ours.as_f64(), theirs.as_f64()) else {
        bad.push(format!("{what}: ours {ours}, scipy {theirs}"));
        return;
    };
    let abs = (a - b).abs();
    let rel = if b != 0.0 { abs / b.abs() } else { abs };
    dev.abs = dev.abs.max(abs);
    dev.rel = dev.rel.max(rel);
    dev.compared += 1;
    if abs > TOLERANCE * b.abs().max(1.0) {
        bad.push(format!(
            "{what}: ours {a:e}, scipy {b:e} (abs {abs:e}, rel {rel:e})"
        ));
    }
}

fn check_case(name: &str, dev: &mut Deviation) {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("expected").join(format!("{name}.json"))).unwrap(),
    )
    .unwrap();
    let dir = fixtures();
    let options = Options {
        categorical: expected["categorical"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect(),
    };
    let report = offline::compare(
        &dir.join(expected["reference"].as_str().unwrap()),
        &dir.join(expected["current"].as_str().unwrap()),
        &options,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    let ours = serde_json::to_value(&report).unwrap();
    let mut bad = Vec::new();
    let want = expected["features"].as_array().unwrap();
    let got = ours["features"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{name}: feature count");
    for (g, w) in got.iter().zip(want) {
        let f = format!("{name}/{}", w["name"].as_str().unwrap());
        assert_eq!(g["name"], w["name"], "{f}");
        for key in [
            "kind",
            "drifted",
            "reference_count",
            "current_count",
            "reason",
        ] {
            if g.get(key) != w.get(key) {
                bad.push(format!(
                    "{f} {key}: ours {:?}, expected {:?}",
                    g.get(key),
                    w.get(key)
                ));
            }
        }
        compare_number(
            &format!("{f} missing_share"),
            &g["missing_share"],
            &w["missing_share"],
            dev,
            &mut bad,
        );
        let (gt, wt) = (&g["tests"], &w["tests"]);
        let keys: Vec<&String> = wt.as_object().unwrap().keys().collect();
        let gkeys: Vec<&String> = gt.as_object().unwrap().keys().collect();
        if keys.len() != gkeys.len() {
            bad.push(format!("{f}: tests ours {gkeys:?}, expected {keys:?}"));
        }
        for key in keys {
            let (a, b) = (&gt[key.as_str()], &wt[key.as_str()]);
            match b {
                Value::Object(fields) => {
                    for (k, v) in fields {
                        match v {
                            Value::Number(_) if k != "dof" => compare_number(
                                &format!("{f} {key}.{k}"),
                                &a[k.as_str()],
                                v,
                                dev,
                                &mut bad,
                            ),
                            _ => {
                                if &a[k.as_str()] != v {
                                    bad.push(format!(
                                        "{f} {key}.{k}: ours {}, expected {v}",
                                        a[k.as_str()]
                                    ));
                                }
                            }
                        }
                    }
                }
                _ => compare_number(&format!("{f} {key}"), a, b, dev, &mut bad),
            }
        }
    }
    compare_number(
        &format!("{name} drifted_share"),
        &ours["drifted_share"],
        &expected["drifted_share"],
        dev,
        &mut bad,
    );
    assert!(
        bad.is_empty(),
        "{name}: differs from scipy:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_statistic_and_p_value_matches_scipy_within_1e_9() {
    let mut dev = Deviation::default();
    for case in ["small", "exact", "large"] {
        check_case(case, &mut dev);
    }
    eprintln!(
        "compared {} numbers with scipy: max abs deviation {:e}, max rel deviation {:e}",
        dev.compared, dev.abs, dev.rel
    );
    assert!(dev.compared >= 150, "{} numbers compared", dev.compared);
}

#[test]
fn a_column_missing_from_current_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (r, c) = (dir.path().join("r.csv"), dir.path().join("c.csv"));
    std::fs::write(&r, "a,b\n1,2\n3,4\n").unwrap();
    std::fs::write(&c, "a\n1\n3\n").unwrap();
    let e = offline::compare(&r, &c, &Options::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("'b'") && e.contains("c.csv"), "{e}");
}

#[test]
fn unreadable_parquet_and_missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.parquet");
    std::fs::write(&bad, "PAR1 this is not really parquet").unwrap();
    let good = fixtures().join("small_ref.csv");
    let e = offline::compare(&good, &bad, &Options::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken.parquet") && e.contains("Parquet"), "{e}");
    let e = offline::compare(&dir.path().join("nope.csv"), &good, &Options::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.csv"), "{e}");
}
