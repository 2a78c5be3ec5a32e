//! Columns of a CSV or Parquet file, as the drift tests need them: a numeric column's
//! non-missing values (to be sorted), a categorical column's counts per category, and each
//! column's missing count.
//!
//! - **Format** from the content: a file starting with Parquet's `PAR1` magic is Parquet, any
//!   other is CSV with a header row (a `.parquet` name that is not Parquet is an error).
//! - **Missing**: an empty CSV field or one of [`crate::profile::MISSING`] (as `ballast
//!   profile`), a Parquet null, and in a numeric column a non-finite number (NaN, ±inf).
//! - **Kind**: a CSV column is numeric when every present value parses as a number; a Parquet
//!   column when its type is an integer or float. `-0.0` is read as `0.0`.
//! - A numeric Parquet column read as categorical (`--categorical`) gets categories written as
//!   Rust prints the number (`3`, `2.5`), the same text a CSV would usually hold.
//! - **Memory**: Parquet is read one column at a time, batch by batch, keeping only that
//!   column's values (8 bytes a numeric value); a CSV file is read whole for the columns asked.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{Kind, OfflineError};
use crate::profile::MISSING;

/// Rows per Parquet batch.
const BATCH_ROWS: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

/// A file's columns and their detected kinds.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub format: Format,
    pub columns: Vec<(String, Kind)>,
    pub rows: u64,
}

impl Source {
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|(n, _)| n == name)
    }
}

#[derive(Debug, Clone)]
pub enum Values {
    Numeric(Vec<f64>),
    Categorical(BTreeMap<String, u64>),
}

#[derive(Debug, Clone)]
pub struct ColumnValues {
    pub values: Values,
    pub missing: u64,
}

impl ColumnValues {
    fn new(kind: Kind) -> Self {
        let values = match kind {
            Kind::Numeric => Values::Numeric(Vec::new()),
            Kind::Categorical => Values::Categorical(BTreeMap::new()),
        };
        ColumnValues { values, missing: 0 }
    }

    fn push_text(&mut self, field: &str) {
        let f = field.trim();
        if f.is_empty() || MISSING.contains(&f) {
            self.missing += 1;
            return;
        }
        match &mut self.values {
            Values::Numeric(v) => match f.parse::<f64>() {
                Ok(x) if x.is_finite() => v.push(x + 0.0),
                _ => self.missing += 1,
            },
            Values::Categorical(c) => *c.entry(f.to_string()).or_insert(0) += 1,
        }
    }

    fn push_number(&mut self, x: Option<f64>) {
        match (x, &mut self.values) {
            (Some(x), Values::Numeric(v)) if x.is_finite() => v.push(x + 0.0),
            (Some(x), Values::Categorical(c)) if !x.is_nan() => {
                *c.entry(format!("{x}")).or_insert(0) += 1
            }
            _ => self.missing += 1,
        }
    }

    fn push_category(&mut self, s: Option<&str>) {
        match (s, &mut self.values) {
            (Some(s), Values::Categorical(c)) => *c.entry(s.to_string()).or_insert(0) += 1,
            (Some(s), Values::Numeric(_)) => self.push_text(s),
            (None, _) => self.missing += 1,
        }
    }
}

fn open(path: &Path) -> Result<File, OfflineError> {
    File::open(path).map_err(|e| OfflineError::Open {
        path: path.to_path_buf(),
        source: e,
    })
}

fn is_parquet(path: &Path) -> Result<bool, OfflineError> {
    let mut magic = [0u8; 4];
    let mut f = open(path)?;
    let n = f.read(&mut magic).map_err(|e| OfflineError::Open {
        path: path.to_path_buf(),
        source: e,
    })?;
    let named = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"));
    let magic_ok = n == 4 && &magic == b"PAR1";
    if named && !magic_ok {
        return Err(OfflineError::Parquet {
            path: path.to_path_buf(),
            message: "not a Parquet file (no PAR1 magic at the start)".into(),
        });
    }
    Ok(magic_ok)
}

/// The file's format, columns with their kinds, and row count. For CSV this reads the file
/// once (a column is numeric only if every present value is a number).
pub fn inspect(path: &Path) -> Result<Source, OfflineError> {
    if is_parquet(path)? {
        inspect_parquet(path)
    } else {
        inspect_csv(path)
    }
}

fn parquet_error(path: &Path, e: impl std::fmt::Display) -> OfflineError {
    OfflineError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn numeric_type(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Float64
            | DataType::Float32
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

fn text_type(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean
    )
}

fn inspect_parquet(path: &Path) -> Result<Source, OfflineError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(open(path)?)
        .map_err(|e| parquet_error(path, e))?;
    let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
    let mut columns = Vec::new();
    for field in builder.schema().fields() {
        let t = field.data_type();
        let kind = if numeric_type(t) {
            Kind::Numeric
        } else if text_type(t) {
            Kind::Categorical
        } else {
            return Err(OfflineError::UnsupportedType {
                path: path.to_path_buf(),
                column: field.name().clone(),
                data_type: t.to_string(),
            });
        };
        columns.push((field.name().clone(), kind));
    }
    Ok(Source {
        path: path.to_path_buf(),
        format: Format::Parquet,
        columns,
        rows,
    })
}

fn csv_reader(path: &Path) -> Result<csv::Reader<File>, OfflineError> {
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(open(path)?))
}

fn csv_error(path: &Path, e: &csv::Error) -> OfflineError {
    OfflineError::Csv {
        path: path.to_path_buf(),
        line: e.position().map_or(0, |p| p.line()),
        message: match e.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => format!("{len} fields where the header has {expected_len}"),
            _ => e.to_string(),
        },
    }
}

fn inspect_csv(path: &Path) -> Result<Source, OfflineError> {
    let mut rdr = csv_reader(path)?;
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| csv_error(path, &e))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if header.is_empty() || header.iter().all(String::is_empty) {
        return Err(OfflineError::Csv {
            path: path.to_path_buf(),
            line: 1,
            message: "no header row naming the columns".into(),
        });
    }
    let mut numeric = vec![true; header.len()];
    let mut rows = 0u64;
    let mut record = csv::StringRecord::new();
    while rdr
        .read_record(&mut record)
        .map_err(|e| csv_error(path, &e))?
    {
        rows += 1;
        for (i, f) in record.iter().enumerate() {
            if numeric[i] {
                let f = f.trim();
                if !(f.is_empty() || MISSING.contains(&f)) && f.parse::<f64>().is_err() {
                    numeric[i] = false;
                }
            }
        }
    }
    Ok(Source {
        path: path.to_path_buf(),
        format: Format::Csv,
        columns: header
            .into_iter()
            .zip(numeric)
            .map(|(h, n)| (h, if n { Kind::Numeric } else { Kind::Categorical }))
            .collect(),
        rows,
    })
}

/// The values of the columns at these indices of `source`, each read as the given kind.
pub fn load(source: &Source, wanted: &[(usize, Kind)]) -> Result<Vec<ColumnValues>, OfflineError> {
    match source.format {
        Format::Csv => load_csv(source, wanted),
        Format::Parquet => load_parquet(source, wanted),
    }
}

fn load_csv(source: &Source, wanted: &[(usize, Kind)]) -> Result<Vec<ColumnValues>, OfflineError> {
    let path = &source.path;
    let mut out: Vec<ColumnValues> = wanted.iter().map(|(_, k)| ColumnValues::new(*k)).collect();
    if let Ok(rows) = usize::try_from(source.rows) {
        for c in &mut out {
            if let Values::Numeric(v) = &mut c.values {
                v.reserve(rows);
            }
        }
    }
    let mut rdr = csv_reader(path)?;
    let mut record = csv::StringRecord::new();
    while rdr
        .read_record(&mut record)
        .map_err(|e| csv_error(path, &e))?
    {
        for (col, (i, _)) in out.iter_mut().zip(wanted) {
            col.push_text(record.get(*i).unwrap_or(""));
        }
    }
    Ok(out)
}

fn load_parquet(
    source: &Source,
    wanted: &[(usize, Kind)],
) -> Result<Vec<ColumnValues>, OfflineError> {
    let path = &source.path;
    let builder = ParquetRecordBatchReaderBuilder::try_new(open(path)?)
        .map_err(|e| parquet_error(path, e))?;
    let mask = ProjectionMask::roots(
        builder.parquet_schema(),
        wanted.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
    );
    // The projected batch holds the wanted columns in file order.
    let mut order: Vec<usize> = (0..wanted.len()).collect();
    order.sort_by_key(|k| wanted[*k].0);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| parquet_error(path, e))?;
    let mut out: Vec<ColumnValues> = wanted.iter().map(|(_, k)| ColumnValues::new(*k)).collect();
    if let Ok(rows) = usize::try_from(source.rows) {
        for c in &mut out {
            if let Values::Numeric(v) = &mut c.values {
                v.reserve(rows);
            }
        }
    }
    for batch in reader {
        let batch = batch.map_err(|e| parquet_error(path, e))?;
        for (pos, k) in order.iter().enumerate() {
            let array = batch.column(pos);
            push_array(&mut out[*k], array).map_err(|t| OfflineError::UnsupportedType {
                path: path.to_path_buf(),
                column: source.columns[wanted[*k].0].0.clone(),
                data_type: t,
            })?;
        }
    }
    Ok(out)
}

fn push_primitive<T>(col: &mut ColumnValues, array: &ArrayRef)
where
    T: arrow_array::ArrowPrimitiveType,
    T::Native: num_like::AsF64,
{
    use num_like::AsF64;
    let a = array.as_primitive::<T>();
    if a.null_count() == 0
        && let Values::Numeric(v) = &mut col.values
    {
        for x in a.values().iter() {
            let x = x.as_f64();
            if x.is_finite() {
                v.push(x + 0.0);
            } else {
                col.missing += 1;
            }
        }
        return;
    }
    for x in a.iter() {
        col.push_number(x.map(|x| x.as_f64()));
    }
}

fn push_array(col: &mut ColumnValues, array: &ArrayRef) -> Result<(), String> {
    match array.data_type() {
        DataType::Float64 => push_primitive::<Float64Type>(col, array),
        DataType::Float32 => push_primitive::<Float32Type>(col, array),
        DataType::Int8 => push_primitive::<Int8Type>(col, array),
        DataType::Int16 => push_primitive::<Int16Type>(col, array),
        DataType::Int32 => push_primitive::<Int32Type>(col, array),
        DataType::Int64 => push_primitive::<Int64Type>(col, array),
        DataType::UInt8 => push_primitive::<UInt8Type>(col, array),
        DataType::UInt16 => push_primitive::<UInt16Type>(col, array),
        DataType::UInt32 => push_primitive::<UInt32Type>(col, array),
        DataType::UInt64 => push_primitive::<UInt64Type>(col, array),
        DataType::Utf8 => array
            .as_string::<i32>()
            .iter()
            .for_each(|s| col.push_category(s)),
        DataType::LargeUtf8 => array
            .as_string::<i64>()
            .iter()
            .for_each(|s| col.push_category(s)),
        DataType::Utf8View => array
            .as_string_view()
            .iter()
            .for_each(|s| col.push_category(s)),
        DataType::Boolean => array
            .as_boolean()
            .iter()
            .for_each(|b| col.push_category(b.map(|b| if b { "true" } else { "false" }))),
        other => return Err(other.to_string()),
    }
    Ok(())
}

/// Conversion of Arrow's native numbers to `f64` (integers above 2^53 round).
mod num_like {
    pub trait AsF64: Copy {
        fn as_f64(self) -> f64;
    }
    macro_rules! as_f64 {
        ($($t:ty),*) => {$(impl AsF64 for $t {
            #[allow(clippy::cast_lossless)]
            fn as_f64(self) -> f64 { self as f64 }
        })*};
    }
    as_f64!(f64, f32, i8, i16, i32, i64, u8, u16, u32, u64);
}
