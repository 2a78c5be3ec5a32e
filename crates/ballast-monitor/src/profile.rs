//! Reference profiles: per column of a model's reference data, how its values are distributed,
//! in the bins that live traffic will later be counted in.
//!
//! - A **numeric** column (every present value parses as a finite number) gets quantile bin
//!   edges, so each bin holds about the same share of the reference (deciles by default), and
//!   the count and frequency in each bin, with min and max. Bins are right-closed:
//!   bin 0 is `(-inf, e0]`, bin i is `(e(i-1), ei]`, the last `(e(k-1), +inf)`. Edges that tie
//!   (a column with few distinct values) are merged and an edge at the maximum is dropped, so
//!   no bin is empty by construction.
//! - A **categorical** column (anything else, or named in [`ProfileOptions::categorical`])
//!   gets the frequency of each value, the most frequent [`ProfileOptions::max_categories`]
//!   kept by name and the rest counted together as `other`.
//! - Both count **missing** values: an empty field, or one of [`MISSING`] (pandas' usual
//!   markers), and for numeric columns a non-finite number (`inf`, `nan`), which JSON cannot
//!   carry and a bin cannot hold.
//!
//! Building one reads the file twice (types first, then values) and holds one column's
//! numbers at a time in memory to sort them, so a reference of millions of rows is fine.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Field values read as missing (after trimming whitespace), besides the empty field.
pub const MISSING: &[&str] = &[
    "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "#N/A", "<NA>",
];

/// The profile format; bumped when a reader could misread an older one.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone)]
pub struct ProfileOptions {
    /// Quantile bins per numeric column (at least 2).
    pub bins: usize,
    /// Categories kept by name per categorical column; the rest count as `other`.
    pub max_categories: usize,
    /// Columns profiled as categories even when their values parse as numbers (integer
    /// codes, zip codes).
    pub categorical: Vec<String>,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        Self {
            bins: 10,
            max_categories: 100,
            categorical: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub format: u32,
    /// Data rows read (the header excluded).
    pub rows: u64,
    pub columns: Vec<ColumnProfile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    /// Position in the file, from 0: the feature index of a `[-1, F]` input.
    pub index: usize,
    pub missing: u64,
    pub missing_rate: f64,
    #[serde(flatten)]
    pub column: Column,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Column {
    Numeric {
        /// `None` when every value is missing.
        min: Option<f64>,
        max: Option<f64>,
        /// Interior bin edges, increasing; `edges.len() + 1` bins.
        edges: Vec<f64>,
        counts: Vec<u64>,
        /// `counts` over the present values.
        frequencies: Vec<f64>,
    },
    Categorical {
        /// Most frequent first (ties by value).
        categories: Vec<Category>,
        /// Present values not kept by name.
        other_count: u64,
        other_frequency: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    pub value: String,
    pub count: u64,
    pub frequency: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Csv { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl Column {
    /// The bin of a numeric value (right-closed edges); `None` for a categorical column.
    pub fn bin_of(&self, v: f64) -> Option<usize> {
        match self {
            Column::Numeric { edges, .. } => Some(edges.partition_point(|e| *e < v)),
            Column::Categorical { .. } => None,
        }
    }
}

pub(crate) fn is_missing(field: &str) -> bool {
    field.is_empty() || MISSING.contains(&field)
}

/// A present value's number, `Err(())` when it is not one; `Ok(None)` for missing.
fn number(field: &str) -> Result<Option<f64>, ()> {
    let f = field.trim();
    if is_missing(f) {
        return Ok(None);
    }
    match f.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        Ok(_) => Ok(None),
        Err(_) => Err(()),
    }
}

fn reader(path: &Path) -> Result<csv::Reader<std::fs::File>, ProfileError> {
    let file = std::fs::File::open(path).map_err(|source| ProfileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(file))
}

fn csv_error(path: &Path, e: csv::Error) -> ProfileError {
    let message = match (e.position(), e.kind()) {
        (
            Some(p),
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            },
        ) => format!(
            "line {}: {len} fields where the header has {expected_len}",
            p.line()
        ),
        (Some(p), _) => format!("line {}: {e}", p.line()),
        (None, _) => e.to_string(),
    };
    ProfileError::Csv {
        path: path.to_path_buf(),
        message,
    }
}

/// Profiles a CSV file with a header row.
pub fn profile_csv(path: &Path, options: &ProfileOptions) -> Result<Profile, ProfileError> {
    if options.bins < 2 {
        return Err(ProfileError::Invalid(format!(
            "bins must be at least 2, got {}",
            options.bins
        )));
    }
    let mut rdr = reader(path)?;
    let names: Vec<String> = rdr
        .headers()
        .map_err(|e| csv_error(path, e))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if names.is_empty() || names.iter().all(String::is_empty) {
        return Err(ProfileError::Invalid(format!(
            "{}: no header row (the first line must name the columns)",
            path.display()
        )));
    }
    let mut seen = HashSet::new();
    for n in &names {
        if n.is_empty() {
            return Err(ProfileError::Invalid(format!(
                "{}: a column has an empty name in the header",
                path.display()
            )));
        }
        if !seen.insert(n.as_str()) {
            return Err(ProfileError::Invalid(format!(
                "{}: column {n:?} appears twice in the header",
                path.display()
            )));
        }
    }
    for forced in &options.categorical {
        if !names.contains(forced) {
            return Err(ProfileError::Invalid(format!(
                "categorical column {forced:?} is not in {} (columns: {})",
                path.display(),
                names.join(", ")
            )));
        }
    }

    // Pass 1: which columns are numeric, and how many rows.
    let mut numeric: Vec<bool> = names
        .iter()
        .map(|n| !options.categorical.contains(n))
        .collect();
    let mut rows = 0u64;
    let mut record = csv::StringRecord::new();
    while rdr
        .read_record(&mut record)
        .map_err(|e| csv_error(path, e))?
    {
        rows += 1;
        for (i, field) in record.iter().enumerate() {
            if numeric[i] && number(field).is_err() {
                numeric[i] = false;
            }
        }
    }
    if rows == 0 {
        return Err(ProfileError::Invalid(format!(
            "{}: no data rows after the header",
            path.display()
        )));
    }

    // Pass 2: the values.
    let mut values: Vec<Vec<f64>> = numeric.iter().map(|_| Vec::new()).collect();
    let mut categories: Vec<HashMap<String, u64>> =
        numeric.iter().map(|_| HashMap::new()).collect();
    let mut missing = vec![0u64; names.len()];
    let mut rdr = reader(path)?;
    while rdr
        .read_record(&mut record)
        .map_err(|e| csv_error(path, e))?
    {
        for (i, field) in record.iter().enumerate() {
            if numeric[i] {
                match number(field) {
                    Ok(Some(v)) => values[i].push(v),
                    _ => missing[i] += 1,
                }
            } else {
                let f = field.trim();
                if is_missing(f) {
                    missing[i] += 1;
                } else if let Some(n) = categories[i].get_mut(f) {
                    *n += 1;
                } else {
                    categories[i].insert(f.to_string(), 1);
                }
            }
        }
    }

    let columns = names
        .into_iter()
        .enumerate()
        .map(|(index, name)| {
            let column = if numeric[index] {
                numeric_column(std::mem::take(&mut values[index]), options.bins)
            } else {
                categorical_column(
                    std::mem::take(&mut categories[index]),
                    options.max_categories,
                )
            };
            ColumnProfile {
                name,
                index,
                missing: missing[index],
                missing_rate: missing[index] as f64 / rows as f64,
                column,
            }
        })
        .collect();
    Ok(Profile {
        format: FORMAT,
        rows,
        columns,
    })
}

/// Quantile edges (type-1: the smallest value with at least `j/bins` of the data at or
/// below it), merged where they tie, dropped at the maximum.
pub fn numeric_column(mut v: Vec<f64>, bins: usize) -> Column {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let (Some(&min), Some(&max)) = (v.first(), v.last()) else {
        return Column::Numeric {
            min: None,
            max: None,
            edges: Vec::new(),
            counts: vec![0],
            frequencies: vec![0.0],
        };
    };
    let mut edges: Vec<f64> = Vec::with_capacity(bins - 1);
    for j in 1..bins {
        let rank = (j * n).div_ceil(bins).max(1);
        let e = v[rank - 1];
        if e < max && edges.last().is_none_or(|last| *last < e) {
            edges.push(e);
        }
    }
    let mut counts = vec![0u64; edges.len() + 1];
    // v is sorted: walk the bins once.
    let mut bin = 0;
    for x in &v {
        while bin < edges.len() && *x > edges[bin] {
            bin += 1;
        }
        counts[bin] += 1;
    }
    let frequencies = counts.iter().map(|c| *c as f64 / n as f64).collect();
    Column::Numeric {
        min: Some(min),
        max: Some(max),
        edges,
        counts,
        frequencies,
    }
}

fn categorical_column(counts: HashMap<String, u64>, keep: usize) -> Column {
    let present: u64 = counts.values().sum();
    let mut all: Vec<(String, u64)> = counts.into_iter().collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let other_count: u64 = all.iter().skip(keep).map(|(_, c)| c).sum();
    all.truncate(keep);
    let share = |c: u64| {
        if present == 0 {
            0.0
        } else {
            c as f64 / present as f64
        }
    };
    Column::Categorical {
        categories: all
            .into_iter()
            .map(|(value, count)| Category {
                value,
                count,
                frequency: share(count),
            })
            .collect(),
        other_count,
        other_frequency: share(other_count),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn csv_file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn deciles_of_a_uniform_column_hold_a_tenth_each() {
        let Column::Numeric {
            edges,
            counts,
            min,
            max,
            ..
        } = numeric_column((1..=1000).map(f64::from).collect(), 10)
        else {
            panic!("numeric")
        };
        assert_eq!(
            edges,
            (1..10).map(|j| f64::from(j * 100)).collect::<Vec<_>>()
        );
        assert_eq!(counts, vec![100; 10]);
        assert_eq!((min, max), (Some(1.0), Some(1000.0)));
    }

    #[test]
    fn tied_values_merge_their_edges_and_no_bin_is_empty() {
        // 70 % zeros, 30 % ones.
        let v: Vec<f64> = (0..1000).map(|i| if i < 700 { 0.0 } else { 1.0 }).collect();
        let col = numeric_column(v, 10);
        let Column::Numeric { edges, counts, .. } = &col else {
            panic!("numeric")
        };
        assert_eq!(edges, &vec![0.0]);
        assert_eq!(counts, &vec![700, 300]);
        assert_eq!(col.bin_of(0.0), Some(0));
        assert_eq!(col.bin_of(-5.0), Some(0));
        assert_eq!(col.bin_of(0.5), Some(1));
        assert_eq!(col.bin_of(7.0), Some(1));
        // A constant column is one bin.
        let Column::Numeric { edges, counts, .. } = numeric_column(vec![3.0; 50], 10) else {
            panic!("numeric")
        };
        assert!(edges.is_empty());
        assert_eq!(counts, vec![50]);
    }

    #[test]
    fn bins_are_right_closed_and_counts_match_bin_of() {
        let v: Vec<f64> = (0..997)
            .map(|i| ((i * 7919) % 1013) as f64 / 10.0)
            .collect();
        let col = numeric_column(v.clone(), 7);
        let Column::Numeric { counts, edges, .. } = &col else {
            panic!("numeric")
        };
        let mut again = vec![0u64; counts.len()];
        for x in &v {
            again[col.bin_of(*x).unwrap()] += 1;
        }
        assert_eq!(&again, counts);
        assert!(edges.windows(2).all(|w| w[0] < w[1]));
        // Roughly equal shares: each of 7 bins within a point of 1/7 (few ties here).
        for c in counts {
            let share = *c as f64 / v.len() as f64;
            assert!((share - 1.0 / 7.0).abs() < 0.01, "{counts:?}");
        }
    }

    #[test]
    fn a_csv_profile_types_columns_and_counts_missing_values() {
        let mut text = String::from("amount,country,code, flag\n");
        for i in 0..100 {
            let amount = if i % 10 == 0 {
                "NA".to_string()
            } else {
                format!("{}.5", i)
            };
            let country = ["FR", "DE", "FR", "US", ""][i % 5];
            text.push_str(&format!("{amount},{country},{},{}\n", i % 3, i % 2));
        }
        let f = csv_file(&text);
        let options = ProfileOptions {
            categorical: vec!["code".into()],
            ..Default::default()
        };
        let p = profile_csv(f.path(), &options).unwrap();
        assert_eq!(p.rows, 100);
        let names: Vec<&str> = p.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["amount", "country", "code", "flag"]);
        let amount = &p.columns[0];
        assert_eq!(amount.missing, 10);
        assert!((amount.missing_rate - 0.1).abs() < 1e-12);
        let Column::Numeric {
            min, max, counts, ..
        } = &amount.column
        else {
            panic!("amount is numeric")
        };
        assert_eq!((*min, *max), (Some(1.5), Some(99.5)));
        assert_eq!(counts.iter().sum::<u64>(), 90);
        let country = &p.columns[1];
        assert_eq!(country.missing, 20);
        let Column::Categorical {
            categories,
            other_count,
            ..
        } = &country.column
        else {
            panic!("country is categorical")
        };
        assert_eq!(categories[0].value, "FR");
        assert_eq!(categories[0].count, 40);
        assert!((categories[0].frequency - 0.5).abs() < 1e-12);
        assert_eq!(*other_count, 0);
        // Forced categorical although its values are numbers.
        assert!(matches!(p.columns[2].column, Column::Categorical { .. }));
        // A binary numeric column: two bins.
        let Column::Numeric { counts, .. } = &p.columns[3].column else {
            panic!("flag is numeric")
        };
        assert_eq!(counts, &vec![50, 50]);
        // The profile round-trips through JSON.
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Profile>(&json).unwrap(), p);
    }

    #[test]
    fn rare_categories_are_counted_as_other() {
        let mut text = String::from("c\n");
        for i in 0..30 {
            text.push_str(&format!("v{}\n", i % 6));
        }
        let f = csv_file(&text);
        let p = profile_csv(
            f.path(),
            &ProfileOptions {
                max_categories: 4,
                ..Default::default()
            },
        )
        .unwrap();
        let Column::Categorical {
            categories,
            other_count,
            other_frequency,
        } = &p.columns[0].column
        else {
            panic!("categorical")
        };
        assert_eq!(categories.len(), 4);
        assert_eq!(*other_count, 10);
        assert!((other_frequency - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn bad_files_are_named_with_the_line() {
        let err = |text: &str| {
            profile_csv(csv_file(text).path(), &ProfileOptions::default())
                .unwrap_err()
                .to_string()
        };
        let ragged = err("a,b\n1,2\n3\n");
        assert!(
            ragged.contains("line 3") && ragged.contains("1 fields"),
            "{ragged}"
        );
        assert!(err("a,b\n").contains("no data rows"));
        assert!(err("").contains("no header"));
        assert!(err("a,a\n1,2\n").contains("appears twice"));
        let missing = profile_csv(
            Path::new("/nonexistent/ref.csv"),
            &ProfileOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(missing.contains("/nonexistent/ref.csv"), "{missing}");
        let f = csv_file("a\n1\n");
        let forced = profile_csv(
            f.path(),
            &ProfileOptions {
                categorical: vec!["zip".into()],
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(forced.contains("\"zip\""), "{forced}");
    }

    #[test]
    fn non_finite_numbers_are_missing_not_values() {
        let f = csv_file("x\n1\ninf\n-inf\nnan\n2\n");
        let p = profile_csv(f.path(), &ProfileOptions::default()).unwrap();
        assert_eq!(p.columns[0].missing, 3);
        let Column::Numeric { max, .. } = &p.columns[0].column else {
            panic!("numeric")
        };
        assert_eq!(*max, Some(2.0));
    }
}
