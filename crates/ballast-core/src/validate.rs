//! Request validation against a model's signature: every problem is reported with the field,
//! what was expected and what came. Runs on the request path before a request is queued, so a
//! bad request never costs a queue slot or engine time.

use crate::error::Error;
use crate::signature::ModelSignature;
use crate::tensor::{Tensor, fmt_shape};

/// Limits a model applies to every request.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Largest leading dimension a request may carry when the model batches (0 = not batching).
    pub max_batch_size: usize,
    /// Whether NaN and ±Inf may appear in float inputs.
    pub allow_non_finite: bool,
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
        if tensor.dtype() != spec.dtype {
            return Err(Error::invalid(format!(
                "input '{}': expected datatype {}, got {}",
                spec.name,
                spec.dtype,
                tensor.dtype()
            )));
        }
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
            if rows > limits.max_batch_size {
                return Err(Error::invalid(format!(
                    "input '{}': batch dimension {rows} exceeds max_batch_size {} of model '{model}'",
                    spec.name, limits.max_batch_size
                )));
            }
        }
        if !limits.allow_non_finite
            && let Some((pos, value)) = tensor.data.first_non_finite()
        {
            return Err(Error::invalid(format!(
                "input '{}': element {pos} is {value}, but model '{model}' does not accept NaN or Inf (allow_non_finite = false)",
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
    use crate::tensor::{DataType, TensorData};

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
        allow_non_finite: false,
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
        assert!(
            err(vec![wrong_dtype, b(1)]).contains("input 'a': expected datatype FP32, got FP64")
        );
        let wrong_rank = Tensor::new("a", vec![2], TensorData::F32(vec![0.0; 2])).unwrap();
        assert!(
            err(vec![wrong_rank, b(1)])
                .contains("expected shape [-1,2] (rank 2), got [2] (rank 1)")
        );
        let wrong_dim = Tensor::new("a", vec![1, 3], TensorData::F32(vec![0.0; 3])).unwrap();
        assert!(err(vec![wrong_dim, b(1)]).contains("dimension 1 must be 2"));
    }

    #[test]
    fn rejects_batches_over_the_limit_and_disagreeing_rows() {
        assert!(err(vec![a(5), b(5)]).contains("batch dimension 5 exceeds max_batch_size 4"));
        assert!(err(vec![a(2), b(3)]).contains("disagree on the batch dimension"));
        assert!(err(vec![a(0), b(0)]).contains("must be at least 1"));
    }

    #[test]
    fn rejects_non_finite_unless_allowed() {
        let nan = Tensor::new("a", vec![1, 2], TensorData::F32(vec![1.0, f32::NAN])).unwrap();
        assert!(err(vec![nan.clone(), b(1)]).contains("input 'a': element 1 is NaN"));
        let allow = RequestLimits {
            allow_non_finite: true,
            ..LIMITS
        };
        assert!(validate_inputs("m", &sig(), vec![nan, b(1)], allow).is_ok());
    }
}
