//! ONNX through tract: pure Rust, so a fresh machine needs nothing else. The optimised plan is
//! built once at load and shared by every engine thread; each `run` gets its own state.

use std::path::Path;
use std::sync::Arc;

use ballast_core::{DataType, ModelSignature, Tensor, TensorData, TensorSpec};
use tract_onnx::prelude::{
    DatumType, Framework, InferenceModelExt, IntoTValue, TValue, TVec, TractResult, TypedFact,
    TypedModel, TypedSimplePlan, tract_ndarray,
};
use tract_onnx::tract_core::model::IntoRunnable;

use crate::{Backend, BackendError};

pub struct TractBackend {
    plan: Arc<TypedSimplePlan>,
    signature: ModelSignature,
}

impl TractBackend {
    /// Loads and optimises an ONNX file. Errors name the file and, for unsupported operators,
    /// the operator.
    pub fn load(path: &Path) -> Result<Self, BackendError> {
        let load_err = |reason: String| BackendError::Load {
            path: path.display().to_string(),
            reason: format!(
                "{reason} (the ONNX Runtime backend runs the full ONNX operator set: install \
                 onnxruntime and set backend = \"onnxruntime\" or \"auto\")"
            ),
        };
        let mut model = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(|e| load_err(format!("{e:#}")))?;
        dedupe_node_names(&mut model);
        name_unknown_dims(&mut model).map_err(|e| load_err(format!("{e:#}")))?;
        let unsupported: std::collections::BTreeSet<String> = model
            .nodes
            .iter()
            .filter_map(|n| {
                let name = n.op.name();
                name.strip_prefix("Unimplemented(")
                    .and_then(|s| s.strip_suffix(')'))
                    .map(str::to_string)
            })
            .collect();
        if !unsupported.is_empty() {
            let ops: Vec<String> = unsupported.into_iter().collect();
            return Err(load_err(format!(
                "tract does not implement the operator(s) {}",
                ops.join(", ")
            )));
        }
        let typed = model
            .into_optimized()
            .map_err(|e| load_err(format!("tract cannot optimise this graph: {e:#}")))?;
        let signature = signature_of(&typed).map_err(load_err)?;
        let plan = typed
            .into_runnable()
            .map_err(|e| load_err(format!("tract cannot plan this graph: {e:#}")))?;
        Ok(Self { plan, signature })
    }
}

/// skl2onnx and other exporters leave the batch dimension neither sized nor named (`[?, 8]`),
/// which tract cannot type ("Source node without a determined fact"). Unknown input
/// dimensions become symbols — `batch` for the first, `<input>_<axis>` for others — as if the
/// file had named them.
fn name_unknown_dims(model: &mut tract_onnx::prelude::InferenceModel) -> TractResult<()> {
    use tract_onnx::prelude::TDim;
    use tract_onnx::tract_hir::infer::GenericFactoid;
    for i in 0..model.inputs.len() {
        let fact = model.input_fact(i)?.clone();
        if fact.shape.is_open() {
            continue;
        }
        let mut shape = fact.shape.clone();
        let rank = shape.dims().count();
        let name = model.node(model.inputs[i].node).name.clone();
        let mut changed = false;
        for axis in 0..rank {
            if shape.dim(axis) == Some(GenericFactoid::Any) {
                let symbol = if axis == 0 {
                    model.symbols.sym("batch")
                } else {
                    model.symbols.sym(&format!("{name}_{axis}"))
                };
                shape.set_dim(axis, TDim::Sym(symbol));
                changed = true;
            }
        }
        if changed {
            model.set_input_fact(i, fact.with_shape(shape))?;
        }
    }
    Ok(())
}

/// ONNX keeps node names and tensor names in separate namespaces, so a node may share its
/// name with an initializer; tract names constants after their tensors and then refuses the
/// duplicate. Renaming colliding nodes keeps such (valid) models loadable.
fn dedupe_node_names(model: &mut tract_onnx::prelude::InferenceModel) {
    let mut seen = std::collections::HashSet::new();
    for node in model.nodes.iter_mut() {
        if !seen.insert(node.name.clone()) {
            let mut n = 1;
            while !seen.insert(format!("{}.{n}", node.name)) {
                n += 1;
            }
            node.name = format!("{}.{n}", node.name);
        }
    }
}

fn dtype_of(dt: DatumType, what: &str) -> Result<DataType, String> {
    Ok(match dt {
        DatumType::Bool => DataType::Bool,
        DatumType::U8 => DataType::U8,
        DatumType::F16 => DataType::F16,
        DatumType::I32 => DataType::I32,
        DatumType::I64 => DataType::I64,
        DatumType::F32 => DataType::F32,
        DatumType::F64 => DataType::F64,
        DatumType::String => DataType::Bytes,
        other => {
            return Err(format!(
                "{what} has datatype {other:?}, which ballast does not serve yet"
            ));
        }
    })
}

fn spec_of(name: String, fact: &TypedFact, what: &str) -> Result<TensorSpec, String> {
    let dtype = dtype_of(fact.datum_type, what)?;
    let shape = fact
        .shape
        .iter()
        .map(|d| d.as_i64().unwrap_or(-1))
        .collect();
    Ok(TensorSpec::new(name, dtype, shape))
}

fn signature_of(model: &TypedModel) -> Result<ModelSignature, String> {
    let mut inputs = Vec::new();
    for (ix, outlet) in model
        .input_outlets()
        .map_err(|e| e.to_string())?
        .iter()
        .enumerate()
    {
        let name = model.node(outlet.node).name.clone();
        let fact = model.input_fact(ix).map_err(|e| e.to_string())?;
        inputs.push(spec_of(name.clone(), fact, &format!("input '{name}'"))?);
    }
    let mut outputs = Vec::new();
    for (ix, outlet) in model
        .output_outlets()
        .map_err(|e| e.to_string())?
        .iter()
        .enumerate()
    {
        let name = model
            .outlet_label(*outlet)
            .map(str::to_string)
            .unwrap_or_else(|| model.node(outlet.node).name.clone());
        let fact = model.output_fact(ix).map_err(|e| e.to_string())?;
        outputs.push(spec_of(name.clone(), fact, &format!("output '{name}'"))?);
    }
    Ok(ModelSignature { inputs, outputs })
}

fn to_tract(t: Tensor) -> Result<TValue, BackendError> {
    let shape = tract_ndarray::IxDyn(&t.shape);
    let bad = |e: tract_ndarray::ShapeError| {
        BackendError::InvalidInput(format!("input '{}': {e}", t.name))
    };
    let tensor: tract_onnx::prelude::Tensor = match t.data {
        TensorData::Bool(v) => tract_ndarray::ArrayD::from_shape_vec(shape, v)
            .map_err(bad)?
            .into(),
        TensorData::U8(v) => tract_ndarray::ArrayD::from_shape_vec(shape, v)
            .map_err(bad)?
            .into(),
        TensorData::F16(v) => tract_ndarray::ArrayD::from_shape_vec(shape, v)
            .map_err(bad)?
            .into(),
        TensorData::I32(v) => tract_ndarray::ArrayD::from_shape_vec(shape, v)
            .map_err(bad)?
            .into(),
        TensorData::I64(v) => tract_ndarray::ArrayD::from_shape_vec(shape, v)
            .map_err(bad)?
            .into(),
        TensorData::F32(v) => tract_ndarray::ArrayD::from_shape_vec(shape, v)
            .map_err(bad)?
            .into(),
        TensorData::F64(v) => tract_ndarray::ArrayD::from_shape_vec(shape, v)
            .map_err(bad)?
            .into(),
        TensorData::Bytes(v) => {
            let strings = v
                .into_iter()
                .enumerate()
                .map(|(i, b)| {
                    String::from_utf8(b).map_err(|_| {
                        BackendError::InvalidInput(format!(
                            "input '{}': BYTES element {i} is not UTF-8, which this ONNX string input requires",
                            t.name
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            tract_ndarray::ArrayD::from_shape_vec(shape, strings)
                .map_err(bad)?
                .into()
        }
    };
    Ok(tensor.into_tvalue())
}

fn collect<T: tract_onnx::prelude::Datum + Clone>(
    t: &tract_onnx::prelude::Tensor,
) -> TractResult<Vec<T>> {
    let view = t.to_plain_array_view::<T>()?;
    Ok(match view.as_slice() {
        Some(s) => s.to_vec(),
        None => view.iter().cloned().collect(),
    })
}

fn from_tract(spec: &TensorSpec, value: &TValue) -> Result<Tensor, BackendError> {
    let t: &tract_onnx::prelude::Tensor = value;
    let err = |e: tract_onnx::prelude::TractError| {
        BackendError::Compute(format!("output '{}': {e}", spec.name))
    };
    let data = match spec.dtype {
        DataType::Bool => TensorData::Bool(collect(t).map_err(err)?),
        DataType::U8 => TensorData::U8(collect(t).map_err(err)?),
        DataType::F16 => TensorData::F16(collect(t).map_err(err)?),
        DataType::I32 => TensorData::I32(collect(t).map_err(err)?),
        DataType::I64 => TensorData::I64(collect(t).map_err(err)?),
        DataType::F32 => TensorData::F32(collect(t).map_err(err)?),
        DataType::F64 => TensorData::F64(collect(t).map_err(err)?),
        DataType::Bytes => TensorData::Bytes(
            collect::<String>(t)
                .map_err(err)?
                .into_iter()
                .map(String::into_bytes)
                .collect(),
        ),
    };
    Tensor::new(spec.name.clone(), t.shape().to_vec(), data)
        .map_err(|e| BackendError::Compute(e.message))
}

impl Backend for TractBackend {
    fn engine(&self) -> &'static str {
        "tract"
    }

    fn signature(&self) -> &ModelSignature {
        &self.signature
    }

    fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
        let values: TVec<TValue> = inputs.into_iter().map(to_tract).collect::<Result<_, _>>()?;
        let outputs = self
            .plan
            .run(values)
            .map_err(|e| BackendError::Compute(format!("{e:#}")))?;
        crate::expect_outputs(&self.signature, outputs.len())?;
        self.signature
            .outputs
            .iter()
            .zip(outputs.iter())
            .map(|(spec, value)| from_tract(spec, value))
            .collect()
    }
}
