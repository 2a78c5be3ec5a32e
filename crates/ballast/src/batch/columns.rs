//! Which columns of an input file feed which model input, and the row-major input tensors
//! built from a range of a record batch.
//!
//! The mapping, decided per file before anything is scored (the first problem in any file
//! stops the run, naming the file and the column):
//! - `--columns a,b,c` (a model with one input): those columns, in that order, are the values
//!   of each row.
//! - Columns named after the inputs: `<input>` for an input with one value per row, or
//!   `<input>[0]`, `<input>[1]`, … for the values of a row in row-major order. This is the
//!   only form for a model with several inputs, and wins for a model with one.
//! - Otherwise, for a model with one input: every numeric column in file order, except a label
//!   column (`label`, `target`, `y`, …: the same names the drift monitor skips). Their count
//!   must be the input's values per row.
//!
//! Types: a number input (FP16/32/64, INT32/64, UINT8) takes integer or float columns (an
//! integer input takes a float column only where each value is a whole number in range); a
//! BOOL input takes boolean columns; a BYTES input takes string or binary columns. A missing
//! value is NaN for a float input and an error for the others; NaN and ±Inf then meet the
//! model's own rule (`allow_non_finite`), as a served request would.

use std::ops::Range;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType as ArrowType, Schema};
use ballast_core::tensor::f16;
use ballast_core::{DataType, ModelSignature, Tensor, TensorData, TensorSpec};
use ballast_monitor::online::LABEL_COLUMNS;

/// The columns of one file feeding each model input, in signature order.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub inputs: Vec<InputColumns>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InputColumns {
    pub spec: TensorSpec,
    /// The shape of one row (the input's shape without its batch dimension), its variable
    /// dimensions fixed by the number of columns.
    pub row_shape: Vec<usize>,
    pub columns: Vec<String>,
}

impl Mapping {
    /// Every column read, each once.
    pub fn columns(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in self.inputs.iter().flat_map(|i| &i.columns) {
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
        out
    }
}

fn is_label(name: &str) -> bool {
    LABEL_COLUMNS.iter().any(|l| name.eq_ignore_ascii_case(l))
}

fn is_numeric(t: &ArrowType) -> bool {
    t.is_integer() || t.is_floating()
}

fn fits(input: &TensorSpec, column: &ArrowType) -> bool {
    match input.dtype {
        DataType::Bool => *column == ArrowType::Boolean,
        DataType::Bytes => matches!(
            column,
            ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Binary | ArrowType::LargeBinary
        ),
        _ => is_numeric(column),
    }
}

fn what_it_takes(dtype: DataType) -> &'static str {
    match dtype {
        DataType::Bool => "boolean columns",
        DataType::Bytes => "string or binary columns",
        _ => "integer or float columns",
    }
}

/// Values per row of `spec` when its shape says (`None` when a dimension past the batch one
/// is variable).
fn row_len(spec: &TensorSpec) -> Option<usize> {
    spec.shape
        .iter()
        .skip(1)
        .try_fold(1usize, |acc, &d| usize::try_from(d).ok().map(|d| acc * d))
}

/// Decides the columns of `schema` that feed each input of `sig` (see the module doc).
pub fn map(sig: &ModelSignature, schema: &Schema, explicit: &[String]) -> Result<Mapping, String> {
    let has = |name: &str| schema.index_of(name).ok();
    let listing = || {
        schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut inputs = Vec::with_capacity(sig.inputs.len());
    if !explicit.is_empty() && sig.inputs.len() != 1 {
        return Err(format!(
            "--columns applies to a model with one input; this one has {} ({}): name the columns after the inputs instead",
            sig.inputs.len(),
            sig.input_names()
        ));
    }
    for spec in &sig.inputs {
        let fixed = row_len(spec);
        let indexed: Vec<String> = (0..)
            .map(|i| format!("{}[{i}]", spec.name))
            .take_while(|n| has(n).is_some())
            .collect();
        let columns: Vec<String> = if !explicit.is_empty() {
            for c in explicit {
                if has(c).is_none() {
                    return Err(format!(
                        "column '{c}' (from --columns) is missing; the file has {}",
                        listing()
                    ));
                }
            }
            explicit.to_vec()
        } else if fixed == Some(1) && has(&spec.name).is_some() {
            vec![spec.name.clone()]
        } else if !indexed.is_empty() {
            indexed
        } else if sig.inputs.len() == 1 {
            let numeric: Vec<String> = schema
                .fields()
                .iter()
                .filter(|f| is_numeric(f.data_type()) && !is_label(f.name()))
                .map(|f| f.name().clone())
                .collect();
            if numeric.is_empty() {
                return Err(format!(
                    "no numeric column feeds input '{}'; the file has {}",
                    spec.describe(),
                    listing()
                ));
            }
            if let Some(f) = fixed.filter(|&f| f != numeric.len()) {
                return Err(format!(
                    "input '{}' takes {f} values per row, but the file has {} numeric columns besides a label ({}): choose {f} with --columns, or name them {}[0]..{}[{}]",
                    spec.describe(),
                    numeric.len(),
                    numeric.join(", "),
                    spec.name,
                    spec.name,
                    f.saturating_sub(1)
                ));
            }
            numeric
        } else {
            let wanted = if fixed == Some(1) {
                spec.name.clone()
            } else {
                format!("{}[0]", spec.name)
            };
            return Err(format!(
                "column '{wanted}' for input '{}' is missing (a model with several inputs takes columns named <input> or <input>[i]); the file has {}",
                spec.describe(),
                listing()
            ));
        };
        if let Some(f) = fixed.filter(|&f| f != columns.len()) {
            return Err(format!(
                "input '{}' takes {f} values per row, but {} columns feed it ({})",
                spec.describe(),
                columns.len(),
                columns.join(", ")
            ));
        }
        for c in &columns {
            let Ok(field) = schema.field_with_name(c) else {
                return Err(format!("column '{c}' is missing"));
            };
            if !fits(spec, field.data_type()) {
                return Err(format!(
                    "column '{c}' is {}, but input '{}' takes {}",
                    field.data_type(),
                    spec.describe(),
                    what_it_takes(spec.dtype)
                ));
            }
        }
        let row_shape = row_shape(spec, columns.len())?;
        inputs.push(InputColumns {
            spec: spec.clone(),
            row_shape,
            columns,
        });
    }
    Ok(Mapping { inputs })
}

/// The row shape of `spec` fed by `n` columns: a single variable dimension takes what the
/// fixed ones leave.
fn row_shape(spec: &TensorSpec, n: usize) -> Result<Vec<usize>, String> {
    let dims = &spec.shape[1.min(spec.shape.len())..];
    let known: usize = dims
        .iter()
        .filter_map(|&d| usize::try_from(d).ok())
        .product();
    let variable = dims.iter().filter(|&&d| d < 0).count();
    match variable {
        0 => Ok(dims.iter().map(|&d| d as usize).collect()),
        1 if known > 0 && n.is_multiple_of(known) => Ok(dims
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(n / known))
            .collect()),
        _ => Err(format!(
            "input '{}': {n} columns do not fill its shape",
            spec.describe()
        )),
    }
}

/// Calls `put(row, value)` for each row of `range` of a numeric array; a missing value is NaN.
fn floats(array: &dyn Array, range: Range<usize>, mut put: impl FnMut(usize, f64)) {
    macro_rules! each {
        ($t:ty) => {{
            let a = array.as_primitive::<$t>();
            let values = &a.values()[range.clone()];
            if a.null_count() == 0 {
                for (r, v) in values.iter().enumerate() {
                    put(r, f64::from(*v));
                }
            } else {
                for (r, v) in values.iter().enumerate() {
                    let x = if a.is_null(range.start + r) {
                        f64::NAN
                    } else {
                        f64::from(*v)
                    };
                    put(r, x);
                }
            }
        }};
        ($t:ty, as) => {{
            let a = array.as_primitive::<$t>();
            let values = &a.values()[range.clone()];
            for (r, v) in values.iter().enumerate() {
                let x = if a.is_null(range.start + r) {
                    f64::NAN
                } else {
                    *v as f64
                };
                put(r, x);
            }
        }};
    }
    match array.data_type() {
        ArrowType::Float64 => each!(Float64Type),
        ArrowType::Float32 => each!(Float32Type),
        ArrowType::Float16 => each!(Float16Type),
        ArrowType::Int8 => each!(Int8Type),
        ArrowType::Int16 => each!(Int16Type),
        ArrowType::Int32 => each!(Int32Type),
        ArrowType::Int64 => each!(Int64Type, as),
        ArrowType::UInt8 => each!(UInt8Type),
        ArrowType::UInt16 => each!(UInt16Type),
        ArrowType::UInt32 => each!(UInt32Type),
        ArrowType::UInt64 => each!(UInt64Type, as),
        _ => {}
    }
}

/// Calls `put(row, value)` for each row of `range` of a numeric array as whole numbers;
/// a missing, fractional or out-of-range value is an error naming its row (within the range).
fn integers(
    array: &dyn Array,
    range: Range<usize>,
    mut put: impl FnMut(usize, i64),
) -> Result<(), String> {
    let start = range.start;
    for r in 0..range.len() {
        if array.is_null(start + r) {
            return Err(format!("row {r}: missing value"));
        }
    }
    macro_rules! ints {
        ($t:ty) => {{
            let a = array.as_primitive::<$t>();
            for (r, v) in a.values()[range].iter().enumerate() {
                let v = i64::try_from(*v).map_err(|_| format!("row {r}: {v} is out of range"))?;
                put(r, v);
            }
        }};
    }
    match array.data_type() {
        ArrowType::Int8 => ints!(Int8Type),
        ArrowType::Int16 => ints!(Int16Type),
        ArrowType::Int32 => ints!(Int32Type),
        ArrowType::Int64 => ints!(Int64Type),
        ArrowType::UInt8 => ints!(UInt8Type),
        ArrowType::UInt16 => ints!(UInt16Type),
        ArrowType::UInt32 => ints!(UInt32Type),
        ArrowType::UInt64 => ints!(UInt64Type),
        _ => {
            let mut bad = None;
            floats(array, range, |r, x| {
                if x.fract() == 0.0 && x.abs() < 9.0e15 {
                    put(r, x as i64);
                } else if bad.is_none() {
                    bad = Some(format!("row {r}: {x} is not a whole number"));
                }
            });
            if let Some(bad) = bad {
                return Err(bad);
            }
        }
    }
    Ok(())
}

/// The model's inputs for rows `range` of `batch`, in signature order. Errors name the column
/// and the row within the range.
pub fn tensors(
    batch: &RecordBatch,
    mapping: &Mapping,
    range: Range<usize>,
) -> Result<Vec<Tensor>, String> {
    let n = range.len();
    let mut out = Vec::with_capacity(mapping.inputs.len());
    for input in &mapping.inputs {
        let width = input.columns.len();
        let arrays = input
            .columns
            .iter()
            .map(|c| {
                batch
                    .column_by_name(c)
                    .ok_or_else(|| format!("column '{c}' was not read"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let in_column = |c: &str, e: String| format!("column '{c}', {e}");
        let data = match input.spec.dtype {
            DataType::F32 => {
                let mut v = vec![0f32; n * width];
                for (j, a) in arrays.iter().enumerate() {
                    floats(a.as_ref(), range.clone(), |r, x| {
                        v[r * width + j] = x as f32
                    });
                }
                TensorData::F32(v)
            }
            DataType::F64 => {
                let mut v = vec![0f64; n * width];
                for (j, a) in arrays.iter().enumerate() {
                    floats(a.as_ref(), range.clone(), |r, x| v[r * width + j] = x);
                }
                TensorData::F64(v)
            }
            DataType::F16 => {
                let mut v = vec![f16::from_f64(0.0); n * width];
                for (j, a) in arrays.iter().enumerate() {
                    floats(a.as_ref(), range.clone(), |r, x| {
                        v[r * width + j] = f16::from_f64(x);
                    });
                }
                TensorData::F16(v)
            }
            DataType::I64 | DataType::I32 | DataType::U8 => {
                let mut v = vec![0i64; n * width];
                for (j, (a, c)) in arrays.iter().zip(&input.columns).enumerate() {
                    integers(a.as_ref(), range.clone(), |r, x| v[r * width + j] = x)
                        .map_err(|e| in_column(c, e))?;
                }
                narrow(input, v)?
            }
            DataType::Bool => {
                let mut v = vec![false; n * width];
                for (j, (a, c)) in arrays.iter().zip(&input.columns).enumerate() {
                    let b = a.as_boolean();
                    for r in 0..n {
                        if b.is_null(range.start + r) {
                            return Err(in_column(c, format!("row {r}: missing value")));
                        }
                        v[r * width + j] = b.value(range.start + r);
                    }
                }
                TensorData::Bool(v)
            }
            DataType::Bytes => {
                let mut v = vec![Vec::new(); n * width];
                for (j, (a, c)) in arrays.iter().zip(&input.columns).enumerate() {
                    for r in 0..n {
                        let i = range.start + r;
                        if a.is_null(i) {
                            return Err(in_column(c, format!("row {r}: missing value")));
                        }
                        v[r * width + j] = match a.data_type() {
                            ArrowType::Utf8 => a.as_string::<i32>().value(i).as_bytes().to_vec(),
                            ArrowType::LargeUtf8 => {
                                a.as_string::<i64>().value(i).as_bytes().to_vec()
                            }
                            ArrowType::Binary => a.as_binary::<i32>().value(i).to_vec(),
                            _ => a.as_binary::<i64>().value(i).to_vec(),
                        };
                    }
                }
                TensorData::Bytes(v)
            }
        };
        let mut shape = Vec::with_capacity(input.row_shape.len() + 1);
        shape.push(n);
        shape.extend(&input.row_shape);
        out.push(Tensor::new(input.spec.name.clone(), shape, data).map_err(|e| e.message)?);
    }
    Ok(out)
}

fn narrow(input: &InputColumns, v: Vec<i64>) -> Result<TensorData, String> {
    let name = &input.spec.name;
    let out_of_range = |x: i64| {
        format!(
            "input '{name}': {x} is out of range for {}",
            input.spec.dtype
        )
    };
    Ok(match input.spec.dtype {
        DataType::I32 => TensorData::I32(
            v.into_iter()
                .map(|x| i32::try_from(x).map_err(|_| out_of_range(x)))
                .collect::<Result<_, _>>()?,
        ),
        DataType::U8 => TensorData::U8(
            v.into_iter()
                .map(|x| u8::try_from(x).map_err(|_| out_of_range(x)))
                .collect::<Result<_, _>>()?,
        ),
        _ => TensorData::I64(v),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Float64Array, Int64Array};
    use arrow_schema::Field;

    use super::*;

    fn sig(inputs: Vec<TensorSpec>) -> ModelSignature {
        ModelSignature {
            inputs,
            outputs: vec![TensorSpec::new("y", DataType::F32, vec![-1, 1])],
        }
    }

    fn schema(cols: &[(&str, ArrowType)]) -> Schema {
        Schema::new(
            cols.iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn one_input_takes_numeric_columns_in_file_order_without_the_label() {
        let s = schema(&[
            ("b", ArrowType::Float64),
            ("id", ArrowType::Utf8),
            ("a", ArrowType::Int64),
            ("label", ArrowType::Int64),
        ]);
        let m = map(
            &sig(vec![TensorSpec::new("x", DataType::F32, vec![-1, 2])]),
            &s,
            &[],
        )
        .unwrap();
        assert_eq!(m.inputs[0].columns, ["b", "a"]);
        assert_eq!(m.inputs[0].row_shape, [2]);
    }

    #[test]
    fn a_count_mismatch_names_the_columns_and_the_way_out() {
        let s = schema(&[("a", ArrowType::Float64), ("b", ArrowType::Float64)]);
        let e = map(
            &sig(vec![TensorSpec::new("x", DataType::F32, vec![-1, 3])]),
            &s,
            &[],
        )
        .unwrap_err();
        assert!(
            e.contains("takes 3 values per row") && e.contains("a, b"),
            "{e}"
        );
        assert!(e.contains("--columns"), "{e}");
    }

    #[test]
    fn several_inputs_take_columns_named_after_them() {
        let s = schema(&[
            ("v[1]", ArrowType::Float64),
            ("k", ArrowType::Int64),
            ("v[0]", ArrowType::Float32),
        ]);
        let sig = sig(vec![
            TensorSpec::new("k", DataType::I64, vec![-1]),
            TensorSpec::new("v", DataType::F64, vec![-1, 2]),
        ]);
        let m = map(&sig, &s, &[]).unwrap();
        assert_eq!(m.inputs[0].columns, ["k"]);
        assert_eq!(m.inputs[0].row_shape, Vec::<usize>::new());
        assert_eq!(m.inputs[1].columns, ["v[0]", "v[1]"]);
        let missing = map(&sig, &schema(&[("k", ArrowType::Int64)]), &[]).unwrap_err();
        assert!(missing.contains("column 'v[0]'"), "{missing}");
    }

    #[test]
    fn explicit_columns_must_exist_and_be_numbers() {
        let s = schema(&[("a", ArrowType::Float64), ("name", ArrowType::Utf8)]);
        let one = sig(vec![TensorSpec::new("x", DataType::F32, vec![-1, 2])]);
        let e = map(&one, &s, &["a".into(), "zz".into()]).unwrap_err();
        assert!(e.contains("column 'zz'") && e.contains("missing"), "{e}");
        let e = map(&one, &s, &["a".into(), "name".into()]).unwrap_err();
        assert!(e.contains("column 'name' is Utf8"), "{e}");
    }

    #[test]
    fn tensors_are_row_major_with_nan_for_missing_floats() {
        let s = Arc::new(schema(&[
            ("a", ArrowType::Float64),
            ("b", ArrowType::Int64),
        ]));
        let batch = RecordBatch::try_new(
            s.clone(),
            vec![
                Arc::new(Float64Array::from(vec![Some(1.0), None, Some(3.0)])),
                Arc::new(Int64Array::from(vec![10, 20, 30])),
            ],
        )
        .unwrap();
        let m = map(
            &sig(vec![TensorSpec::new("x", DataType::F32, vec![-1, 2])]),
            &s,
            &[],
        )
        .unwrap();
        let t = tensors(&batch, &m, 1..3).unwrap();
        assert_eq!(t[0].shape, [2, 2]);
        let TensorData::F32(v) = &t[0].data else {
            panic!()
        };
        assert!(v[0].is_nan());
        assert_eq!(&v[1..], [20.0, 3.0, 30.0]);
        let ints = map(
            &sig(vec![TensorSpec::new("x", DataType::I64, vec![-1, 2])]),
            &s,
            &[],
        )
        .unwrap();
        let e = tensors(&batch, &ints, 0..3).unwrap_err();
        assert!(e.contains("column 'a', row 1: missing value"), "{e}");
    }
}
