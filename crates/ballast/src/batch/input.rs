//! The input side of `ballast batch`: `--input` patterns expanded to files, each file's
//! columns and parts (a Parquet row group, or a chunk of `--csv-chunk-rows` CSV rows), and one
//! part read back as Arrow record batches of the columns the model needs.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use anyhow::Context as _;
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType as ArrowType, Field, Schema, SchemaRef};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use serde::{Deserialize, Serialize};

use super::Usage;

/// Rows at the top of a CSV file read to tell its numeric columns from its text ones. A text
/// value further down in a numeric column is an error naming its row.
const CSV_SAMPLE_ROWS: u64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Parquet,
    Csv,
}

/// One input file: what identifies it for a resume, its columns and its parts.
pub struct InputFile {
    /// The path as the pattern matched it: the output's `input_file` value.
    pub name: String,
    pub path: PathBuf,
    pub format: Format,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: u64,
    /// Its columns. CSV: `Float64` where the sampled values are numbers or empty, else `Utf8`.
    pub schema: SchemaRef,
    pub parts: Vec<Part>,
    parquet: Option<ArrowReaderMetadata>,
}

/// A unit of work and of checkpointing: one row group, or one chunk of CSV rows.
#[derive(Debug, Clone)]
pub struct Part {
    /// The row group's index, or the chunk's.
    pub index: usize,
    /// Index of its first row within the file.
    pub first_row: u64,
    pub rows: usize,
    /// CSV: byte offset and line of its first record.
    csv_start: Option<(u64, u64)>,
}

/// The files the patterns match, each pattern's in path order, each file once. A pattern
/// matching nothing is a usage error.
pub fn expand(patterns: &[String]) -> anyhow::Result<Vec<(String, PathBuf, Format)>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for pattern in patterns {
        let paths = glob::glob(pattern).map_err(|e| Usage(format!("--input {pattern:?}: {e}")))?;
        let mut matched = Vec::new();
        for entry in paths {
            let path = entry.with_context(|| format!("--input {pattern:?}"))?;
            if path.is_file() {
                matched.push(path);
            }
        }
        if matched.is_empty() {
            return Err(Usage(format!("--input {pattern:?} matches no files")).into());
        }
        matched.sort();
        for path in matched {
            if !seen.insert(path.clone()) {
                continue;
            }
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            let format = match ext.as_deref() {
                Some("parquet" | "pq") => Format::Parquet,
                Some("csv") => Format::Csv,
                _ => {
                    return Err(Usage(format!(
                        "{}: not a .parquet or .csv file (--input {pattern:?})",
                        path.display()
                    ))
                    .into());
                }
            };
            out.push((path.display().to_string(), path, format));
        }
    }
    Ok(out)
}

/// Reads a file's columns and cuts it into parts (for CSV, one pass over the file).
pub fn scan(
    name: String,
    path: PathBuf,
    format: Format,
    csv_chunk_rows: usize,
) -> anyhow::Result<InputFile> {
    let meta = std::fs::metadata(&path).with_context(|| format!("cannot read {name}"))?;
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut file = InputFile {
        name,
        path,
        format,
        size: meta.len(),
        mtime_ns,
        schema: Arc::new(Schema::empty()),
        parts: Vec::new(),
        parquet: None,
    };
    match format {
        Format::Parquet => scan_parquet(&mut file)?,
        Format::Csv => scan_csv(&mut file, csv_chunk_rows)?,
    }
    Ok(file)
}

fn scan_parquet(file: &mut InputFile) -> anyhow::Result<()> {
    let f = File::open(&file.path).with_context(|| format!("cannot open {}", file.name))?;
    let metadata = ArrowReaderMetadata::load(&f, Default::default())
        .with_context(|| format!("{}: not a readable Parquet file", file.name))?;
    let mut first_row = 0u64;
    for (index, rg) in metadata.metadata().row_groups().iter().enumerate() {
        let rows = usize::try_from(rg.num_rows()).unwrap_or(0);
        if rows > 0 {
            file.parts.push(Part {
                index,
                first_row,
                rows,
                csv_start: None,
            });
        }
        first_row += rows as u64;
    }
    file.schema = metadata.schema().clone();
    file.parquet = Some(metadata);
    Ok(())
}

fn is_number(field: &[u8]) -> bool {
    let s = std::str::from_utf8(field).unwrap_or("\u{0}").trim();
    s.is_empty() || s.parse::<f64>().is_ok()
}

fn csv_reader(file: File, headers: bool) -> csv::Reader<BufReader<File>> {
    csv::ReaderBuilder::new()
        .has_headers(headers)
        .from_reader(BufReader::with_capacity(1 << 20, file))
}

fn scan_csv(file: &mut InputFile, chunk_rows: usize) -> anyhow::Result<()> {
    let f = File::open(&file.path).with_context(|| format!("cannot open {}", file.name))?;
    let mut rdr = csv_reader(f, true);
    let names: Vec<String> = rdr
        .headers()
        .with_context(|| format!("{}: cannot read the header row", file.name))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if names.iter().all(String::is_empty) {
        return Err(Usage(format!(
            "{}: no header row (the first line must name the columns)",
            file.name
        ))
        .into());
    }
    let mut numeric = vec![true; names.len()];
    let mut record = csv::ByteRecord::new();
    let mut row = 0u64;
    loop {
        let pos = rdr.position().clone();
        if !rdr
            .read_byte_record(&mut record)
            .with_context(|| format!("{}: row {row}", file.name))?
        {
            break;
        }
        if row.is_multiple_of(chunk_rows as u64) {
            file.parts.push(Part {
                index: file.parts.len(),
                first_row: row,
                rows: 0,
                csv_start: Some((pos.byte(), pos.line())),
            });
        }
        if let Some(part) = file.parts.last_mut() {
            part.rows += 1;
        }
        if row < CSV_SAMPLE_ROWS {
            for (j, field) in record.iter().enumerate() {
                if let Some(n) = numeric.get_mut(j) {
                    *n = *n && is_number(field);
                }
            }
        }
        row += 1;
    }
    let fields: Vec<Field> = names
        .iter()
        .zip(&numeric)
        .map(|(n, &num)| {
            let ty = if num {
                ArrowType::Float64
            } else {
                ArrowType::Utf8
            };
            Field::new(n, ty, true)
        })
        .collect();
    file.schema = Arc::new(Schema::new(fields));
    Ok(())
}

impl InputFile {
    /// Reads `part`, keeping only the named columns (which must be in the schema).
    pub fn read(&self, part: &Part, columns: &[String]) -> anyhow::Result<Vec<RecordBatch>> {
        let indices: Vec<usize> = columns
            .iter()
            .filter_map(|c| self.schema.index_of(c).ok())
            .collect();
        match (&self.parquet, part.csv_start) {
            (Some(metadata), _) => self.read_parquet(metadata, part, indices),
            (None, Some(start)) => self.read_csv(part, start, &indices).map(|b| vec![b]),
            (None, None) => anyhow::bail!("{}: part {} has no position", self.name, part.index),
        }
    }

    fn read_parquet(
        &self,
        metadata: &ArrowReaderMetadata,
        part: &Part,
        indices: Vec<usize>,
    ) -> anyhow::Result<Vec<RecordBatch>> {
        let f = File::open(&self.path).with_context(|| format!("cannot open {}", self.name))?;
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(f, metadata.clone());
        let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
        let reader = builder
            .with_row_groups(vec![part.index])
            .with_projection(mask)
            .with_batch_size(part.rows.max(1))
            .build()
            .with_context(|| format!("{}: row group {}", self.name, part.index))?;
        reader
            .map(|b| b.with_context(|| format!("{}: row group {}", self.name, part.index)))
            .collect()
    }

    fn read_csv(
        &self,
        part: &Part,
        (offset, line): (u64, u64),
        indices: &[usize],
    ) -> anyhow::Result<RecordBatch> {
        let mut f = File::open(&self.path).with_context(|| format!("cannot open {}", self.name))?;
        f.seek(SeekFrom::Start(offset))
            .with_context(|| format!("{}: cannot seek to byte {offset}", self.name))?;
        let mut rdr = csv_reader(f, false);
        let mut numbers: Vec<Vec<Option<f64>>> = Vec::new();
        let mut texts: Vec<Vec<String>> = Vec::new();
        let numeric: Vec<bool> = indices
            .iter()
            .map(|&i| *self.schema.field(i).data_type() == ArrowType::Float64)
            .collect();
        for &is_num in &numeric {
            if is_num {
                numbers.push(Vec::with_capacity(part.rows));
            } else {
                texts.push(Vec::with_capacity(part.rows));
            }
        }
        let mut record = csv::ByteRecord::new();
        for k in 0..part.rows {
            let row = part.first_row + k as u64;
            if !rdr
                .read_byte_record(&mut record)
                .with_context(|| format!("{}: row {row}", self.name))?
            {
                anyhow::bail!(
                    "{}: ended at row {row}, but held more rows when the run began (was it changed?)",
                    self.name
                );
            }
            let (mut ni, mut ti) = (0, 0);
            for (&col, &is_num) in indices.iter().zip(&numeric) {
                let field = record.get(col).unwrap_or_default();
                if is_num {
                    let s = std::str::from_utf8(field).unwrap_or("\u{0}").trim();
                    let value = if s.is_empty() {
                        None
                    } else {
                        Some(s.parse::<f64>().map_err(|_| {
                            anyhow::anyhow!(
                                "{}: row {row} (line {}), column '{}': {s:?} is not a number (the column's first rows were)",
                                self.name,
                                line + k as u64,
                                self.schema.field(col).name()
                            )
                        })?)
                    };
                    numbers[ni].push(value);
                    ni += 1;
                } else {
                    texts[ti].push(String::from_utf8_lossy(field).into_owned());
                    ti += 1;
                }
            }
        }
        let (mut numbers, mut texts) = (numbers.into_iter(), texts.into_iter());
        let mut fields = Vec::with_capacity(indices.len());
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(indices.len());
        for (&col, &is_num) in indices.iter().zip(&numeric) {
            fields.push(self.schema.field(col).clone());
            if is_num {
                arrays.push(Arc::new(Float64Array::from(
                    numbers.next().unwrap_or_default(),
                )));
            } else {
                arrays.push(Arc::new(StringArray::from(
                    texts.next().unwrap_or_default(),
                )));
            }
        }
        let schema = Arc::new(Schema::new(fields));
        let batch = if arrays.is_empty() {
            RecordBatch::try_new_with_options(
                schema,
                arrays,
                &arrow_array::RecordBatchOptions::new().with_row_count(Some(part.rows)),
            )
        } else {
            RecordBatch::try_new(schema, arrays)
        };
        batch.with_context(|| format!("{}: part {}", self.name, part.index))
    }
}
