//! Parquet segments: the records of one WAL file for one model, version and hour, as one
//! file that pyarrow, duckdb and polars read directly.
//!
//! Keys are `<model>/<version>/<YYYY-MM-DD>/<HH>/<wal>.parquet` (UTC), and each file is
//! self-contained: it carries its `model` and `version` columns, so a file read alone, copied
//! elsewhere, or globbed with others (`read_parquet('segments/**/*.parquet')` in duckdb,
//! `pyarrow.dataset.dataset(dir)`, `polars.scan_parquet`) says what it is. Plain directory
//! names rather than Hive's `model=fraud`: readers that infer Hive partitions would otherwise
//! add a second `model` column that clashes with the file's own.
//!
//! Columns: `id`, `trace_id`, `time` (timestamp, µs, UTC), `tenant`, `model`, `version`,
//! `requested`, `arm`, `protocol`, `priority`, `status` (`ok` | `error` | `refused`), `code`,
//! `queue_us`, `engine_us`, `batch_rows`, `total_us`, `input_schema`, `parameters` (JSON),
//! then `inputs` and `outputs`: structs with one field per tensor name holding its values,
//! flattened row-major as the Open Inference Protocol sends them (a list of the tensor's own
//! type: BOOL → boolean, UINT8/INT32/INT64 → the same integers, FP16 and FP32 → float32, FP64
//! → float64, BYTES → UTF-8 strings, invalid UTF-8 replaced), and `input_shapes` /
//! `output_shapes` with each tensor's shape. A tensor missing from a record (a request that
//! failed before its body was read) is null. Should one name arrive with two datatypes in
//! one segment, the second gets its own field, `name#DTYPE`.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder, ListBuilder,
    StringBuilder, UInt8Builder,
};
use arrow_array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType as ArrowType, Field, Fields, Schema, TimeUnit};
use ballast_core::{DataType, Tensor, TensorData};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::CaptureError;
use crate::record::Record;

/// The segment key's directory for a record: model, version, UTC date and hour.
pub fn partition(model: &str, version: &str, time_us: i64) -> String {
    let secs = u64::try_from(time_us.div_euclid(1_000_000)).unwrap_or(0);
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    // "2026-12-06T04:21:03Z"
    let stamp = humantime::format_rfc3339_seconds(t).to_string();
    let (date, hour) = (&stamp[..10], &stamp[11..13]);
    format!("{}/{}/{date}/{hour}", path_part(model), path_part(version))
}

/// The start of the hour a key (or partition) names: its third and fourth parts.
pub fn hour_of(key: &str) -> Option<std::time::SystemTime> {
    let mut parts = key.split('/').skip(2);
    let (date, hour) = (parts.next()?, parts.next()?);
    if date.len() != 10 || hour.len() != 2 {
        return None;
    }
    humantime::parse_rfc3339(&format!("{date}T{hour}:00:00Z")).ok()
}

/// Percent-encodes everything but `[A-Za-z0-9._-]`, so any model name is one safe path part.
pub fn path_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_')
            || (b == b'.' && s != "." && s != "..")
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The file name of the segment made from WAL file `seq`.
pub fn file_name(seq: u64) -> String {
    format!("{seq:020}.parquet")
}

/// The fields of a tensor struct: each name once, in order of first appearance; a name seen
/// with a second datatype gets `name#DTYPE`.
fn tensor_fields<'a>(per_record: impl Iterator<Item = &'a [Tensor]>) -> Vec<(String, DataType)> {
    let mut fields: Vec<(String, DataType)> = Vec::new();
    for tensors in per_record {
        for t in tensors {
            let key = field_key(&fields, t);
            if !fields.iter().any(|(k, _)| *k == key) {
                fields.push((key, t.dtype()));
            }
        }
    }
    fields
}

fn field_key(fields: &[(String, DataType)], t: &Tensor) -> String {
    match fields.iter().find(|(k, _)| *k == t.name) {
        Some((_, d)) if *d != t.dtype() => format!("{}#{}", t.name, t.dtype().as_str()),
        _ => t.name.clone(),
    }
}

/// One list column: each record's tensor (or null).
fn values_column(dtype: DataType, cells: &[Option<&TensorData>]) -> ArrayRef {
    macro_rules! list {
        ($builder:expr, |$b:ident, $data:ident| $push:expr) => {{
            let mut list = ListBuilder::new($builder);
            for cell in cells {
                match cell {
                    Some($data) => {
                        let $b = list.values();
                        $push;
                        list.append(true);
                    }
                    None => list.append(false),
                }
            }
            Arc::new(list.finish()) as ArrayRef
        }};
    }
    match dtype {
        DataType::Bool => list!(
            BooleanBuilder::new(),
            |b, d| if let TensorData::Bool(v) = d {
                b.append_slice(v)
            }
        ),
        DataType::U8 => list!(UInt8Builder::new(), |b, d| if let TensorData::U8(v) = d {
            b.append_slice(v)
        }),
        DataType::I32 => list!(Int32Builder::new(), |b, d| if let TensorData::I32(v) = d {
            b.append_slice(v)
        }),
        DataType::I64 => list!(Int64Builder::new(), |b, d| if let TensorData::I64(v) = d {
            b.append_slice(v)
        }),
        DataType::F16 => list!(
            Float32Builder::new(),
            |b, d| if let TensorData::F16(v) = d {
                v.iter().for_each(|x| b.append_value(x.to_f32()))
            }
        ),
        DataType::F32 => list!(
            Float32Builder::new(),
            |b, d| if let TensorData::F32(v) = d {
                b.append_slice(v)
            }
        ),
        DataType::F64 => list!(
            Float64Builder::new(),
            |b, d| if let TensorData::F64(v) = d {
                b.append_slice(v)
            }
        ),
        DataType::Bytes => list!(
            StringBuilder::new(),
            |b, d| if let TensorData::Bytes(v) = d {
                v.iter()
                    .for_each(|s| b.append_value(String::from_utf8_lossy(s)))
            }
        ),
    }
}

fn shape_column(cells: &[Option<&Tensor>]) -> ArrayRef {
    let mut list = ListBuilder::new(Int64Builder::new());
    for cell in cells {
        match cell {
            Some(t) => {
                t.shape
                    .iter()
                    .for_each(|d| list.values().append_value(*d as i64));
                list.append(true);
            }
            None => list.append(false),
        }
    }
    Arc::new(list.finish())
}

/// The `inputs`/`outputs` struct and its `*_shapes` struct.
fn tensor_columns(
    records: &[Record],
    pick: impl Fn(&Record) -> &[Tensor],
) -> Result<(StructArray, StructArray), CaptureError> {
    let fields = tensor_fields(records.iter().map(&pick));
    let mut values: Vec<(Arc<Field>, ArrayRef)> = Vec::with_capacity(fields.len());
    let mut shapes: Vec<(Arc<Field>, ArrayRef)> = Vec::with_capacity(fields.len());
    for (key, dtype) in &fields {
        let cells: Vec<Option<&Tensor>> = records
            .iter()
            .map(|r| {
                let ts = pick(r);
                ts.iter().find(|t| {
                    t.dtype() == *dtype && (t.name == *key || field_key(&fields, t) == *key)
                })
            })
            .collect();
        let data: Vec<Option<&TensorData>> = cells.iter().map(|c| c.map(|t| &t.data)).collect();
        let col = values_column(*dtype, &data);
        values.push((
            Arc::new(Field::new(key, col.data_type().clone(), true)),
            col,
        ));
        let shape = shape_column(&cells);
        shapes.push((
            Arc::new(Field::new(key, shape.data_type().clone(), true)),
            shape,
        ));
    }
    Ok((
        struct_of(values, records.len()),
        struct_of(shapes, records.len()),
    ))
}

fn struct_of(columns: Vec<(Arc<Field>, ArrayRef)>, rows: usize) -> StructArray {
    if columns.is_empty() {
        return StructArray::new_empty_fields(rows, None);
    }
    StructArray::from(columns)
}

fn strings<'a>(records: &'a [Record], f: impl Fn(&'a Record) -> Option<&'a str>) -> ArrayRef {
    Arc::new(records.iter().map(f).collect::<StringArray>())
}

fn ints(records: &[Record], f: impl Fn(&Record) -> Option<i64>) -> ArrayRef {
    Arc::new(records.iter().map(f).collect::<Int64Array>())
}

/// The records as one Arrow batch (the segment's only row group for typical sizes).
pub fn to_batch(records: &[Record]) -> Result<RecordBatch, CaptureError> {
    let (inputs, input_shapes) = tensor_columns(records, |r| &r.inputs)?;
    let (outputs, output_shapes) = tensor_columns(records, |r| &r.outputs)?;
    let time: ArrayRef = Arc::new(
        records
            .iter()
            .map(|r| Some(r.time_us))
            .collect::<TimestampMicrosecondArray>()
            .with_timezone("UTC"),
    );
    let columns: Vec<(&str, ArrayRef, bool)> = vec![
        ("id", strings(records, |r| Some(&r.id)), false),
        (
            "trace_id",
            strings(records, |r| r.trace_id.as_deref()),
            true,
        ),
        ("time", time, false),
        ("tenant", strings(records, |r| Some(&r.tenant)), false),
        ("model", strings(records, |r| Some(&r.model)), false),
        ("version", strings(records, |r| Some(&r.version)), false),
        (
            "requested",
            strings(records, |r| r.requested.as_deref()),
            true,
        ),
        ("arm", strings(records, |r| r.arm.as_deref()), true),
        ("protocol", strings(records, |r| Some(&r.protocol)), false),
        ("priority", strings(records, |r| Some(&r.priority)), false),
        (
            "status",
            strings(records, |r| Some(r.status.as_str())),
            false,
        ),
        ("code", strings(records, |r| r.code.as_deref()), true),
        ("queue_us", ints(records, |r| r.queue_us), true),
        ("engine_us", ints(records, |r| r.engine_us), true),
        ("batch_rows", ints(records, |r| r.batch_rows), true),
        ("total_us", ints(records, |r| Some(r.total_us)), false),
        (
            "input_schema",
            strings(records, |r| Some(&r.input_schema)),
            false,
        ),
        (
            "parameters",
            strings(records, |r| r.parameters.as_deref()),
            true,
        ),
        ("inputs", Arc::new(inputs) as ArrayRef, false),
        ("outputs", Arc::new(outputs) as ArrayRef, false),
        ("input_shapes", Arc::new(input_shapes) as ArrayRef, false),
        ("output_shapes", Arc::new(output_shapes) as ArrayRef, false),
    ];
    let fields: Fields = columns
        .iter()
        .map(|(name, col, nullable)| Field::new(*name, col.data_type().clone(), *nullable))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    RecordBatch::try_new(schema, columns.into_iter().map(|(_, c, _)| c).collect()).map_err(|e| {
        CaptureError::Parquet {
            what: "building a batch".into(),
            message: e.to_string(),
        }
    })
}

/// Rows per row group: small enough that `time` and `id` statistics prune, large enough to
/// compress.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// The records as Parquet file bytes (zstd-compressed, statistics on every column).
pub fn encode(records: &[Record]) -> Result<Bytes, CaptureError> {
    let batch = to_batch(records)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // `logs query --id`: a request among millions without decoding their row groups.
        .set_column_bloom_filter_enabled("id".into(), true)
        .set_created_by(format!("ballast {}", env!("CARGO_PKG_VERSION")))
        .build();
    let perr = |e: parquet::errors::ParquetError| CaptureError::Parquet {
        what: "writing".into(),
        message: e.to_string(),
    };
    let mut out = Vec::with_capacity(4096 + records.len() * 64);
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).map_err(perr)?;
    writer.write(&batch).map_err(perr)?;
    writer.close().map_err(perr)?;
    Ok(Bytes::from(out))
}

/// Unit of the timestamp column (for readers).
pub const TIME_UNIT: TimeUnit = TimeUnit::Microsecond;

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, CaptureError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| CaptureError::Corrupt(format!("segment has no usable column {name:?}")))
}

fn opt_str(a: &StringArray, i: usize) -> Option<String> {
    a.is_valid(i).then(|| a.value(i).to_string())
}

fn opt_i64(a: &Int64Array, i: usize) -> Option<i64> {
    a.is_valid(i).then(|| a.value(i))
}

/// The tensors of row `i` from a values struct and its shapes struct.
fn tensors_at(
    values: &StructArray,
    shapes: &StructArray,
    i: usize,
) -> Result<Vec<Tensor>, CaptureError> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type, UInt8Type};
    let mut out = Vec::new();
    let names = values
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect::<Vec<_>>();
    for (k, name) in names.iter().enumerate() {
        let col = values.column(k);
        if col.is_null(i) {
            continue;
        }
        let list = col.as_list::<i32>();
        let cell = list.value(i);
        let data = match cell.data_type() {
            ArrowType::Boolean => TensorData::Bool(
                cell.as_boolean()
                    .iter()
                    .map(|v| v.unwrap_or(false))
                    .collect(),
            ),
            ArrowType::UInt8 => TensorData::U8(cell.as_primitive::<UInt8Type>().values().to_vec()),
            ArrowType::Int32 => TensorData::I32(cell.as_primitive::<Int32Type>().values().to_vec()),
            ArrowType::Int64 => TensorData::I64(cell.as_primitive::<Int64Type>().values().to_vec()),
            ArrowType::Float32 => {
                TensorData::F32(cell.as_primitive::<Float32Type>().values().to_vec())
            }
            ArrowType::Float64 => {
                TensorData::F64(cell.as_primitive::<Float64Type>().values().to_vec())
            }
            ArrowType::Utf8 => TensorData::Bytes(
                cell.as_string::<i32>()
                    .iter()
                    .map(|v| v.unwrap_or_default().as_bytes().to_vec())
                    .collect(),
            ),
            other => {
                return Err(CaptureError::Corrupt(format!(
                    "tensor column {name:?} has type {other}"
                )));
            }
        };
        let shape = match shapes.column_by_name(name) {
            Some(s) if s.is_valid(i) => s
                .as_list::<i32>()
                .value(i)
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .map(|&d| usize::try_from(d).unwrap_or(0))
                .collect(),
            _ => vec![data.len()],
        };
        // A field renamed for a datatype clash (`name#FP64`) goes back to its own name.
        let tensor_name = name.split_once('#').map_or(name.as_str(), |(n, _)| n);
        let t =
            Tensor::new(tensor_name, shape, data).map_err(|e| CaptureError::Corrupt(e.message))?;
        out.push(t);
    }
    Ok(out)
}

/// The records of a batch read back from a segment (the inverse of [`to_batch`]; FP16
/// tensors come back as FP32).
pub fn from_batch(batch: &RecordBatch) -> Result<Vec<Record>, CaptureError> {
    use crate::record::Status;
    let s = |name| column::<StringArray>(batch, name);
    let n = |name| column::<Int64Array>(batch, name);
    let (id, trace, tenant, model, version) = (
        s("id")?,
        s("trace_id")?,
        s("tenant")?,
        s("model")?,
        s("version")?,
    );
    let (requested, arm, protocol, priority) =
        (s("requested")?, s("arm")?, s("protocol")?, s("priority")?);
    let (status, code, schema, params) = (
        s("status")?,
        s("code")?,
        s("input_schema")?,
        s("parameters")?,
    );
    let (queue, engine, rows, total) = (
        n("queue_us")?,
        n("engine_us")?,
        n("batch_rows")?,
        n("total_us")?,
    );
    let time = column::<TimestampMicrosecondArray>(batch, "time")?;
    let inputs = column::<StructArray>(batch, "inputs")?;
    let outputs = column::<StructArray>(batch, "outputs")?;
    let input_shapes = column::<StructArray>(batch, "input_shapes")?;
    let output_shapes = column::<StructArray>(batch, "output_shapes")?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let st = match status.value(i) {
            "ok" => Status::Ok,
            "error" => Status::Error,
            "refused" => Status::Refused,
            other => return Err(CaptureError::Corrupt(format!("unknown status {other:?}"))),
        };
        out.push(Record {
            id_generated: false,
            id: id.value(i).to_string(),
            trace_id: opt_str(trace, i),
            time_us: time.value(i),
            tenant: tenant.value(i).to_string(),
            model: model.value(i).to_string(),
            version: version.value(i).to_string(),
            requested: opt_str(requested, i),
            arm: opt_str(arm, i),
            protocol: protocol.value(i).to_string(),
            priority: priority.value(i).to_string(),
            status: st,
            code: opt_str(code, i),
            queue_us: opt_i64(queue, i),
            engine_us: opt_i64(engine, i),
            batch_rows: opt_i64(rows, i),
            total_us: total.value(i),
            input_schema: schema.value(i).to_string(),
            parameters: opt_str(params, i),
            inputs: tensors_at(inputs, input_shapes, i)?,
            outputs: tensors_at(outputs, output_shapes, i)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::record::tests::sample;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn partitions_are_model_version_date_and_hour() {
        // 2025-12-06T05:46:40Z
        let t = 1_765_000_000_000_000;
        assert_eq!(partition("fraud", "2", t), "fraud/2/2025-12-06/05");
        assert_eq!(
            partition("a b/..", "..", t),
            "a%20b%2F../%2E%2E/2025-12-06/05"
        );
    }

    #[test]
    fn a_segment_reads_back_with_typed_tensor_columns() {
        let mut failed = sample("b");
        failed.inputs.clear();
        failed.outputs.clear();
        failed.status = crate::record::Status::Refused;
        failed.code = Some("resource_exhausted".into());
        let bytes = encode(&[sample("a"), failed]).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let batch = &batches[0];
        assert_eq!(batch.num_rows(), 2);
        let inputs = batch
            .column_by_name("inputs")
            .unwrap()
            .as_any()
            .downcast_ref::<StructArray>()
            .unwrap();
        let features = inputs.column_by_name("features").unwrap();
        assert_eq!(
            features.data_type(),
            &ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Float32, true)))
        );
        assert!(features.is_valid(0) && features.is_null(1));
        let note = inputs.column_by_name("note").unwrap();
        assert!(
            matches!(note.data_type(), ArrowType::List(f) if f.data_type() == &ArrowType::Utf8)
        );
    }

    #[test]
    fn records_read_back_from_a_segment_equal_what_was_written() {
        let mut failed = sample("b");
        failed.inputs.clear();
        failed.outputs.clear();
        failed.trace_id = None;
        failed.queue_us = None;
        let written = vec![sample("a"), failed];
        let batch = to_batch(&written).unwrap();
        assert_eq!(from_batch(&batch).unwrap(), written);
    }

    #[test]
    fn a_name_with_two_datatypes_gets_a_second_field() {
        let mut other = sample("b");
        other.inputs[0] = Tensor::new("features", vec![1, 1], TensorData::F64(vec![1.0])).unwrap();
        let batch = to_batch(&[sample("a"), other]).unwrap();
        let inputs = batch
            .column_by_name("inputs")
            .unwrap()
            .as_any()
            .downcast_ref::<StructArray>()
            .unwrap();
        assert!(inputs.column_by_name("features#FP64").is_some());
        assert!(inputs.column_by_name("features").unwrap().is_null(1));
    }
}
