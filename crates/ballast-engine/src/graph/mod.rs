//! The native ONNX-ML graph engine (`onnx-ml`): scikit-learn pipelines as skl2onnx exports
//! them, run without ONNX Runtime.
//!
//! Why our own interpreter rather than tract: tract implements almost none of the `ai.onnx.ml`
//! operators (`Scaler`, `LinearClassifier`, `Normalizer`, `ZipMap`, ...) and cannot type the
//! label outputs of the graphs it does load, while these graphs are small, shallow and made of
//! a few dozen operators. An interpreter over whole tensors, one node at a time in the file's
//! (topological) order, runs them at the cost of a few vector loops per node. Tree-ensemble
//! nodes inside a pipeline run on the native tree engine ([`crate::trees`]).
//!
//! Semantics follow ONNX Runtime's CPU kernels, which is what users compare against: the
//! binary special cases of `LinearClassifier`, `Normalizer`'s zero rows, `Imputer`'s NaN
//! matching, `ZipMap` served as the probability tensor under the graph output's name (the OIP
//! has no list-of-maps type). A graph that uses an operator outside [`SUPPORTED`] is a load
//! error naming it; `backend = "auto"` then tries tract.

mod ops;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use ballast_core::{DataType, ModelSignature, Tensor, TensorData, TensorSpec};
use tract_onnx::pb;
use tract_onnx::prelude::Framework;

use crate::{Backend, BackendError};
use ops::Op;

/// The engine name in metadata, logs and metric labels.
pub const ENGINE: &str = "onnx-ml";

/// Operators this engine runs (default domain and `ai.onnx.ml`).
pub const SUPPORTED: &[&str] = &[
    // ai.onnx.ml
    "ArrayFeatureExtractor",
    "Binarizer",
    "FeatureVectorizer",
    "Imputer",
    "LabelEncoder",
    "LinearClassifier",
    "LinearRegressor",
    "Normalizer",
    "OneHotEncoder",
    "Scaler",
    "TreeEnsembleClassifier",
    "TreeEnsembleRegressor",
    "ZipMap",
    // default domain
    "Abs",
    "Add",
    "ArgMax",
    "ArgMin",
    "Cast",
    "Clip",
    "Concat",
    "Constant",
    "Div",
    "Exp",
    "Flatten",
    "Gather",
    "Gemm",
    "Identity",
    "LeakyRelu",
    "Log",
    "MatMul",
    "Max",
    "Min",
    "Mul",
    "Neg",
    "Pow",
    "Reciprocal",
    "Relu",
    "Reshape",
    "Sigmoid",
    "Softmax",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Tanh",
    "Unsqueeze",
];

/// A tensor between nodes: a shape and row-major data (strings as UTF-8 bytes).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Value {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Value {
    pub(crate) fn new(shape: Vec<usize>, data: TensorData) -> Result<Self, String> {
        let count: usize = shape.iter().product();
        if count != data.len() {
            return Err(format!(
                "internal: shape {shape:?} needs {count} elements, the data has {}",
                data.len()
            ));
        }
        Ok(Self { shape, data })
    }
}

/// One node, compiled: its operator with parsed attributes and its value slots.
struct Step {
    op: Op,
    /// Slot per input; `None` for an omitted optional input (`""`).
    inputs: Vec<Option<usize>>,
    outputs: Vec<usize>,
    /// `op_type 'name'`, for error messages.
    label: String,
}

/// A loaded ONNX-ML graph behind the [`Backend`] seam.
pub struct GraphBackend {
    steps: Vec<Step>,
    constants: Vec<(usize, Arc<Value>)>,
    slots: usize,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
    signature: ModelSignature,
    nan_is_missing: bool,
}

impl std::fmt::Debug for GraphBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphBackend")
            .field("nodes", &self.steps.len())
            .field("signature", &self.signature)
            .finish()
    }
}

/// The operators of a graph that this engine does not run (empty when it runs them all).
pub fn unsupported_ops(path: &Path) -> Result<Vec<String>, String> {
    let model = read(path)?;
    let graph = model.graph.as_ref().ok_or("the ONNX file has no graph")?;
    let mut missing: Vec<String> = graph
        .node
        .iter()
        .filter(|n| !SUPPORTED.contains(&n.op_type.as_str()))
        .map(|n| n.op_type.clone())
        .collect();
    missing.sort();
    missing.dedup();
    Ok(missing)
}

/// True when the graph uses an operator of the `ai.onnx.ml` domain.
pub fn uses_onnx_ml(path: &Path) -> bool {
    read(path)
        .ok()
        .and_then(|m| m.graph)
        .is_some_and(|g| g.node.iter().any(|n| n.domain == "ai.onnx.ml"))
}

/// True when the graph replaces NaN by imputation (`Imputer` with a NaN `replaced_value_float`,
/// skl2onnx's `SimpleImputer`), so a NaN input means "missing" to it on any engine.
pub fn imputes_nan(path: &Path) -> bool {
    read(path)
        .ok()
        .and_then(|m| m.graph)
        .is_some_and(|g| g.node.iter().any(ops::imputes_nan))
}

/// The model with every `ZipMap` that makes a graph output removed, that output now the
/// probability tensor the `ZipMap` read (float `[N, classes]`), as protobuf bytes; `None` when
/// there is no such `ZipMap`. This is how ONNX Runtime serves skl2onnx's default classifiers
/// (`zipmap=True`), whose list-of-maps output has no Open Inference Protocol form.
///
/// The bytes are re-encoded from tract's ONNX protobuf types, which lack the model's local
/// functions and training info and type only tensors; such models are left alone (`None`),
/// as are graphs whose other outputs are not tensors.
pub fn without_zipmap(path: &Path) -> Result<Option<Vec<u8>>, String> {
    use prost::Message;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let extras = ModelExtras::decode(bytes.as_slice())
        .map_err(|e| format!("not a readable ONNX file: {e}"))?;
    if !extras.training_info.is_empty() || !extras.functions.is_empty() {
        return Ok(None);
    }
    let mut model = pb::ModelProto::decode(bytes.as_slice())
        .map_err(|e| format!("not a readable ONNX file: {e}"))?;
    let Some(graph) = model.graph.as_mut() else {
        return Ok(None);
    };
    let zipmaps: Vec<(usize, String, String, usize)> = graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op_type == "ZipMap")
        .filter_map(|(i, n)| {
            let out = n.output.first()?;
            let input = n.input.first()?;
            graph.output.iter().any(|o| &o.name == out).then(|| {
                let classes = n
                    .attribute
                    .iter()
                    .find(|a| a.name == "classlabels_int64s" || a.name == "classlabels_strings")
                    .map_or(0, |a| a.ints.len().max(a.strings.len()));
                (i, input.clone(), out.clone(), classes)
            })
        })
        .collect();
    if zipmaps.is_empty() {
        return Ok(None);
    }
    for (i, input, output, classes) in &zipmaps {
        let node = &mut graph.node[*i];
        node.op_type = "Identity".into();
        node.domain = String::new();
        node.attribute.clear();
        node.input = vec![input.clone()];
        node.output = vec![output.clone()];
        if let Some(o) = graph.output.iter_mut().find(|o| &o.name == output) {
            use pb::tensor_shape_proto::{Dimension, dimension};
            let dim = |v: Option<i64>| Dimension {
                denotation: String::new(),
                value: v.map(dimension::Value::DimValue),
            };
            o.r#type = Some(pb::TypeProto {
                denotation: String::new(),
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: 1,
                    shape: Some(pb::TensorShapeProto {
                        dim: vec![dim(None), dim((*classes > 0).then_some(*classes as i64))],
                    }),
                })),
            });
        }
    }
    // Re-encoding through types that type only tensors: leave models it would damage alone.
    if graph.output.iter().any(|o| o.r#type.is_none()) {
        return Ok(None);
    }
    // Hints without a type (sequence or map value_info) are dropped rather than sent untyped.
    graph.value_info.retain(|v| v.r#type.is_some());
    Ok(Some(model.encode_to_vec()))
}

/// The `ModelProto` fields that tract's protobuf types do not carry.
#[derive(Clone, PartialEq, prost::Message)]
struct ModelExtras {
    #[prost(bytes = "vec", repeated, tag = "20")]
    training_info: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "25")]
    functions: Vec<Vec<u8>>,
}

fn read(path: &Path) -> Result<pb::ModelProto, String> {
    tract_onnx::onnx()
        .proto_model_for_path(path)
        .map_err(|e| format!("not a readable ONNX file: {e:#}"))
}

impl GraphBackend {
    /// Loads an ONNX file whose operators are all in [`SUPPORTED`].
    pub fn load(path: &Path) -> Result<Self, BackendError> {
        let load_err = |reason: String| BackendError::Load {
            path: path.display().to_string(),
            reason,
        };
        let model = read(path).map_err(load_err)?;
        Self::from_model(&model).map_err(load_err)
    }

    fn from_model(model: &pb::ModelProto) -> Result<Self, String> {
        let graph = model.graph.as_ref().ok_or("the ONNX file has no graph")?;
        let opset = model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(13, |o| o.version);

        let missing: Vec<&str> = {
            let mut m: Vec<&str> = graph
                .node
                .iter()
                .map(|n| n.op_type.as_str())
                .filter(|op| !SUPPORTED.contains(op))
                .collect();
            m.sort_unstable();
            m.dedup();
            m
        };
        if !missing.is_empty() {
            return Err(format!(
                "the native onnx-ml engine does not implement the operator(s) {}",
                missing.join(", ")
            ));
        }

        let mut slot_of: HashMap<String, usize> = HashMap::new();
        let mut constants = Vec::new();
        for init in &graph.initializer {
            let value = ops::tensor_from_proto(init)
                .map_err(|e| format!("initializer '{}': {e}", init.name))?;
            let slot = slot_of.len();
            slot_of.insert(init.name.clone(), slot);
            constants.push((slot, Arc::new(value)));
        }

        let mut inputs = Vec::new();
        let mut input_specs = Vec::new();
        for input in &graph.input {
            if slot_of.contains_key(&input.name) {
                continue; // an initializer listed as an input (IR < 4): a constant
            }
            let (dtype, shape) = value_type(input)
                .ok_or_else(|| format!("graph input '{}' is not a tensor", input.name))?;
            let dtype = dtype.map_err(|e| format!("graph input '{}': {e}", input.name))?;
            let slot = slot_of.len();
            slot_of.insert(input.name.clone(), slot);
            inputs.push(slot);
            input_specs.push(TensorSpec::new(input.name.clone(), dtype, shape));
        }

        let mut steps = Vec::new();
        let mut nan_is_missing = false;
        for node in &graph.node {
            let label = format!("{} '{}'", node.op_type, node.name);
            let op = Op::compile(node, opset).map_err(|e| format!("node {label}: {e}"))?;
            nan_is_missing |= ops::imputes_nan(node) || op.is_trees();
            if let Op::Constant(value) = op {
                let out = node
                    .output
                    .first()
                    .ok_or_else(|| format!("node {label} has no output"))?;
                let slot = slot_of.len();
                slot_of.insert(out.clone(), slot);
                constants.push((slot, value));
                continue;
            }
            let mut ins = Vec::with_capacity(node.input.len());
            for name in &node.input {
                if name.is_empty() {
                    ins.push(None);
                    continue;
                }
                let slot = slot_of.get(name).copied().ok_or_else(|| {
                    format!(
                        "node {label} reads '{name}', which no earlier node, input or initializer \
                         produces (the graph's nodes must be in topological order)"
                    )
                })?;
                ins.push(Some(slot));
            }
            let mut outs = Vec::with_capacity(node.output.len());
            for name in &node.output {
                let slot = slot_of.len();
                // An unused optional output ("") still gets a private slot.
                if !name.is_empty() {
                    slot_of.insert(name.clone(), slot);
                } else {
                    slot_of.insert(format!("\0unused{slot}"), slot);
                }
                outs.push(slot);
            }
            steps.push(Step {
                op,
                inputs: ins,
                outputs: outs,
                label,
            });
        }

        let mut outputs = Vec::new();
        let mut output_specs = Vec::new();
        for output in &graph.output {
            let slot = slot_of
                .get(&output.name)
                .copied()
                .ok_or_else(|| format!("graph output '{}' is produced by no node", output.name))?;
            outputs.push(slot);
            let spec = match value_type(output) {
                Some((dtype, shape)) => {
                    let dtype =
                        dtype.map_err(|e| format!("graph output '{}': {e}", output.name))?;
                    TensorSpec::new(output.name.clone(), dtype, shape)
                }
                // Not a tensor type: a ZipMap's sequence of maps, served as its input.
                None => zipmap_spec(graph, &output.name)?,
            };
            output_specs.push(spec);
        }
        if outputs.is_empty() {
            return Err("the graph has no outputs".into());
        }
        Ok(Self {
            steps,
            constants,
            slots: slot_of.len(),
            inputs,
            outputs,
            signature: ModelSignature {
                inputs: input_specs,
                outputs: output_specs,
            },
            nan_is_missing,
        })
    }

    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
        if inputs.len() != self.inputs.len() {
            return Err(BackendError::InvalidInput(format!(
                "the model takes {} input tensor(s), got {}",
                self.inputs.len(),
                inputs.len()
            )));
        }
        let mut slots: Vec<Option<Arc<Value>>> = vec![None; self.slots];
        for (slot, value) in &self.constants {
            slots[*slot] = Some(Arc::clone(value));
        }
        for (slot, tensor) in self.inputs.iter().zip(inputs) {
            slots[*slot] = Some(Arc::new(Value {
                shape: tensor.shape,
                data: tensor.data,
            }));
        }
        for step in &self.steps {
            let mut args: Vec<Option<&Value>> = Vec::with_capacity(step.inputs.len());
            for input in &step.inputs {
                args.push(match input {
                    Some(slot) => Some(slots[*slot].as_deref().ok_or_else(|| {
                        BackendError::Compute(format!("{}: an input was not computed", step.label))
                    })?),
                    None => None,
                });
            }
            let results = step
                .op
                .run(&args)
                .map_err(|e| BackendError::Compute(format!("{}: {e}", step.label)))?;
            for (slot, value) in step.outputs.iter().zip(results) {
                slots[*slot] = Some(Arc::new(value));
            }
        }
        let mut out = Vec::with_capacity(self.outputs.len());
        for (spec, slot) in self.signature.outputs.iter().zip(&self.outputs) {
            let value = slots[*slot].take().ok_or_else(|| {
                BackendError::Compute(format!("output '{}' was not computed", spec.name))
            })?;
            let value = Arc::try_unwrap(value).unwrap_or_else(|shared| (*shared).clone());
            let data = ops::cast_owned(value.data, spec.dtype)
                .map_err(|e| BackendError::Compute(format!("output '{}': {e}", spec.name)))?;
            out.push(
                Tensor::new(spec.name.clone(), value.shape, data)
                    .map_err(|e| BackendError::Compute(e.message))?,
            );
        }
        Ok(out)
    }
}

impl Backend for GraphBackend {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn signature(&self) -> &ModelSignature {
        &self.signature
    }

    fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
        self.run(inputs)
    }

    fn nan_is_missing(&self) -> bool {
        self.nan_is_missing
    }
}

/// The ONNX element type codes this engine handles, as ballast datatypes.
pub(crate) fn dtype_of_elem(elem: i32) -> Result<DataType, String> {
    Ok(match elem {
        1 => DataType::F32,
        2 => DataType::U8,
        10 => DataType::F16,
        6 => DataType::I32,
        7 => DataType::I64,
        8 => DataType::Bytes,
        9 => DataType::Bool,
        11 => DataType::F64,
        other => {
            return Err(format!(
                "ONNX element type {other} ({}) is not served by the onnx-ml engine",
                elem_name(other)
            ));
        }
    })
}

pub(crate) fn elem_name(elem: i32) -> &'static str {
    match elem {
        1 => "float",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "double",
        12 => "uint32",
        13 => "uint64",
        16 => "bfloat16",
        _ => "unknown",
    }
}

/// A value's tensor type (datatype, dims with -1 where unknown), or `None` when it is not a
/// tensor (tract's protobuf types carry only tensor types; a sequence decodes as no type).
fn value_type(v: &pb::ValueInfoProto) -> Option<(Result<DataType, String>, Vec<i64>)> {
    let pb::type_proto::Value::TensorType(t) = v.r#type.as_ref()?.value.as_ref()?;
    let dims = t
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v > 0 => *v,
                    _ => -1,
                })
                .collect()
        })
        .unwrap_or_else(|| vec![-1]);
    Some((dtype_of_elem(t.elem_type), dims))
}

/// The spec of a graph output made by `ZipMap`: float scores, one column per class label.
fn zipmap_spec(graph: &pb::GraphProto, name: &str) -> Result<TensorSpec, String> {
    let node = graph
        .node
        .iter()
        .find(|n| n.output.iter().any(|o| o == name))
        .ok_or_else(|| format!("graph output '{name}' is produced by no node"))?;
    if node.op_type != "ZipMap" {
        return Err(format!(
            "graph output '{name}' is not a tensor (it comes from a {} node)",
            node.op_type
        ));
    }
    let classes = node
        .attribute
        .iter()
        .find(|a| a.name == "classlabels_int64s" || a.name == "classlabels_strings")
        .map_or(0, |a| a.ints.len().max(a.strings.len()));
    let cols = if classes > 0 { classes as i64 } else { -1 };
    Ok(TensorSpec::new(name, DataType::F32, vec![-1, cols]))
}

#[cfg(test)]
mod tests;
