//! `ballast logs query`: the records of one model (optionally one version) in a time range,
//! by request id or by a condition on any column or tensor, oldest first.
//!
//! Reading prunes three times before decoding a value: by partition (model, version, date
//! and hour in the key), by row-group statistics of `time`, and for `--id` by the
//! `id` column's bloom filter. Records still in the WAL (acknowledged, not yet rolled into a
//! segment) are read too, except those whose segment already exists (a WAL file between its
//! conversion and its removal), so a query sees every acknowledged record exactly once.

use std::collections::BTreeSet;
use std::path::Path;

use ballast_core::{Tensor, TensorData};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::statistics::Statistics;
use serde_json::{Map, Value, json};

use crate::error::CaptureError;
use crate::record::Record;
use crate::sink::PredictionSink;
use crate::{segment, wal};

/// What to find.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub model: String,
    pub version: Option<String>,
    /// Inclusive bounds on arrival time, µs since the Unix epoch.
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    pub id: Option<String>,
    pub filters: Vec<Filter>,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// The value contains the text.
    Contains,
}

/// `column op value`: a top-level column (`status`, `total_us`, `code`, ...) or a tensor
/// (`inputs.NAME`, `outputs.NAME`: true when any of its values matches).
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub column: String,
    pub op: Op,
    pub value: String,
}

/// Columns a filter may name besides tensors.
pub const COLUMNS: [&str; 18] = [
    "id",
    "trace_id",
    "time",
    "tenant",
    "model",
    "version",
    "requested",
    "arm",
    "protocol",
    "priority",
    "status",
    "code",
    "queue_us",
    "engine_us",
    "batch_rows",
    "total_us",
    "input_schema",
    "parameters",
];

impl Filter {
    /// Parses `column op value`, op one of `= == != < <= > >= ~` (`~`: contains).
    pub fn parse(text: &str) -> Result<Self, CaptureError> {
        let bad = |why: &str| {
            CaptureError::Config(format!(
                "--where {text:?}: {why}; expected 'column op value' with op one of = != < <= > >= ~ (contains), column one of {} or inputs.NAME / outputs.NAME",
                COLUMNS.join(", ")
            ))
        };
        let ops = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
            ("~", Op::Contains),
        ];
        let (at, token, op) = ops
            .iter()
            .filter_map(|(t, op)| text.find(t).map(|i| (i, *t, *op)))
            .min_by_key(|(i, t, _)| (*i, std::cmp::Reverse(t.len())))
            .ok_or_else(|| bad("no operator"))?;
        let column = text[..at].trim().to_string();
        let value = text[at + token.len()..].trim();
        let value = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
            .unwrap_or(value)
            .to_string();
        if column.is_empty() {
            return Err(bad("no column"));
        }
        let tensor = column.split_once('.').is_some_and(|(side, name)| {
            (side == "inputs" || side == "outputs") && !name.is_empty()
        });
        if !tensor && !COLUMNS.contains(&column.as_str()) {
            return Err(bad(&format!("unknown column {column:?}")));
        }
        Ok(Self { column, op, value })
    }

    fn matches(&self, r: &Record) -> bool {
        if let Some((side, name)) = self.column.split_once('.')
            && (side == "inputs" || side == "outputs")
        {
            let tensors = if side == "inputs" {
                &r.inputs
            } else {
                &r.outputs
            };
            return tensors
                .iter()
                .filter(|t| t.name == name)
                .any(|t| tensor_values(t).iter().any(|v| self.test(v)));
        }
        let v = match self.column.as_str() {
            "id" => json!(r.id),
            "trace_id" => json!(r.trace_id),
            "time" => json!(format_time(r.time_us)),
            "tenant" => json!(r.tenant),
            "model" => json!(r.model),
            "version" => json!(r.version),
            "requested" => json!(r.requested),
            "arm" => json!(r.arm),
            "protocol" => json!(r.protocol),
            "priority" => json!(r.priority),
            "status" => json!(r.status.as_str()),
            "code" => json!(r.code),
            "queue_us" => json!(r.queue_us),
            "engine_us" => json!(r.engine_us),
            "batch_rows" => json!(r.batch_rows),
            "total_us" => json!(r.total_us),
            "input_schema" => json!(r.input_schema),
            "parameters" => json!(r.parameters),
            _ => Value::Null,
        };
        self.test(&v)
    }

    /// Numbers compare as numbers when both sides are; everything else as text. Null
    /// matches only `!=`.
    fn test(&self, v: &Value) -> bool {
        let text = match v {
            Value::Null => return self.op == Op::Ne,
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if self.op == Op::Contains {
            return text.contains(&self.value);
        }
        let ord = match (v.as_f64(), self.value.parse::<f64>()) {
            (Some(a), Ok(b)) => a.partial_cmp(&b),
            _ => Some(text.as_str().cmp(self.value.as_str())),
        };
        let Some(ord) = ord else {
            return self.op == Op::Ne;
        };
        match self.op {
            Op::Eq => ord.is_eq(),
            Op::Ne => ord.is_ne(),
            Op::Lt => ord.is_lt(),
            Op::Le => ord.is_le(),
            Op::Gt => ord.is_gt(),
            Op::Ge => ord.is_ge(),
            Op::Contains => false,
        }
    }
}

impl Query {
    fn keeps(&self, r: &Record) -> bool {
        r.model == self.model
            && self.version.as_ref().is_none_or(|v| *v == r.version)
            && self.from_us.is_none_or(|t| r.time_us >= t)
            && self.to_us.is_none_or(|t| r.time_us <= t)
            && self.id.as_ref().is_none_or(|id| *id == r.id)
            && self.filters.iter().all(|f| f.matches(r))
    }

    /// Whether a partition's hour can hold records in range.
    fn hour_in_range(&self, key: &str) -> bool {
        let Some(start) = partition_hour_us(key) else {
            return true;
        };
        let end = start + 3_600_000_000 - 1;
        self.from_us.is_none_or(|t| end >= t) && self.to_us.is_none_or(|t| start <= t)
    }
}

/// The first µs of a key's hour (`<model>/<version>/<YYYY-MM-DD>/<HH>/...`).
fn partition_hour_us(key: &str) -> Option<i64> {
    let t = segment::hour_of(key)?;
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok().map(|s| s * 1_000_000)
}

/// Runs a query over the sink's segments and, with `wal_dir`, the WAL not yet rolled.
/// `emit` gets each matching record in time order within a file; it returns `false` to stop.
/// Returns how many records were emitted.
pub async fn run(
    sink: &dyn PredictionSink,
    wal_dir: Option<&Path>,
    q: &Query,
    mut emit: impl FnMut(&Record) -> bool,
) -> Result<usize, CaptureError> {
    let limit = q.limit.unwrap_or(usize::MAX);
    let mut prefix = segment::path_part(&q.model);
    if let Some(v) = &q.version {
        prefix.push('/');
        prefix.push_str(&segment::path_part(v));
    }
    let listed = sink.list(&prefix).await?;
    // Segments a compacted one already covers (a compaction cut short) are read through it.
    let superseded = crate::retention::superseded(&listed);
    let mut emitted = 0;
    let mut segments = BTreeSet::new();
    for item in &listed {
        if !item.key.ends_with(".parquet") || superseded.contains(&item.key) {
            continue;
        }
        segments.insert(item.key.clone());
        if emitted >= limit || !q.hour_in_range(&item.key) {
            continue;
        }
        let bytes = sink.get(&item.key).await?;
        for r in read_segment(bytes, q, &item.key)? {
            if emitted >= limit {
                break;
            }
            emitted += 1;
            if !emit(&r) {
                return Ok(emitted);
            }
        }
    }
    let Some(dir) = wal_dir else {
        return Ok(emitted);
    };
    for (seq, path) in wal::list(dir)? {
        if emitted >= limit {
            break;
        }
        // A WAL file can vanish between listing and reading (rolled meanwhile).
        let recovered = match wal::read(&path) {
            Ok(r) => r,
            Err(CaptureError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        for r in recovered.records {
            let key = format!(
                "{}/{}",
                segment::partition(&r.model, &r.version, r.time_us),
                segment::file_name(seq)
            );
            if segments.contains(&key) || !q.keeps(&r) {
                continue;
            }
            if emitted >= limit {
                break;
            }
            emitted += 1;
            if !emit(&r) {
                return Ok(emitted);
            }
        }
    }
    Ok(emitted)
}

/// How a Parquet or Arrow error reading the segment `key` is reported.
fn read_error<E: std::fmt::Display>(key: &str) -> impl Fn(E) -> CaptureError + '_ {
    move |e| CaptureError::Parquet {
        what: format!("reading {key}"),
        message: e.to_string(),
    }
}

/// Every record of one segment.
pub fn read_all(bytes: Bytes, key: &str) -> Result<Vec<Record>, CaptureError> {
    let perr = read_error(key);
    let mut out = Vec::new();
    for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(&perr)?
        .build()
        .map_err(&perr)?
    {
        out.extend(segment::from_batch(&batch.map_err(read_error(key))?)?);
    }
    Ok(out)
}

/// The matching records of one segment, pruning row groups by `time` statistics and, for an
/// id, by the bloom filter.
fn read_segment(bytes: Bytes, q: &Query, key: &str) -> Result<Vec<Record>, CaptureError> {
    let perr = read_error(key);
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(&perr)?;
    let meta = builder.metadata().clone();
    let column = |name: &str| {
        meta.file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.path().string() == name)
    };
    let (time_col, id_col) = (column("time"), column("id"));
    let mut groups = Vec::new();
    for g in 0..meta.num_row_groups() {
        let rg = meta.row_group(g);
        if let Some(Statistics::Int64(s)) = time_col.and_then(|c| rg.column(c).statistics()) {
            let (lo, hi) = (s.min_opt().copied(), s.max_opt().copied());
            if q.to_us.zip(lo).is_some_and(|(to, lo)| lo > to)
                || q.from_us.zip(hi).is_some_and(|(from, hi)| hi < from)
            {
                continue;
            }
        }
        if let (Some(id), Some(c)) = (&q.id, id_col)
            && let Some(bloom) = builder
                .get_row_group_column_bloom_filter(g, c)
                .map_err(&perr)?
            && !bloom.check(id.as_str())
        {
            continue;
        }
        groups.push(g);
    }
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let reader = builder.with_row_groups(groups).build().map_err(&perr)?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(read_error(key))?;
        out.extend(
            segment::from_batch(&batch)?
                .into_iter()
                .filter(|r| q.keeps(r)),
        );
    }
    Ok(out)
}

/// Records per model, version and status, and the segments holding them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub segments: usize,
    pub bytes: u64,
    /// (model, version, status) → records.
    pub counts: std::collections::BTreeMap<(String, String, String), u64>,
}

/// Counts every segment's records by model, version and status (reading only those
/// columns).
pub async fn summary(sink: &dyn PredictionSink) -> Result<Summary, CaptureError> {
    use arrow_array::StringArray;
    let mut out = Summary::default();
    let listed = sink.list("").await?;
    let superseded = crate::retention::superseded(&listed);
    for item in listed {
        if !item.key.ends_with(".parquet") || superseded.contains(&item.key) {
            continue;
        }
        out.segments += 1;
        out.bytes += item.size;
        let bytes = sink.get(&item.key).await?;
        let perr = read_error(&item.key);
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(&perr)?;
        let mask = parquet::arrow::ProjectionMask::columns(
            builder.parquet_schema(),
            ["model", "version", "status"],
        );
        for batch in builder.with_projection(mask).build().map_err(&perr)? {
            let batch = batch.map_err(read_error(&item.key))?;
            let col = |name: &str| {
                batch
                    .column_by_name(name)
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                    .ok_or_else(|| {
                        CaptureError::Corrupt(format!("{} has no column {name}", item.key))
                    })
            };
            let (m, v, st) = (col("model")?, col("version")?, col("status")?);
            for i in 0..batch.num_rows() {
                *out.counts
                    .entry((
                        m.value(i).to_string(),
                        v.value(i).to_string(),
                        st.value(i).to_string(),
                    ))
                    .or_default() += 1;
            }
        }
    }
    Ok(out)
}

/// RFC 3339 with microseconds, UTC.
pub fn format_time(time_us: i64) -> String {
    let t = std::time::UNIX_EPOCH
        + std::time::Duration::from_micros(u64::try_from(time_us).unwrap_or(0));
    humantime::format_rfc3339_micros(t).to_string()
}

/// A tensor's values as JSON (flattened, row-major, as the Open Inference Protocol sends
/// them); BYTES as strings.
pub fn tensor_values(t: &Tensor) -> Vec<Value> {
    fn num<T: Into<f64> + Copy>(v: &[T]) -> Vec<Value> {
        v.iter()
            .map(|&x| {
                let f: f64 = x.into();
                serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
            })
            .collect()
    }
    match &t.data {
        TensorData::Bool(v) => v.iter().map(|&b| json!(b)).collect(),
        TensorData::U8(v) => v.iter().map(|&x| json!(x)).collect(),
        TensorData::I32(v) => v.iter().map(|&x| json!(x)).collect(),
        TensorData::I64(v) => v.iter().map(|&x| json!(x)).collect(),
        TensorData::F16(v) => v.iter().map(|x| json!(x.to_f32())).collect(),
        TensorData::F32(v) => num(v),
        TensorData::F64(v) => num(v),
        TensorData::Bytes(v) => v
            .iter()
            .map(|b| json!(String::from_utf8_lossy(b)))
            .collect(),
    }
}

fn tensors_json(tensors: &[Tensor]) -> (Value, Value) {
    let mut values = Map::new();
    let mut shapes = Map::new();
    for t in tensors {
        values.insert(t.name.clone(), Value::Array(tensor_values(t)));
        shapes.insert(t.name.clone(), json!(t.shape));
    }
    (Value::Object(values), Value::Object(shapes))
}

/// One record as a JSON object (`logs query --json`).
pub fn to_json(r: &Record) -> Value {
    let (inputs, input_shapes) = tensors_json(&r.inputs);
    let (outputs, output_shapes) = tensors_json(&r.outputs);
    let parameters = r
        .parameters
        .as_deref()
        .map(|p| serde_json::from_str::<Value>(p).unwrap_or_else(|_| json!(p)));
    json!({
        "id": r.id,
        "time": format_time(r.time_us),
        "model": r.model,
        "version": r.version,
        "status": r.status.as_str(),
        "code": r.code,
        "trace_id": r.trace_id,
        "tenant": r.tenant,
        "requested": r.requested,
        "arm": r.arm,
        "protocol": r.protocol,
        "priority": r.priority,
        "queue_us": r.queue_us,
        "engine_us": r.engine_us,
        "batch_rows": r.batch_rows,
        "total_us": r.total_us,
        "input_schema": r.input_schema,
        "parameters": parameters,
        "inputs": inputs,
        "outputs": outputs,
        "input_shapes": input_shapes,
        "output_shapes": output_shapes,
    })
}

/// Parses a `--from` / `--to` value: RFC 3339 (`2026-12-06T04:00:00Z`, seconds optional
/// fraction) or a duration before now (`15m`, `2h`, `7days`). `field` names the flag.
pub fn parse_time(
    text: &str,
    field: &str,
    now: std::time::SystemTime,
) -> Result<i64, CaptureError> {
    let t = match humantime::parse_rfc3339_weak(text) {
        Ok(t) => t,
        Err(_) => match humantime::parse_duration(text) {
            Ok(d) => now.checked_sub(d).unwrap_or(std::time::UNIX_EPOCH),
            Err(_) => {
                return Err(CaptureError::Config(format!(
                    "{field}: expected an RFC 3339 time (2026-12-06T04:00:00Z) or a duration before now (15m, 2h), got {text:?}"
                )));
            }
        },
    };
    let d = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| CaptureError::Config(format!("{field}: {text:?} is before 1970")))?;
    Ok(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::record::tests::sample;

    #[test]
    fn filters_parse_and_name_what_is_wrong() {
        let f = Filter::parse("outputs.probability >= 0.5").unwrap();
        assert_eq!(
            (f.column.as_str(), f.op, f.value.as_str()),
            ("outputs.probability", Op::Ge, "0.5")
        );
        let f = Filter::parse("status = 'error'").unwrap();
        assert_eq!((f.op, f.value.as_str()), (Op::Eq, "error"));
        let e = Filter::parse("colour = red").unwrap_err().to_string();
        assert!(e.contains("unknown column \"colour\""), "{e}");
        let e = Filter::parse("status error").unwrap_err().to_string();
        assert!(e.contains("no operator"), "{e}");
    }

    #[test]
    fn filters_match_columns_numbers_and_any_tensor_value() {
        let r = sample("a");
        let yes = |s: &str| Filter::parse(s).unwrap().matches(&r);
        assert!(yes("status = ok"));
        assert!(!yes("status != ok"));
        assert!(yes("total_us > 70"));
        assert!(!yes("total_us > 75"));
        assert!(yes("inputs.features < -2"));
        assert!(!yes("inputs.features > 10"));
        assert!(yes("inputs.note ~ <PHONE>"));
        assert!(yes("code != x"), "null only matches !=");
        assert!(!yes("code = x"));
    }

    #[test]
    fn times_parse_as_rfc3339_or_as_a_duration_before_now() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(7200);
        assert_eq!(
            parse_time("1970-01-01T00:00:01Z", "--from", now).unwrap(),
            1_000_000
        );
        assert_eq!(parse_time("1h", "--from", now).unwrap(), 3_600_000_000);
        let e = parse_time("yesterday", "--from", now)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--from"), "{e}");
    }

    #[test]
    fn partitions_outside_the_range_are_skipped() {
        let q = Query {
            from_us: Some(partition_hour_us("m/1/2026-12-06/05").unwrap()),
            ..Query::default()
        };
        assert!(!q.hour_in_range("m/1/2026-12-06/04/1.parquet"));
        assert!(q.hour_in_range("m/1/2026-12-06/05/1.parquet"));
    }
}
