//! The output side of `ballast batch`: the part files' schema (`input_file`, `row`, then one
//! column per model output), a part's record batch from the engine's output tensors, and the
//! crash-safe write of a part (temporary file, fsync, rename, directory fsync).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array,
    ListArray, RecordBatch, StringArray, UInt8Array, UInt64Array,
};
use arrow_schema::{DataType as ArrowType, Field, Schema, SchemaRef};
use ballast_core::{DataType, ModelSignature, Tensor, TensorData};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

/// Columns every part starts with.
pub const INPUT_FILE: &str = "input_file";
pub const ROW: &str = "row";

/// The schema of every part of a run.
pub struct Layout {
    pub schema: SchemaRef,
    /// Per output, in signature order: whether it is a list column (more than one value per
    /// row, or a shape that does not say).
    lists: Vec<bool>,
}

/// The Arrow type of an output's values. FP16 is written as FP32 (exact), which every
/// Parquet reader takes.
fn arrow_type(dtype: DataType) -> ArrowType {
    match dtype {
        DataType::Bool => ArrowType::Boolean,
        DataType::U8 => ArrowType::UInt8,
        DataType::I32 => ArrowType::Int32,
        DataType::I64 => ArrowType::Int64,
        DataType::F16 | DataType::F32 => ArrowType::Float32,
        DataType::F64 => ArrowType::Float64,
        DataType::Bytes => ArrowType::Binary,
    }
}

fn item_field(dtype: DataType) -> Arc<Field> {
    Arc::new(Field::new("item", arrow_type(dtype), false))
}

impl Layout {
    pub fn new(sig: &ModelSignature) -> Result<Self, String> {
        let mut fields = vec![
            Field::new(INPUT_FILE, ArrowType::Utf8, false),
            Field::new(ROW, ArrowType::UInt64, false),
        ];
        let mut lists = Vec::with_capacity(sig.outputs.len());
        for out in &sig.outputs {
            if out.name == INPUT_FILE || out.name == ROW {
                return Err(format!(
                    "output '{}' has the name of a column every part starts with ({INPUT_FILE}, {ROW})",
                    out.name
                ));
            }
            let per_row: Option<i64> = out
                .shape
                .iter()
                .skip(1)
                .try_fold(1i64, |acc, &d| (d >= 0).then_some(acc * d));
            let list = per_row != Some(1);
            let ty = if list {
                ArrowType::List(item_field(out.dtype))
            } else {
                arrow_type(out.dtype)
            };
            fields.push(Field::new(&out.name, ty, false));
            lists.push(list);
        }
        Ok(Self {
            schema: Arc::new(Schema::new(fields)),
            lists,
        })
    }

    /// A part's rows: `outputs` holds, per engine call in row order, every output in signature
    /// order.
    pub fn batch(
        &self,
        input_file: &str,
        first_row: u64,
        rows: usize,
        outputs: &[Vec<Tensor>],
    ) -> anyhow::Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        columns.push(Arc::new(StringArray::from_iter_values(
            std::iter::repeat_n(input_file, rows),
        )));
        columns.push(Arc::new(UInt64Array::from_iter_values(
            first_row..first_row + rows as u64,
        )));
        for (i, &list) in self.lists.iter().enumerate() {
            let name = self.schema.field(i + 2).name();
            let mut data: Option<TensorData> = None;
            let mut lengths = Vec::new();
            let mut got = 0usize;
            for call in outputs {
                let t = call
                    .get(i)
                    .with_context(|| format!("the engine returned no output '{name}'"))?;
                let n = t.rows();
                got += n;
                lengths.extend(std::iter::repeat_n(t.row_len(), n));
                match &mut data {
                    None => data = Some(t.data.clone()),
                    Some(d) => anyhow::ensure!(
                        d.extend_from(&t.data),
                        "output '{name}' changed datatype between engine calls"
                    ),
                }
            }
            anyhow::ensure!(
                got == rows,
                "output '{name}' has {got} rows for {rows} input rows"
            );
            let data = data.unwrap_or_else(|| TensorData::zeros(DataType::F32, 0));
            let dtype = data.dtype();
            let values = values(data);
            if list {
                let offsets = arrow_buffer_offsets(&lengths);
                columns.push(Arc::new(
                    ListArray::try_new(item_field(dtype), offsets, values, None)
                        .with_context(|| format!("output '{name}'"))?,
                ));
            } else {
                anyhow::ensure!(
                    lengths.iter().all(|&l| l == 1),
                    "output '{name}' has several values per row, but its shape says one"
                );
                columns.push(values);
            }
        }
        RecordBatch::try_new(self.schema.clone(), columns).context("building an output part")
    }
}

fn arrow_buffer_offsets(lengths: &[usize]) -> arrow_buffer::OffsetBuffer<i32> {
    arrow_buffer::OffsetBuffer::from_lengths(lengths.iter().copied())
}

fn values(data: TensorData) -> ArrayRef {
    match data {
        TensorData::Bool(v) => Arc::new(BooleanArray::from(v)),
        TensorData::U8(v) => Arc::new(UInt8Array::from(v)),
        TensorData::I32(v) => Arc::new(Int32Array::from(v)),
        TensorData::I64(v) => Arc::new(Int64Array::from(v)),
        TensorData::F16(v) => {
            Arc::new(Float32Array::from_iter_values(v.into_iter().map(f32::from)))
        }
        TensorData::F32(v) => Arc::new(Float32Array::from(v)),
        TensorData::F64(v) => Arc::new(Float64Array::from(v)),
        TensorData::Bytes(v) => Arc::new(BinaryArray::from_iter_values(v)),
    }
}

/// Makes `path`'s directory entry durable (after a rename into it).
pub fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot fsync directory {}", dir.display()))
}

/// The name a part's temporary file has until it is complete. Readers skip names that start
/// with a dot (pyarrow, Spark, DuckDB globs on `*.parquet`), and a resume deletes them.
pub fn temp_name(name: &str) -> String {
    format!(".{name}.tmp")
}

/// zstd at its fastest level; dictionary encoding only for `input_file` (one value per part):
/// `row` and the outputs are (nearly) all distinct, so a dictionary would be hashed for
/// nothing (it was most of the writer's time), and page statistics are not needed.
fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(ColumnPath::from(INPUT_FILE), true)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build()
}

/// Writes `batch` as `dir/name` so that a crash at any moment leaves either no file of that
/// name or the whole of it: a temporary file, fsynced, renamed, then the directory fsynced.
pub fn write_part(dir: &Path, name: &str, batch: &RecordBatch) -> anyhow::Result<()> {
    let tmp = dir.join(temp_name(name));
    let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let props = writer_properties();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    writer
        .write(batch)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    let file = writer
        .into_inner()
        .with_context(|| format!("cannot finish {}", tmp.display()))?;
    file.sync_all()
        .with_context(|| format!("cannot fsync {}", tmp.display()))?;
    drop(file);
    let path = dir.join(name);
    std::fs::rename(&tmp, &path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    sync_dir(dir)
}

/// Rows in a finished part file (its footer), or `None` when it cannot be read as one.
pub fn part_rows(path: &Path) -> Option<u64> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = File::open(path).ok()?;
    let reader = SerializedFileReader::new(file).ok()?;
    u64::try_from(reader.metadata().file_metadata().num_rows()).ok()
}
