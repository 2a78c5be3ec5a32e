//! Request validation against a model's signature: every problem is reported with the field,
//! what was expected and what came. Runs on the request path before a request is queued, so a
//! bad request never costs a queue slot or engine time.

use crate::error::Error;
use crate::signature::ModelSignature;
use crate::tensor::{DataType, Tensor, fmt_shape};

/// Limits a model applies to every request.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Whether the model batches along dimension 0 (`max_batch_size > 0`): then every input's
    /// dimension 0 counts rows and must agree.
    pub max_batch_size: usize,
    /// Largest leading dimension a request may carry when the model batches.
    pub max_request_rows: usize,
    /// Whether NaN may appear in float inputs (it means "missing" to tree models and graphs
    /// that impute).
    pub allow_nan: bool,
    /// Whether ±Inf may appear in float inputs.
    pub allow_inf: bool,
}

impl RequestLimits {
    /// What a model's config allows: NaN where the engine takes it as missing (unless the
    /// config says), ±Inf only when the config allows non-finite values. The one rule for
    /// served requests and `ballast batch`.
    pub fn for_model(config: &crate::ModelConfig, nan_is_missing: bool) -> Self {
        Self {
            max_batch_size: config.max_batch_size,
            max_request_rows: config.max_request_rows,
            allow_nan: config.allow_non_finite.unwrap_or(nan_is_missing),
            allow_inf: config.allow_non_finite.unwrap_or(false),
        }
    }
}

/// `tensor` as `to` when the conversion cannot change a value: FP16 → FP32 → FP64,
/// UINT8 → INT32 → INT64, UINT8 → FP16/FP32/FP64, INT32 → FP64. The tensor back for every
/// other pair.
pub fn widen(tensor: Tensor, to: DataType) -> Result<Tensor, Tensor> {
    use crate::tensor::{TensorData as D, f16};
    let Tensor { name, shape, data } = tensor;
    let data = match (data, to) {
        (D::F16(v), DataType::F32) => D::F32(v.into_iter().map(f32::from).collect()),
        (D::F16(v), DataType::F64) => D::F64(v.into_iter().map(f64::from).collect()),
        (D::U8(v), DataType::I32) => D::I32(v.into_iter().map(i32::from).collect()),
        (D::U8(v), DataType::I64) => D::I64(v.into_iter().map(i64::from).collect()),
        (D::U8(v), DataType::F16) => D::F16(v.into_iter().map(f16::from).collect()),
        (D::U8(v), DataType::F32) => D::F32(v.into_iter().map(f32::from).collect()),
        (D::U8(v), DataType::F64) => D::F64(v.into_iter().map(f64::from).collect()),
        (D::F32(v), DataType::F64) => D::F64(v.into_iter().map(f64::from).collect()),
        (D::I32(v), DataType::I64) => D::I64(v.into_iter().map(i64::from).collect()),
        (D::I32(v), DataType::F64) => D::F64(v.into_iter().map(f64::from).collect()),
        (data, _) => return Err(Tensor { name, shape, data }),
    };
    Ok(Tensor { name, shape, data })
}

/// Checks `inputs` against `sig` and returns them in signature order.
pub fn validate_inputs(
    model: &str,
    sig: &ModelSignature,
    inputs: Vec<Tensor>,
    limits: RequestLimits,
) -> Result<Vec<Tensor>, Error> {
    let mut slots: Vec<Option<Tensor>> = vec![None; sig.inputs.len()];
    for tensor in inputs {
        let Some((idx, spec)) = sig.input(&tensor.name) else {
            return Err(Error::invalid(format!(
                "unknown input '{}' for model '{model}'; expected one of: {}",
                tensor.name,
                sig.input_names()
            )));
        };
        if slots[idx].is_some() {
            return Err(Error::invalid(format!(
                "input '{}' is given more than once",
                tensor.name
            )));
        }
        let tensor = if tensor.dtype() == spec.dtype {
            tensor
        } else {
            widen(tensor, spec.dtype).map_err(|t| {
                let lossy = t.dtype().is_numeric() && spec.dtype.is_numeric();
                Error::invalid(format!(
                    "input '{}': expected datatype {}, got {}{}",
                    spec.name,
                    spec.dtype,
                    t.dtype(),
                    if lossy {
                        format!(
                            " (converting {} to {} could change values, so ballast does not; send {})",
                            t.dtype(),
                            spec.dtype,
                            spec.dtype
                        )
                    } else {
                        String::new()
                    }
                ))
            })?
        };
        if tensor.shape.len() != spec.shape.len() {
            return Err(Error::invalid(format!(
                "input '{}': expected shape {} (rank {}), got {} (rank {})",
                spec.name,
                fmt_shape(&spec.shape),
                spec.shape.len(),
                fmt_shape(&tensor.shape),
                tensor.shape.len()
            )));
        }
        for (axis, (&want, &got)) in spec.shape.iter().zip(&tensor.shape).enumerate() {
            if want >= 0 && want as usize != got {
                return Err(Error::invalid(format!(
                    "input '{}': dimension {axis} must be {want} (shape {}), got {got} (shape {})",
                    spec.name,
                    fmt_shape(&spec.shape),
                    fmt_shape(&tensor.shape)
                )));
            }
        }
        if limits.max_batch_size > 0 {
            let rows = tensor.rows();
            if rows == 0 {
                return Err(Error::invalid(format!(
                    "input '{}': batch dimension (dimension 0) must be at least 1, got 0",
                    spec.name
                )));
            }
            if rows > limits.max_request_rows {
                return Err(Error::invalid(format!(
                    "input '{}': {rows} rows exceed max_request_rows {} of model '{model}' (split the request, or raise max_request_rows in the model's config)",
                    spec.name, limits.max_request_rows
                )));
            }
        }
        if !(limits.allow_nan && limits.allow_inf)
            && let Some((pos, value)) = tensor.data.first_non_finite_where(|x| {
                (x.is_nan() && !limits.allow_nan) || (x.is_infinite() && !limits.allow_inf)
            })
        {
            let why = if value.is_nan() {
                "does not accept NaN (NaN means \"missing\" only to tree models and graphs that impute; allow_non_finite = true accepts it)"
            } else if limits.allow_nan {
                "accepts NaN as missing but not ±Inf, which XGBoost also refuses (allow_non_finite = true accepts it)"
            } else {
                "does not accept NaN or Inf (allow_non_finite = false)"
            };
            return Err(Error::invalid(format!(
                "input '{}': element {pos} is {value}, but model '{model}' {why}",
                spec.name
            )));
        }
        slots[idx] = Some(tensor);
    }
    let mut ordered = Vec::with_capacity(slots.len());
    for (slot, spec) in slots.into_iter().zip(&sig.inputs) {
        match slot {
            Some(t) => ordered.push(t),
            None => {
                return Err(Error::invalid(format!(
                    "missing input '{}' for model '{model}'",
                    spec.describe()
                )));
            }
        }
    }
    if limits.max_batch_size > 0
        && let Some(first) = ordered.first()
    {
        let rows = first.rows();
        if let Some(other) = ordered.iter().find(|t| t.rows() != rows) {
            return Err(Error::invalid(format!(
                "inputs disagree on the batch dimension: '{}' has {rows} rows, '{}' has {}",
                first.name,
                other.name,
                other.rows()
            )));
        }
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::TensorSpec;
    use crate::tensor::TensorData;

    fn sig() -> ModelSignature {
        ModelSignature {
            inputs: vec![
                TensorSpec::new("a", DataType::F32, vec![-1, 2]),
                TensorSpec::new("b", DataType::I64, vec![-1]),
            ],
            outputs: vec![TensorSpec::new("y", DataType::F32, vec![-1, 1])],
        }
    }
    const LIMITS: RequestLimits = RequestLimits {
        max_batch_size: 4,
        max_request_rows: 8,
        allow_nan: false,
        allow_inf: false,
    };

    fn a(rows: usize) -> Tensor {
        Tensor::new("a", vec![rows, 2], TensorData::F32(vec![1.0; rows * 2])).unwrap()
    }
    fn b(rows: usize) -> Tensor {
        Tensor::new("b", vec![rows], TensorData::I64(vec![1; rows])).unwrap()
    }
    fn err(inputs: Vec<Tensor>) -> String {
        validate_inputs("m", &sig(), inputs, LIMITS)
            .unwrap_err()
            .message
    }

    #[test]
    fn accepts_and_orders_inputs_by_signature() {
        let ok = validate_inputs("m", &sig(), vec![b(2), a(2)], LIMITS).unwrap();
        assert_eq!(ok[0].name, "a");
        assert_eq!(ok[1].name, "b");
    }

    #[test]
    fn rejects_unknown_missing_and_duplicate_inputs() {
        let unknown = Tensor::new("zz", vec![1], TensorData::I64(vec![1])).unwrap();
        assert!(
            err(vec![unknown, a(1), b(1)])
                .contains("unknown input 'zz' for model 'm'; expected one of: a, b")
        );
        assert!(err(vec![a(1)]).contains("missing input 'b (INT64 [-1])'"));
        assert!(err(vec![a(1), a(1), b(1)]).contains("'a' is given more than once"));
    }

    #[test]
    fn rejects_wrong_dtype_rank_and_dimension() {
        let wrong_dtype = Tensor::new("a", vec![1, 2], TensorData::F64(vec![0.0; 2])).unwrap();
        let e = err(vec![wrong_dtype, b(1)]);
        assert!(
            e.contains("input 'a': expected datatype FP32, got FP64"),
            "{e}"
        );
        assert!(e.contains("could change values"), "{e}");
        let strings = Tensor::new("b", vec![1], TensorData::Bytes(vec![b"1".to_vec()])).unwrap();
        let e = err(vec![a(1), strings]);
        assert!(e.ends_with("expected datatype INT64, got BYTES"), "{e}");
        let wrong_rank = Tensor::new("a", vec![2], TensorData::F32(vec![0.0; 2])).unwrap();
        assert!(
            err(vec![wrong_rank, b(1)])
                .contains("expected shape [-1,2] (rank 2), got [2] (rank 1)")
        );
        let wrong_dim = Tensor::new("a", vec![1, 3], TensorData::F32(vec![0.0; 3])).unwrap();
        assert!(err(vec![wrong_dim, b(1)]).contains("dimension 1 must be 2"));
    }

    #[test]
    fn lossless_datatypes_are_widened() {
        let int32 = Tensor::new("b", vec![2], TensorData::I32(vec![-7, 1 << 30])).unwrap();
        let ok = validate_inputs("m", &sig(), vec![a(2), int32], LIMITS).unwrap();
        assert_eq!(ok[1].data, TensorData::I64(vec![-7, 1 << 30]));
        let f64_sig = ModelSignature {
            inputs: vec![TensorSpec::new("a", DataType::F64, vec![-1, 2])],
            outputs: vec![],
        };
        let narrow = Tensor::new("a", vec![1, 2], TensorData::F32(vec![0.1, 2.5])).unwrap();
        let ok = validate_inputs("m", &f64_sig, vec![narrow], LIMITS).unwrap();
        assert_eq!(ok[0].data, TensorData::F64(vec![f64::from(0.1f32), 2.5]));
        let half = TensorData::F16(vec![crate::tensor::f16::from_f32(0.1), 255u8.into()]);
        let ok = validate_inputs(
            "m",
            &f64_sig,
            vec![Tensor::new("a", vec![1, 2], half).unwrap()],
            LIMITS,
        )
        .unwrap();
        assert_eq!(
            ok[0].data,
            TensorData::F64(vec![f64::from(crate::tensor::f16::from_f32(0.1)), 255.0])
        );
        let bytes = Tensor::new("a", vec![1, 2], TensorData::U8(vec![0, 255])).unwrap();
        let ok = validate_inputs("m", &f64_sig, vec![bytes], LIMITS).unwrap();
        assert_eq!(ok[0].data, TensorData::F64(vec![0.0, 255.0]));
        let u8_sig = ModelSignature {
            inputs: vec![TensorSpec::new("a", DataType::U8, vec![-1, 2])],
            outputs: vec![],
        };
        let wide = Tensor::new("a", vec![1, 2], TensorData::I32(vec![0, 255])).unwrap();
        let e = validate_inputs("m", &u8_sig, vec![wide], LIMITS)
            .unwrap_err()
            .message;
        assert!(
            e.contains("expected datatype UINT8, got INT32 (converting"),
            "{e}"
        );
    }

    #[test]
    fn rows_beyond_the_batch_size_are_served_up_to_max_request_rows() {
        assert!(validate_inputs("m", &sig(), vec![a(5), b(5)], LIMITS).is_ok());
        let e = err(vec![a(9), b(9)]);
        assert!(
            e.contains("9 rows exceed max_request_rows 8 of model 'm'"),
            "{e}"
        );
        assert!(err(vec![a(2), b(3)]).contains("disagree on the batch dimension"));
        assert!(err(vec![a(0), b(0)]).contains("must be at least 1"));
    }

    #[test]
    fn rejects_non_finite_unless_allowed() {
        let nan = Tensor::new("a", vec![1, 2], TensorData::F32(vec![1.0, f32::NAN])).unwrap();
        let inf = Tensor::new("a", vec![1, 2], TensorData::F32(vec![f32::INFINITY, 1.0])).unwrap();
        assert!(err(vec![nan.clone(), b(1)]).contains("input 'a': element 1 is NaN"));
        let nan_only = RequestLimits {
            allow_nan: true,
            ..LIMITS
        };
        assert!(validate_inputs("m", &sig(), vec![nan.clone(), b(1)], nan_only).is_ok());
        let e = validate_inputs("m", &sig(), vec![inf.clone(), b(1)], nan_only)
            .unwrap_err()
            .message;
        assert!(
            e.contains("element 0 is inf") && e.contains("not ±Inf"),
            "{e}"
        );
        let all = RequestLimits {
            allow_inf: true,
            ..nan_only
        };
        assert!(validate_inputs("m", &sig(), vec![inf, b(1)], all).is_ok());
    }
}
