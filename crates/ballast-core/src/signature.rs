//! What a model takes and gives: named, typed tensors whose shapes may have variable (-1)
//! dimensions. Engines discover signatures; model config may complete or override them.

use crate::tensor::{DataType, fmt_shape};

/// One input or output of a model. `shape` uses -1 for a variable dimension, as in OIP metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DataType,
    pub shape: Vec<i64>,
}

impl TensorSpec {
    pub fn new(name: impl Into<String>, dtype: DataType, shape: Vec<i64>) -> Self {
        Self {
            name: name.into(),
            dtype,
            shape,
        }
    }

    /// `features (FP32 [-1,12])`
    pub fn describe(&self) -> String {
        format!("{} ({} {})", self.name, self.dtype, fmt_shape(&self.shape))
    }
}

/// The inputs and outputs of a model, in the engine's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSignature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

impl ModelSignature {
    pub fn input(&self, name: &str) -> Option<(usize, &TensorSpec)> {
        self.inputs.iter().enumerate().find(|(_, s)| s.name == name)
    }

    pub fn output(&self, name: &str) -> Option<(usize, &TensorSpec)> {
        self.outputs
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == name)
    }

    /// True when every input and output has a variable leading dimension, so requests can be
    /// concatenated along it and results split back.
    pub fn supports_batching(&self) -> bool {
        self.inputs
            .iter()
            .chain(&self.outputs)
            .all(|s| s.shape.first() == Some(&-1))
    }

    pub fn input_names(&self) -> String {
        self.inputs
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn output_names(&self) -> String {
        self.outputs
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
