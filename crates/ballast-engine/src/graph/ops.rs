//! The operators of the onnx-ml engine: attributes parsed once at load ([`Op::compile`]), then
//! run on whole tensors ([`Op::run`]). Numeric work is done in the input's precision (f32 or
//! f64), as ONNX Runtime's kernels do; the ML operators whose ONNX outputs are float work in
//! f32.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use ballast_core::{DataType, Tensor, TensorData};
use tract_onnx::pb;

use super::Value;
use crate::Backend;
use crate::trees::TreeBackend;

type R<T> = Result<T, String>;

pub(crate) enum Op {
    Identity,
    Constant(Arc<Value>),
    Cast(DataType),
    Scaler {
        offset: Vec<f32>,
        scale: Vec<f32>,
    },
    Normalizer(Norm),
    ImputerF {
        imputed: Vec<f32>,
        replaced: f32,
    },
    ImputerI {
        imputed: Vec<i64>,
        replaced: i64,
    },
    Binarizer(f32),
    LinearClassifier(Box<LinearClassifier>),
    LinearRegressor(Box<LinearRegressor>),
    ArrayFeatureExtractor,
    Gather {
        axis: i64,
    },
    OneHotEncoder(Box<OneHotEncoder>),
    LabelEncoder(Box<LabelEncoder>),
    FeatureVectorizer(Vec<usize>),
    Trees(Box<Trees>),
    MatMul,
    Gemm {
        alpha: f64,
        beta: f64,
        trans_a: bool,
        trans_b: bool,
    },
    Binary(Bin),
    /// `Sum`, `Max`, `Min` over any number of inputs.
    Variadic(Bin),
    Unary(Un),
    Clip {
        min: Option<f32>,
        max: Option<f32>,
    },
    Softmax {
        axis: i64,
        /// Opset < 13: the input is seen as 2-D, `[prod(..axis), prod(axis..)]`.
        coerce_2d: bool,
    },
    ArgMax {
        axis: i64,
        keepdims: bool,
        last: bool,
        max: bool,
    },
    Reshape {
        allowzero: bool,
    },
    Concat {
        axis: i64,
    },
    Flatten {
        axis: i64,
    },
    /// Axes from the attribute (opset < 13) or, when `None`, from the second input.
    Squeeze(Option<Vec<i64>>),
    Unsqueeze(Option<Vec<i64>>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Norm {
    Max,
    L1,
    L2,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Bin {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Un {
    Relu,
    Sigmoid,
    Tanh,
    Exp,
    Log,
    Abs,
    Neg,
    Sqrt,
    Reciprocal,
    LeakyRelu(f32),
}

/// ONNX-ML `post_transform`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Post {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

#[derive(Debug, Clone)]
pub(crate) enum Labels {
    Int(Vec<i64>),
    /// UTF-8 bytes, as BYTES outputs carry them (converted once, at load).
    Str(Vec<Vec<u8>>),
}

impl Labels {
    fn len(&self) -> usize {
        match self {
            Labels::Int(v) => v.len(),
            Labels::Str(v) => v.len(),
        }
    }
}

pub(crate) struct LinearClassifier {
    coefficients: Vec<f32>,
    intercepts: Vec<f32>,
    targets: usize,
    labels: Labels,
    post: Post,
}

pub(crate) struct LinearRegressor {
    coefficients: Vec<f32>,
    intercepts: Vec<f32>,
    targets: usize,
    post: Post,
}

pub(crate) struct OneHotEncoder {
    ints: HashMap<i64, usize>,
    strings: HashMap<Vec<u8>, usize>,
    width: usize,
    zeros: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Int(i64),
    Str(Vec<u8>),
    /// f32 bits (NaN keys never match, as in ONNX Runtime).
    Float(u32),
}

pub(crate) struct LabelEncoder {
    map: HashMap<Key, usize>,
    values: TensorData,
    default: TensorData,
    /// Opset 1 (`classes_strings`): integer inputs map back to the class strings, with
    /// `default_string` for an index outside them.
    reverse: Option<(Vec<Vec<u8>>, Vec<u8>)>,
}

pub(crate) struct Trees {
    backend: TreeBackend,
    features: usize,
}

impl Op {
    pub(crate) fn is_trees(&self) -> bool {
        matches!(self, Op::Trees(_))
    }

    /// Parses a node's attributes. `opset` is the default domain's version.
    pub(crate) fn compile(node: &pb::NodeProto, opset: i64) -> R<Op> {
        let a = Attrs(node);
        Ok(match node.op_type.as_str() {
            "Identity" | "ZipMap" => Op::Identity,
            "Constant" => Op::Constant(Arc::new(constant(&a)?)),
            "Cast" => Op::Cast(super::dtype_of_elem(a.int("to", 1) as i32)?),
            "Scaler" => Op::Scaler {
                offset: a.floats("offset").to_vec(),
                scale: a.floats("scale").to_vec(),
            },
            "Normalizer" => Op::Normalizer(match a.string("norm", "MAX").as_str() {
                "MAX" => Norm::Max,
                "L1" => Norm::L1,
                "L2" => Norm::L2,
                other => return Err(format!("norm '{other}' is not MAX, L1 or L2")),
            }),
            "Imputer" => {
                let ints = a.ints("imputed_value_int64s");
                if !ints.is_empty() {
                    Op::ImputerI {
                        imputed: ints.to_vec(),
                        replaced: a.int("replaced_value_int64", 0),
                    }
                } else {
                    Op::ImputerF {
                        imputed: a.floats("imputed_value_floats").to_vec(),
                        replaced: a.float("replaced_value_float", 0.0),
                    }
                }
            }
            "Binarizer" => Op::Binarizer(a.float("threshold", 0.0)),
            "LinearClassifier" => Op::LinearClassifier(Box::new(linear_classifier(&a)?)),
            "LinearRegressor" => {
                let coefficients = a.floats("coefficients").to_vec();
                let targets = a.int("targets", 1).max(1) as usize;
                let intercepts = a.floats("intercepts").to_vec();
                if coefficients.is_empty() || !coefficients.len().is_multiple_of(targets) {
                    return Err(format!(
                        "coefficients has {} values, not a multiple of targets ({targets})",
                        coefficients.len()
                    ));
                }
                if !intercepts.is_empty() && intercepts.len() != targets {
                    return Err(format!(
                        "intercepts has {} values for {targets} target(s)",
                        intercepts.len()
                    ));
                }
                Op::LinearRegressor(Box::new(LinearRegressor {
                    coefficients,
                    intercepts,
                    targets,
                    post: post_transform(&a)?,
                }))
            }
            "ArrayFeatureExtractor" => Op::ArrayFeatureExtractor,
            "Gather" => Op::Gather {
                axis: a.int("axis", 0),
            },
            "OneHotEncoder" => {
                let ints = a.ints("cats_int64s");
                let strings = a.strings("cats_strings");
                let width = ints.len().max(strings.len());
                if width == 0 {
                    return Err("neither cats_int64s nor cats_strings is set".into());
                }
                Op::OneHotEncoder(Box::new(OneHotEncoder {
                    ints: ints.iter().enumerate().map(|(i, &c)| (c, i)).collect(),
                    strings: strings
                        .iter()
                        .enumerate()
                        .map(|(i, s)| (s.to_vec(), i))
                        .collect(),
                    width,
                    zeros: a.int("zeros", 1) != 0,
                }))
            }
            "LabelEncoder" => Op::LabelEncoder(Box::new(label_encoder(&a)?)),
            "FeatureVectorizer" => Op::FeatureVectorizer(
                a.ints("inputdimensions")
                    .iter()
                    .map(|&d| usize::try_from(d).map_err(|_| format!("inputdimensions has {d}")))
                    .collect::<R<_>>()?,
            ),
            "TreeEnsembleClassifier" | "TreeEnsembleRegressor" => {
                let (backend, features) = TreeBackend::from_onnx_node(node)?;
                Op::Trees(Box::new(Trees { backend, features }))
            }
            "MatMul" => Op::MatMul,
            "Gemm" => Op::Gemm {
                alpha: a.float("alpha", 1.0) as f64,
                beta: a.float("beta", 1.0) as f64,
                trans_a: a.int("transA", 0) != 0,
                trans_b: a.int("transB", 0) != 0,
            },
            "Add" => Op::Binary(Bin::Add),
            "Sub" => Op::Binary(Bin::Sub),
            "Mul" => Op::Binary(Bin::Mul),
            "Div" => Op::Binary(Bin::Div),
            "Pow" => Op::Binary(Bin::Pow),
            "Sum" => Op::Variadic(Bin::Add),
            "Max" => Op::Variadic(Bin::Max),
            "Min" => Op::Variadic(Bin::Min),
            "Relu" => Op::Unary(Un::Relu),
            "Sigmoid" => Op::Unary(Un::Sigmoid),
            "Tanh" => Op::Unary(Un::Tanh),
            "Exp" => Op::Unary(Un::Exp),
            "Log" => Op::Unary(Un::Log),
            "Abs" => Op::Unary(Un::Abs),
            "Neg" => Op::Unary(Un::Neg),
            "Sqrt" => Op::Unary(Un::Sqrt),
            "Reciprocal" => Op::Unary(Un::Reciprocal),
            "LeakyRelu" => Op::Unary(Un::LeakyRelu(a.float("alpha", 0.01))),
            "Clip" => Op::Clip {
                min: (opset < 11).then(|| a.float("min", f32::MIN)),
                max: (opset < 11).then(|| a.float("max", f32::MAX)),
            },
            "Softmax" => Op::Softmax {
                axis: a.int("axis", if opset < 13 { 1 } else { -1 }),
                coerce_2d: opset < 13,
            },
            "ArgMax" | "ArgMin" => Op::ArgMax {
                axis: a.int("axis", 0),
                keepdims: a.int("keepdims", 1) != 0,
                last: a.int("select_last_index", 0) != 0,
                max: node.op_type == "ArgMax",
            },
            "Reshape" => Op::Reshape {
                allowzero: a.int("allowzero", 0) != 0,
            },
            "Concat" => Op::Concat {
                axis: a
                    .get("axis")
                    .map(|x| x.i)
                    .ok_or("Concat needs its axis attribute")?,
            },
            "Flatten" => Op::Flatten {
                axis: a.int("axis", 1),
            },
            "Squeeze" => Op::Squeeze((opset < 13).then(|| a.ints("axes").to_vec())),
            "Unsqueeze" => Op::Unsqueeze((opset < 13).then(|| a.ints("axes").to_vec())),
            other => return Err(format!("operator {other} is not implemented")),
        })
    }

    pub(crate) fn run(&self, inputs: &[Option<&Value>]) -> R<Vec<Value>> {
        let arg = |i: usize| -> R<&Value> {
            inputs
                .get(i)
                .copied()
                .flatten()
                .ok_or_else(|| format!("input {i} is missing"))
        };
        let one = |v: Value| Ok(vec![v]);
        match self {
            Op::Identity => one(arg(0)?.clone()),
            Op::Constant(v) => one((**v).clone()),
            Op::Cast(to) => {
                let x = arg(0)?;
                one(Value::new(x.shape.clone(), cast(&x.data, *to)?)?)
            }
            Op::Scaler { offset, scale } => one(scaler(arg(0)?, offset, scale)?),
            Op::Normalizer(norm) => one(normalize(arg(0)?, *norm)?),
            Op::ImputerF { imputed, replaced } => one(impute_f(arg(0)?, imputed, *replaced)?),
            Op::ImputerI { imputed, replaced } => one(impute_i(arg(0)?, imputed, *replaced)?),
            Op::Binarizer(t) => {
                let x = arg(0)?;
                let t = *t;
                let data = match &x.data {
                    TensorData::F32(v) => {
                        TensorData::F32(v.iter().map(|&x| if x > t { 1.0 } else { 0.0 }).collect())
                    }
                    TensorData::F64(v) => TensorData::F64(
                        v.iter()
                            .map(|&x| if x > t as f64 { 1.0 } else { 0.0 })
                            .collect(),
                    ),
                    other => return Err(type_err("Binarizer", other, "float or double")),
                };
                one(Value::new(x.shape.clone(), data)?)
            }
            Op::LinearClassifier(c) => c.run(arg(0)?),
            Op::LinearRegressor(r) => one(r.run(arg(0)?)?),
            Op::ArrayFeatureExtractor => one(array_feature_extractor(arg(0)?, arg(1)?)?),
            Op::Gather { axis } => one(gather(arg(0)?, arg(1)?, *axis)?),
            Op::OneHotEncoder(e) => one(e.run(arg(0)?)?),
            Op::LabelEncoder(e) => one(e.run(arg(0)?)?),
            Op::FeatureVectorizer(dims) => one(feature_vectorizer(inputs, dims)?),
            Op::Trees(t) => t.run(arg(0)?),
            Op::MatMul => one(matmul(arg(0)?, arg(1)?)?),
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => one(gemm(
                arg(0)?,
                arg(1)?,
                inputs.get(2).copied().flatten(),
                *alpha,
                *beta,
                *trans_a,
                *trans_b,
            )?),
            Op::Binary(op) => one(binary(*op, arg(0)?, arg(1)?)?),
            Op::Variadic(op) => {
                let mut acc = arg(0)?.clone();
                for i in 1..inputs.len() {
                    acc = binary(*op, &acc, arg(i)?)?;
                }
                one(acc)
            }
            Op::Unary(op) => one(unary(*op, arg(0)?)?),
            Op::Clip { min, max } => {
                let scalar = |i: usize| -> R<Option<f64>> {
                    match inputs.get(i).copied().flatten() {
                        None => Ok(None),
                        Some(v) => Ok(Some(
                            *to_f64(&v.data)?
                                .first()
                                .ok_or("Clip bounds must be scalars")?,
                        )),
                    }
                };
                let lo = min.map(f64::from).or(scalar(1)?);
                let hi = max.map(f64::from).or(scalar(2)?);
                let x = arg(0)?;
                let data = map_float(&x.data, "Clip", |v| {
                    let v = lo.map_or(v, |lo| v.max(lo));
                    hi.map_or(v, |hi| v.min(hi))
                })?;
                one(Value::new(x.shape.clone(), data)?)
            }
            Op::Softmax { axis, coerce_2d } => one(softmax(arg(0)?, *axis, *coerce_2d)?),
            Op::ArgMax {
                axis,
                keepdims,
                last,
                max,
            } => one(argmax(arg(0)?, *axis, *keepdims, *last, *max)?),
            Op::Reshape { allowzero } => one(reshape(arg(0)?, arg(1)?, *allowzero)?),
            Op::Concat { axis } => {
                let values: Vec<&Value> = (0..inputs.len()).map(arg).collect::<R<_>>()?;
                one(concat(&values, *axis)?)
            }
            Op::Flatten { axis } => {
                let x = arg(0)?;
                let axis = norm_axis(*axis, x.shape.len() + 1)?;
                let rows: usize = x.shape[..axis].iter().product();
                let cols: usize = x.shape[axis..].iter().product();
                one(Value::new(vec![rows, cols], x.data.clone())?)
            }
            Op::Squeeze(axes) => {
                let x = arg(0)?;
                let axes = match axes {
                    Some(a) => a.clone(),
                    None => match inputs.get(1).copied().flatten() {
                        Some(v) => to_i64(&v.data)?.into_owned(),
                        None => Vec::new(),
                    },
                };
                let rank = x.shape.len();
                let axes: Vec<usize> =
                    axes.iter().map(|&a| norm_axis(a, rank)).collect::<R<_>>()?;
                let shape: Vec<usize> = x
                    .shape
                    .iter()
                    .enumerate()
                    .filter(|(i, d)| {
                        if axes.is_empty() {
                            **d != 1
                        } else {
                            !axes.contains(i)
                        }
                    })
                    .map(|(_, d)| *d)
                    .collect();
                one(Value::new(shape, x.data.clone())?)
            }
            Op::Unsqueeze(axes) => {
                let x = arg(0)?;
                let axes = match axes {
                    Some(a) => a.clone(),
                    None => to_i64(&arg(1)?.data)?.into_owned(),
                };
                let rank = x.shape.len() + axes.len();
                let mut axes: Vec<usize> =
                    axes.iter().map(|&a| norm_axis(a, rank)).collect::<R<_>>()?;
                axes.sort_unstable();
                let mut shape = x.shape.clone();
                for a in axes {
                    shape.insert(a.min(shape.len()), 1);
                }
                one(Value::new(shape, x.data.clone())?)
            }
        }
    }
}

/// True for an `Imputer` that replaces NaN (skl2onnx's `SimpleImputer`).
pub(crate) fn imputes_nan(node: &pb::NodeProto) -> bool {
    node.op_type == "Imputer"
        && Attrs(node)
            .get("replaced_value_float")
            .is_some_and(|a| a.f.is_nan())
}

struct Attrs<'a>(&'a pb::NodeProto);

impl<'a> Attrs<'a> {
    fn get(&self, name: &str) -> Option<&'a pb::AttributeProto> {
        self.0.attribute.iter().find(|a| a.name == name)
    }
    fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).map_or(default, |a| a.i)
    }
    fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).map_or(default, |a| a.f)
    }
    fn string(&self, name: &str, default: &str) -> String {
        self.get(name).map_or_else(
            || default.to_string(),
            |a| String::from_utf8_lossy(&a.s).into_owned(),
        )
    }
    fn floats(&self, name: &str) -> &'a [f32] {
        self.get(name).map_or(&[], |a| a.floats.as_slice())
    }
    fn ints(&self, name: &str) -> &'a [i64] {
        self.get(name).map_or(&[], |a| a.ints.as_slice())
    }
    fn strings(&self, name: &str) -> &'a [Vec<u8>] {
        self.get(name).map_or(&[], |a| a.strings.as_slice())
    }
}

fn post_transform(a: &Attrs) -> R<Post> {
    Ok(match a.string("post_transform", "NONE").as_str() {
        "NONE" => Post::None,
        "LOGISTIC" => Post::Logistic,
        "SOFTMAX" => Post::Softmax,
        "SOFTMAX_ZERO" => Post::SoftmaxZero,
        "PROBIT" => Post::Probit,
        other => return Err(format!("post_transform '{other}' is not supported")),
    })
}

fn constant(a: &Attrs) -> R<Value> {
    if let Some(t) = a.get("value").and_then(|x| x.t.as_ref()) {
        return tensor_from_proto(t);
    }
    if let Some(x) = a.get("value_float") {
        return Value::new(vec![], TensorData::F32(vec![x.f]));
    }
    if let Some(x) = a.get("value_floats") {
        return Value::new(vec![x.floats.len()], TensorData::F32(x.floats.clone()));
    }
    if let Some(x) = a.get("value_int") {
        return Value::new(vec![], TensorData::I64(vec![x.i]));
    }
    if let Some(x) = a.get("value_ints") {
        return Value::new(vec![x.ints.len()], TensorData::I64(x.ints.clone()));
    }
    Err("Constant has no value, value_float(s) or value_int(s) attribute".into())
}

/// An ONNX `TensorProto` (initializer or constant) as a value.
pub(crate) fn tensor_from_proto(t: &pb::TensorProto) -> R<Value> {
    if t.data_location == Some(1) || !t.external_data.is_empty() {
        return Err(
            "its data is stored outside the .onnx file (external data), which the onnx-ml engine \
             does not read"
                .into(),
        );
    }
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
        .collect::<R<_>>()?;
    fn raw<const N: usize, T>(raw: &[u8], f: fn([u8; N]) -> T) -> R<Vec<T>> {
        if !raw.len().is_multiple_of(N) {
            return Err(format!(
                "raw data of {} bytes is not a multiple of {N}",
                raw.len()
            ));
        }
        Ok(raw
            .chunks_exact(N)
            .map(|c| {
                let mut b = [0u8; N];
                b.copy_from_slice(c);
                f(b)
            })
            .collect())
    }
    let has_raw = !t.raw_data.is_empty();
    let data = match t.data_type {
        1 if has_raw => TensorData::F32(raw(&t.raw_data, f32::from_le_bytes)?),
        1 => TensorData::F32(t.float_data.clone()),
        11 if has_raw => TensorData::F64(raw(&t.raw_data, f64::from_le_bytes)?),
        11 => TensorData::F64(t.double_data.clone()),
        7 if has_raw => TensorData::I64(raw(&t.raw_data, i64::from_le_bytes)?),
        7 => TensorData::I64(t.int64_data.clone()),
        6 if has_raw => TensorData::I32(raw(&t.raw_data, i32::from_le_bytes)?),
        6 => TensorData::I32(t.int32_data.clone()),
        2 if has_raw => TensorData::U8(t.raw_data.clone()),
        2 => TensorData::U8(t.int32_data.iter().map(|&x| x as u8).collect()),
        10 if has_raw => {
            TensorData::F16(raw(&t.raw_data, ballast_core::tensor::f16::from_le_bytes)?)
        }
        // FP16 in int32_data: the bit pattern in the low 16 bits (onnx.proto).
        10 => TensorData::F16(
            t.int32_data
                .iter()
                .map(|&x| ballast_core::tensor::f16::from_bits(x as u16))
                .collect(),
        ),
        9 if has_raw => TensorData::Bool(t.raw_data.iter().map(|&b| b != 0).collect()),
        9 => TensorData::Bool(t.int32_data.iter().map(|&b| b != 0).collect()),
        8 => TensorData::Bytes(t.string_data.clone()),
        other => {
            return Err(format!(
                "element type {other} ({}) is not supported by the onnx-ml engine",
                super::elem_name(other)
            ));
        }
    };
    Value::new(shape, data)
}

fn type_err(op: &str, data: &TensorData, want: &str) -> String {
    format!("{op} takes {want} tensors, got {}", data.dtype().as_str())
}

/// Numeric `data` as a `Cow<[$t]>`: borrowed when it already has the type, else each element
/// converted with `as` (BOOL as 0/1, FP16 through f32).
macro_rules! numeric_as {
    ($data:expr, $variant:ident, $t:ty) => {
        Ok(match $data {
            TensorData::$variant(v) => Cow::Borrowed(&v[..]),
            TensorData::F32(v) => Cow::Owned(v.iter().map(|&x| x as $t).collect()),
            TensorData::F64(v) => Cow::Owned(v.iter().map(|&x| x as $t).collect()),
            TensorData::F16(v) => Cow::Owned(v.iter().map(|&x| x.to_f32() as $t).collect()),
            TensorData::I64(v) => Cow::Owned(v.iter().map(|&x| x as $t).collect()),
            TensorData::I32(v) => Cow::Owned(v.iter().map(|&x| x as $t).collect()),
            TensorData::U8(v) => Cow::Owned(v.iter().map(|&x| x as $t).collect()),
            TensorData::Bool(v) => Cow::Owned(v.iter().map(|&x| u8::from(x) as $t).collect()),
            TensorData::Bytes(_) => return Err("expected a numeric tensor, got BYTES".into()),
        })
    };
}

/// Numeric data as f32 (borrowed when it already is).
#[allow(unreachable_patterns)] // the macro's own-type arm comes first
pub(crate) fn to_f32(data: &TensorData) -> R<Cow<'_, [f32]>> {
    numeric_as!(data, F32, f32)
}

#[allow(unreachable_patterns)] // the macro's own-type arm comes first
pub(crate) fn to_f64(data: &TensorData) -> R<Cow<'_, [f64]>> {
    numeric_as!(data, F64, f64)
}

#[allow(unreachable_patterns)] // the macro's own-type arm comes first
pub(crate) fn to_i64(data: &TensorData) -> R<Cow<'_, [i64]>> {
    numeric_as!(data, I64, i64)
}

/// [`cast`], moving the data when it already has the type.
pub(crate) fn cast_owned(data: TensorData, to: DataType) -> R<TensorData> {
    if data.dtype() == to {
        Ok(data)
    } else {
        cast(&data, to)
    }
}

/// ONNX `Cast` between the datatypes served here. Strings parse as numbers (an element that
/// does not parse is an error naming it) and numbers format as strings.
pub(crate) fn cast(data: &TensorData, to: DataType) -> R<TensorData> {
    if data.dtype() == to {
        return Ok(data.clone());
    }
    if let TensorData::Bytes(v) = data {
        let parse = |i: usize, b: &[u8]| -> R<f64> {
            let s = std::str::from_utf8(b).map_err(|_| format!("string {i} is not UTF-8"))?;
            s.trim()
                .parse::<f64>()
                .map_err(|_| format!("string {i} ('{s}') is not a number"))
        };
        let nums: Vec<f64> = v
            .iter()
            .enumerate()
            .map(|(i, b)| parse(i, b))
            .collect::<R<_>>()?;
        return cast(&TensorData::F64(nums), to);
    }
    Ok(match to {
        DataType::F32 => TensorData::F32(to_f32(data)?.into_owned()),
        DataType::F64 => TensorData::F64(to_f64(data)?.into_owned()),
        DataType::I64 => TensorData::I64(to_i64(data)?.into_owned()),
        DataType::I32 => TensorData::I32(to_i64(data)?.iter().map(|&x| x as i32).collect()),
        DataType::U8 => TensorData::U8(to_i64(data)?.iter().map(|&x| x as u8).collect()),
        DataType::F16 => TensorData::F16(
            to_f32(data)?
                .iter()
                .map(|&x| ballast_core::tensor::f16::from_f32(x))
                .collect(),
        ),
        DataType::Bool => TensorData::Bool(to_f64(data)?.iter().map(|&x| x != 0.0).collect()),
        DataType::Bytes => TensorData::Bytes(match data {
            TensorData::F32(v) => v.iter().map(|x| x.to_string().into_bytes()).collect(),
            TensorData::F64(v) => v.iter().map(|x| x.to_string().into_bytes()).collect(),
            TensorData::I64(v) => v.iter().map(|x| x.to_string().into_bytes()).collect(),
            TensorData::I32(v) => v.iter().map(|x| x.to_string().into_bytes()).collect(),
            TensorData::U8(v) => v.iter().map(|x| x.to_string().into_bytes()).collect(),
            TensorData::F16(v) => v.iter().map(|x| x.to_string().into_bytes()).collect(),
            TensorData::Bool(v) => v
                .iter()
                .map(|&x| if x { b"1".to_vec() } else { b"0".to_vec() })
                .collect(),
            TensorData::Bytes(v) => v.clone(),
        }),
    })
}

/// `[rows, cols]` of a feature tensor: a 1-D tensor is one row.
fn rows_cols(x: &Value, op: &str) -> R<(usize, usize)> {
    match x.shape.as_slice() {
        [c] => Ok((1, *c)),
        [r, c] => Ok((*r, *c)),
        other => Err(format!(
            "{op} takes a 1-D or 2-D tensor, got shape {}",
            ballast_core::tensor::fmt_shape(other)
        )),
    }
}

/// A per-column parameter of length 1 (all columns) or `cols`.
fn per_column<'a, T: Copy>(
    values: &'a [T],
    cols: usize,
    what: &str,
) -> R<impl Fn(usize) -> T + 'a> {
    if values.len() != 1 && values.len() != cols {
        return Err(format!(
            "{what} has {} values for {cols} columns (expected 1 or {cols})",
            values.len()
        ));
    }
    Ok(move |j: usize| {
        if values.len() == 1 {
            values[0]
        } else {
            values[j]
        }
    })
}

fn scaler(x: &Value, offset: &[f32], scale: &[f32]) -> R<Value> {
    let cols = *x.shape.last().unwrap_or(&1);
    let zero = [0.0f32];
    let unit = [1.0f32];
    let off = per_column(
        if offset.is_empty() { &zero } else { offset },
        cols,
        "offset",
    )?;
    let sc = per_column(if scale.is_empty() { &unit } else { scale }, cols, "scale")?;
    let out: Vec<f32> = match &x.data {
        TensorData::F64(v) => v
            .iter()
            .enumerate()
            .map(|(i, &x)| ((x - off(i % cols) as f64) * sc(i % cols) as f64) as f32)
            .collect(),
        data => to_f32(data)?
            .iter()
            .enumerate()
            .map(|(i, &x)| (x - off(i % cols)) * sc(i % cols))
            .collect(),
    };
    Value::new(x.shape.clone(), TensorData::F32(out))
}

fn normalize(x: &Value, norm: Norm) -> R<Value> {
    let (_, cols) = rows_cols(x, "Normalizer")?;
    let mut v = to_f32(&x.data)?.into_owned();
    if cols > 0 {
        for row in v.chunks_mut(cols) {
            match norm {
                Norm::Max => {
                    let m = row.iter().copied().fold(f32::MIN, f32::max);
                    if m != 0.0 {
                        row.iter_mut().for_each(|x| *x /= m);
                    }
                }
                Norm::L1 => {
                    let s: f32 = row.iter().map(|x| x.abs()).sum();
                    if s != 0.0 {
                        row.iter_mut().for_each(|x| *x /= s);
                    }
                }
                Norm::L2 => {
                    let s: f32 = row.iter().map(|x| x * x).sum();
                    if s != 0.0 {
                        row.iter_mut().for_each(|x| {
                            let r = (*x * *x / s).sqrt();
                            *x = if *x < 0.0 { -r } else { r };
                        });
                    }
                }
            }
        }
    }
    Value::new(x.shape.clone(), TensorData::F32(v))
}

fn impute_f(x: &Value, imputed: &[f32], replaced: f32) -> R<Value> {
    let cols = *x.shape.last().unwrap_or(&1);
    let fill = per_column(imputed, cols, "imputed_value_floats")?;
    let hit = |v: f32| {
        if replaced.is_nan() {
            v.is_nan()
        } else {
            v == replaced
        }
    };
    let data = match &x.data {
        TensorData::F64(v) => TensorData::F64(
            v.iter()
                .enumerate()
                .map(|(i, &v)| {
                    if hit(v as f32) {
                        fill(i % cols) as f64
                    } else {
                        v
                    }
                })
                .collect(),
        ),
        TensorData::F32(v) => TensorData::F32(
            v.iter()
                .enumerate()
                .map(|(i, &v)| if hit(v) { fill(i % cols) } else { v })
                .collect(),
        ),
        other => return Err(type_err("Imputer (float)", other, "float or double")),
    };
    Value::new(x.shape.clone(), data)
}

fn impute_i(x: &Value, imputed: &[i64], replaced: i64) -> R<Value> {
    let cols = *x.shape.last().unwrap_or(&1);
    let fill = per_column(imputed, cols, "imputed_value_int64s")?;
    let v = to_i64(&x.data)?;
    let out = v
        .iter()
        .enumerate()
        .map(|(i, &v)| if v == replaced { fill(i % cols) } else { v })
        .collect();
    Value::new(x.shape.clone(), TensorData::I64(out))
}

fn logistic(x: f32) -> f32 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 { 1.0 - v } else { v }
}

/// ONNX Runtime's approximation of the inverse error function (for `PROBIT`).
fn erf_inv(x: f32) -> f32 {
    let sgn = if x < 0.0 { -1.0 } else { 1.0 };
    let x = (1.0 - x) * (1.0 + x);
    let log = x.ln();
    let v = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * log;
    let v2 = 1.0 / 0.147 * log;
    let v3 = -v + (v * v - v2).sqrt();
    sgn * v3.sqrt()
}

fn probit(x: f32) -> f32 {
    std::f32::consts::SQRT_2 * erf_inv(2.0 * x - 1.0)
}

fn softmax_row(row: &mut [f32]) {
    let m = row.iter().copied().fold(f32::MIN, f32::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - m).exp();
        sum += *x;
    }
    row.iter_mut().for_each(|x| *x /= sum);
}

fn softmax_zero_row(row: &mut [f32]) {
    let m = row.iter().copied().fold(f32::MIN, f32::max);
    let exp_neg_max = (-m).exp();
    let mut sum = 0.0;
    for x in row.iter_mut() {
        if x.abs() > 1e-7 {
            *x = (*x - m).exp();
            sum += *x;
        } else {
            *x *= exp_neg_max;
        }
    }
    row.iter_mut().for_each(|x| *x /= sum);
}

/// `post_transform` on rows of `targets` scores, as ONNX Runtime's
/// `batched_update_scores_inplace`: with one score per row only `PROBIT` applies, or — for a
/// two-label classifier (`second_class`) — the row becomes `[1 - s, s]`.
fn post_scores(scores: &mut Vec<f32>, targets: usize, post: Post, second_class: bool) {
    if targets > 1 {
        match post {
            Post::None => {}
            Post::Logistic => scores.iter_mut().for_each(|x| *x = logistic(*x)),
            Post::Probit => scores.iter_mut().for_each(|x| *x = probit(*x)),
            Post::Softmax => scores.chunks_mut(targets).for_each(softmax_row),
            Post::SoftmaxZero => scores.chunks_mut(targets).for_each(softmax_zero_row),
        }
    } else if post == Post::Probit {
        scores.iter_mut().for_each(|x| *x = probit(*x));
    } else if second_class {
        *scores = scores.iter().flat_map(|&s| [1.0 - s, s]).collect();
    }
}

fn linear_classifier(a: &Attrs) -> R<LinearClassifier> {
    let coefficients = a.floats("coefficients").to_vec();
    let mut intercepts = a.floats("intercepts").to_vec();
    let ints = a.ints("classlabels_ints");
    let strings = a.strings("classlabels_strings");
    let labels = if !strings.is_empty() {
        Labels::Str(strings.to_vec())
    } else {
        Labels::Int(ints.to_vec())
    };
    let n_labels = labels.len();
    if intercepts.is_empty() {
        // No intercepts: one target per label (or one for a binary model).
        let targets = if n_labels > 2 { n_labels } else { 1 };
        intercepts = vec![0.0; targets];
    }
    let targets = intercepts.len();
    if coefficients.is_empty() || !coefficients.len().is_multiple_of(targets) {
        return Err(format!(
            "coefficients has {} values, not a multiple of the {targets} intercept(s)",
            coefficients.len()
        ));
    }
    if targets > 1 && n_labels != targets {
        return Err(format!("{targets} intercepts but {n_labels} class labels"));
    }
    Ok(LinearClassifier {
        coefficients,
        intercepts,
        targets,
        labels,
        post: post_transform(a)?,
    })
}

/// `X · Wᵀ + b` for rows of `x` (`[rows, features]`), `w` as `[targets, features]`; sums in
/// f64, so terms that cancel lose nothing before the result is rounded to f32.
fn affine(
    x: &[f32],
    rows: usize,
    features: usize,
    w: &[f32],
    b: &[f32],
    targets: usize,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * targets);
    for r in 0..rows {
        let row = &x[r * features..(r + 1) * features];
        for t in 0..targets {
            let coef = &w[t * features..(t + 1) * features];
            let dot: f64 = row
                .iter()
                .zip(coef)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            out.push((dot + b.get(t).copied().unwrap_or(0.0) as f64) as f32);
        }
    }
    out
}

impl LinearClassifier {
    fn run(&self, x: &Value) -> R<Vec<Value>> {
        let (rows, cols) = rows_cols(x, "LinearClassifier")?;
        let features = self.coefficients.len() / self.targets;
        if cols != features {
            return Err(format!(
                "the input has {cols} features, the model's coefficients expect {features}"
            ));
        }
        let xs = to_f32(&x.data)?;
        let mut scores = affine(
            &xs,
            rows,
            cols,
            &self.coefficients,
            &self.intercepts,
            self.targets,
        );
        let labels = match &self.labels {
            Labels::Int(l) => TensorData::I64(self.pick(&scores, rows, l, 1, 0)),
            Labels::Str(l) => {
                TensorData::Bytes(self.pick(&scores, rows, l, b"1".to_vec(), b"0".to_vec()))
            }
        };
        let second_class = self.targets == 1 && self.labels.len() == 2;
        post_scores(&mut scores, self.targets, self.post, second_class);
        let width = if second_class { 2 } else { self.targets };
        Ok(vec![
            Value::new(vec![rows], labels)?,
            Value::new(vec![rows, width], TensorData::F32(scores))?,
        ])
    }

    /// The label per row: the arg-max class, or for one score the positive label when it is
    /// above zero (labels `[neg, pos]` when there are two, else the defaults).
    fn pick<L: Clone>(&self, scores: &[f32], rows: usize, labels: &[L], pos: L, neg: L) -> Vec<L> {
        if self.targets == 1 {
            let (p, n) = if labels.len() == 2 {
                (labels[1].clone(), labels[0].clone())
            } else {
                (pos, neg)
            };
            return scores
                .iter()
                .map(|&s| if s > 0.0 { p.clone() } else { n.clone() })
                .collect();
        }
        (0..rows)
            .map(|r| {
                let row = &scores[r * self.targets..(r + 1) * self.targets];
                let mut best = 0;
                for (j, &s) in row.iter().enumerate().skip(1) {
                    if s > row[best] {
                        best = j;
                    }
                }
                labels[best].clone()
            })
            .collect()
    }
}

impl LinearRegressor {
    fn run(&self, x: &Value) -> R<Value> {
        let (rows, cols) = rows_cols(x, "LinearRegressor")?;
        let features = self.coefficients.len() / self.targets;
        if cols != features {
            return Err(format!(
                "the input has {cols} features, the model's coefficients expect {features}"
            ));
        }
        let xs = to_f32(&x.data)?;
        let mut scores = affine(
            &xs,
            rows,
            cols,
            &self.coefficients,
            &self.intercepts,
            self.targets,
        );
        post_scores(&mut scores, self.targets, self.post, false);
        Value::new(vec![rows, self.targets], TensorData::F32(scores))
    }
}

/// Gathers `indices` along the last axis of `x`; a 1-D `x` gives `[1, len(indices)]`.
fn array_feature_extractor(x: &Value, indices: &Value) -> R<Value> {
    let idx = to_i64(&indices.data)?;
    let last = *x
        .shape
        .last()
        .ok_or("ArrayFeatureExtractor needs a tensor of rank >= 1")?;
    let picks: Vec<usize> = idx
        .iter()
        .map(|&i| {
            usize::try_from(i)
                .ok()
                .filter(|&i| i < last)
                .ok_or_else(|| format!("index {i} is outside the last axis (size {last})"))
        })
        .collect::<R<_>>()?;
    let outer: usize = x.shape[..x.shape.len() - 1].iter().product();
    let mut shape = if x.shape.len() == 1 {
        vec![1]
    } else {
        x.shape[..x.shape.len() - 1].to_vec()
    };
    shape.push(picks.len());
    // One body for every variant: `clone` is a copy for the numeric ones, a real clone for BYTES.
    #[allow(clippy::clone_on_copy)]
    let data = ballast_core::map_variant!(&x.data, v => {
        let mut out = Vec::with_capacity(outer * picks.len());
        for o in 0..outer {
            for &p in &picks {
                out.push(v[o * last + p].clone());
            }
        }
        out
    });
    Value::new(shape, data)
}

/// ONNX `Gather`: `data.shape[..axis] + indices.shape + data.shape[axis + 1..]`; negative
/// indices count from the end.
fn gather(x: &Value, indices: &Value, axis: i64) -> R<Value> {
    let axis = norm_axis(axis, x.shape.len())?;
    let (outer, dim, inner) = around(&x.shape, axis);
    let idx: Vec<usize> = to_i64(&indices.data)?
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + dim as i64 } else { i };
            usize::try_from(j)
                .ok()
                .filter(|&j| j < dim)
                .ok_or_else(|| format!("index {i} is outside axis {axis} (size {dim})"))
        })
        .collect::<R<_>>()?;
    let mut shape = x.shape[..axis].to_vec();
    shape.extend_from_slice(&indices.shape);
    shape.extend_from_slice(&x.shape[axis + 1..]);
    let data = ballast_core::map_variant!(&x.data, v => {
        let mut out = Vec::with_capacity(outer * idx.len() * inner);
        for o in 0..outer {
            for &i in &idx {
                let at = (o * dim + i) * inner;
                out.extend_from_slice(&v[at..at + inner]);
            }
        }
        out
    });
    Value::new(shape, data)
}

impl OneHotEncoder {
    fn run(&self, x: &Value) -> R<Value> {
        let n = x.data.len();
        let mut out = vec![0.0f32; n * self.width];
        let mut set = |i: usize, hit: Option<usize>, what: &dyn std::fmt::Display| -> R<()> {
            match hit {
                Some(c) => {
                    out[i * self.width + c] = 1.0;
                    Ok(())
                }
                None if self.zeros => Ok(()),
                None => Err(format!(
                    "category {what} is not among the encoder's categories (and zeros = 0)"
                )),
            }
        };
        match &x.data {
            TensorData::Bytes(v) => {
                for (i, s) in v.iter().enumerate() {
                    set(i, self.strings.get(s).copied(), &String::from_utf8_lossy(s))?;
                }
            }
            data => {
                for (i, &c) in to_i64(data)?.iter().enumerate() {
                    set(i, self.ints.get(&c).copied(), &c)?;
                }
            }
        }
        let mut shape = x.shape.clone();
        shape.push(self.width);
        Value::new(shape, TensorData::F32(out))
    }
}

fn label_encoder(a: &Attrs) -> R<LabelEncoder> {
    // ai.onnx.ml opset 1: classes_strings maps strings to their index and back.
    let classes = a.strings("classes_strings");
    if !classes.is_empty() {
        let map: HashMap<Key, usize> = classes
            .iter()
            .enumerate()
            .map(|(i, s)| (Key::Str(s.clone()), i))
            .collect();
        // Direction is decided at run time by the input type; keep both tables.
        return Ok(LabelEncoder {
            map,
            values: TensorData::I64((0..classes.len() as i64).collect()),
            default: TensorData::I64(vec![a.int("default_int64", -1)]),
            reverse: Some((
                classes.to_vec(),
                a.string("default_string", "_Unused").into_bytes(),
            )),
        });
    }
    let keys: Vec<Key> = if !a.strings("keys_strings").is_empty() {
        a.strings("keys_strings")
            .iter()
            .map(|s| Key::Str(s.clone()))
            .collect()
    } else if !a.ints("keys_int64s").is_empty() {
        a.ints("keys_int64s").iter().map(|&i| Key::Int(i)).collect()
    } else if !a.floats("keys_floats").is_empty() {
        a.floats("keys_floats")
            .iter()
            .map(|&f| Key::Float(f.to_bits()))
            .collect()
    } else {
        return Err(
            "LabelEncoder needs keys_strings, keys_int64s or keys_floats (keys_tensor is not \
             supported)"
                .into(),
        );
    };
    let (values, default) = if !a.strings("values_strings").is_empty() {
        (
            TensorData::Bytes(a.strings("values_strings").to_vec()),
            TensorData::Bytes(vec![a.string("default_string", "_Unused").into_bytes()]),
        )
    } else if !a.ints("values_int64s").is_empty() {
        (
            TensorData::I64(a.ints("values_int64s").to_vec()),
            TensorData::I64(vec![a.int("default_int64", -1)]),
        )
    } else if !a.floats("values_floats").is_empty() {
        (
            TensorData::F32(a.floats("values_floats").to_vec()),
            TensorData::F32(vec![a.float("default_float", -0.0)]),
        )
    } else {
        return Err("LabelEncoder needs values_strings, values_int64s or values_floats".into());
    };
    if values.len() != keys.len() {
        return Err(format!(
            "LabelEncoder has {} keys but {} values",
            keys.len(),
            values.len()
        ));
    }
    Ok(LabelEncoder {
        map: keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect(),
        values,
        default,
        reverse: None,
    })
}

impl LabelEncoder {
    fn run(&self, x: &Value) -> R<Value> {
        let lookup = |k: Key| self.map.get(&k).copied();
        let data = match (&x.data, &self.values) {
            (TensorData::Bytes(v), values) => {
                let idx: Vec<Option<usize>> =
                    v.iter().map(|s| lookup(Key::Str(s.clone()))).collect();
                take(values, &self.default, &idx)?
            }
            (TensorData::F32(v), values) => {
                let idx: Vec<Option<usize>> =
                    v.iter().map(|f| lookup(Key::Float(f.to_bits()))).collect();
                take(values, &self.default, &idx)?
            }
            (data, values) => {
                let ints = to_i64(data)?;
                if let Some((strings, default)) = &self.reverse {
                    TensorData::Bytes(
                        ints.iter()
                            .map(|&i| {
                                usize::try_from(i)
                                    .ok()
                                    .and_then(|i| strings.get(i))
                                    .unwrap_or(default)
                                    .clone()
                            })
                            .collect(),
                    )
                } else {
                    let idx: Vec<Option<usize>> =
                        ints.iter().map(|&i| lookup(Key::Int(i))).collect();
                    take(values, &self.default, &idx)?
                }
            }
        };
        Value::new(x.shape.clone(), data)
    }
}

/// Elements of `values` at `idx`, `default[0]` where `None`.
fn take(values: &TensorData, default: &TensorData, idx: &[Option<usize>]) -> R<TensorData> {
    macro_rules! pick {
        ($v:expr, $d:expr, $variant:ident) => {{
            let d = $d.first().cloned().ok_or("LabelEncoder has no default")?;
            TensorData::$variant(
                idx.iter()
                    .map(|i| {
                        i.and_then(|i| $v.get(i).cloned())
                            .unwrap_or_else(|| d.clone())
                    })
                    .collect(),
            )
        }};
    }
    Ok(match (values, default) {
        (TensorData::I64(v), TensorData::I64(d)) => pick!(v, d, I64),
        (TensorData::F32(v), TensorData::F32(d)) => pick!(v, d, F32),
        (TensorData::Bytes(v), TensorData::Bytes(d)) => pick!(v, d, Bytes),
        _ => return Err("LabelEncoder's values and default differ in type".into()),
    })
}

fn feature_vectorizer(inputs: &[Option<&Value>], dims: &[usize]) -> R<Value> {
    if inputs.len() != dims.len() {
        return Err(format!(
            "{} inputs but inputdimensions lists {}",
            inputs.len(),
            dims.len()
        ));
    }
    let mut rows = None;
    let mut parts = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let x = input.ok_or_else(|| format!("input {i} is missing"))?;
        let (r, c) = match x.shape.as_slice() {
            [r] => (*r, 1),
            [r, rest @ ..] => (*r, rest.iter().product()),
            [] => (1, 1),
        };
        if *rows.get_or_insert(r) != r {
            return Err("the inputs differ in row count".into());
        }
        parts.push((to_f32(&x.data)?, c));
    }
    let rows = rows.unwrap_or(1);
    let width: usize = dims.iter().sum();
    let mut out = vec![0.0f32; rows * width];
    for r in 0..rows {
        let mut at = r * width;
        for ((data, c), &d) in parts.iter().zip(dims) {
            let n = d.min(*c);
            out[at..at + n].copy_from_slice(&data[r * c..r * c + n]);
            at += d;
        }
    }
    Value::new(vec![rows, width], TensorData::F32(out))
}

impl Trees {
    fn run(&self, x: &Value) -> R<Vec<Value>> {
        let (rows, cols) = rows_cols(x, "TreeEnsemble")?;
        if cols < self.features {
            return Err(format!(
                "the input has {cols} features, the trees use {}",
                self.features
            ));
        }
        let data = if cols == self.features {
            x.data.clone()
        } else {
            // Features past the last one any tree splits on are not read: drop them.
            let v = to_f64(&x.data)?;
            let mut out = Vec::with_capacity(rows * self.features);
            for r in 0..rows {
                out.extend_from_slice(&v[r * cols..r * cols + self.features]);
            }
            TensorData::F64(out)
        };
        let name = self.backend.signature().inputs[0].name.clone();
        let tensor = Tensor::new(name, vec![rows, self.features], data).map_err(|e| e.message)?;
        let outputs = self
            .backend
            .infer(vec![tensor])
            .map_err(|e| e.to_string())?;
        outputs
            .into_iter()
            .map(|t| Value::new(t.shape, t.data))
            .collect()
    }
}

/// NumPy broadcasting of two shapes.
fn broadcast_shape(a: &[usize], b: &[usize]) -> R<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(format!(
                    "shapes {} and {} do not broadcast",
                    ballast_core::tensor::fmt_shape(a),
                    ballast_core::tensor::fmt_shape(b)
                ));
            }
        };
    }
    Ok(out)
}

/// Strides of `shape` seen in `out`'s rank, 0 along broadcast axes.
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let rank = out.len();
    let mut strides = vec![0; rank];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        let o = i + rank - shape.len();
        strides[o] = if shape[i] == 1 { 0 } else { s };
        s *= shape[i];
    }
    strides
}

fn zip_broadcast<T: Copy>(
    a: &[T],
    ash: &[usize],
    b: &[T],
    bsh: &[usize],
    f: impl Fn(T, T) -> T,
) -> R<(Vec<T>, Vec<usize>)> {
    let out = broadcast_shape(ash, bsh)?;
    if ash == bsh {
        return Ok((a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect(), out));
    }
    let n: usize = out.iter().product();
    if b.len() == 1 {
        let y = b[0];
        if ash == out.as_slice() {
            return Ok((a.iter().map(|&x| f(x, y)).collect(), out));
        }
    }
    let sa = broadcast_strides(ash, &out);
    let sb = broadcast_strides(bsh, &out);
    let rank = out.len();
    let mut res = Vec::with_capacity(n);
    let mut idx = vec![0usize; rank];
    let (mut ia, mut ib) = (0usize, 0usize);
    for _ in 0..n {
        res.push(f(a[ia], b[ib]));
        for d in (0..rank).rev() {
            idx[d] += 1;
            ia += sa[d];
            ib += sb[d];
            if idx[d] < out[d] {
                break;
            }
            ia -= sa[d] * out[d];
            ib -= sb[d] * out[d];
            idx[d] = 0;
        }
    }
    Ok((res, out))
}

fn binary(op: Bin, a: &Value, b: &Value) -> R<Value> {
    macro_rules! float {
        ($x:expr, $y:expr, $variant:ident) => {{
            let (v, shape) = zip_broadcast($x, &a.shape, $y, &b.shape, |x, y| match op {
                Bin::Add => x + y,
                Bin::Sub => x - y,
                Bin::Mul => x * y,
                Bin::Div => x / y,
                Bin::Pow => x.powf(y),
                Bin::Max => x.max(y),
                Bin::Min => x.min(y),
            })?;
            Value::new(shape, TensorData::$variant(v))
        }};
    }
    macro_rules! int {
        ($x:expr, $y:expr, $variant:ident) => {{
            if op == Bin::Div && $y.iter().any(|&y| y == 0) {
                return Err("integer division by zero".into());
            }
            let (v, shape) = zip_broadcast($x, &a.shape, $y, &b.shape, |x, y| match op {
                Bin::Add => x.wrapping_add(y),
                Bin::Sub => x.wrapping_sub(y),
                Bin::Mul => x.wrapping_mul(y),
                Bin::Div => x / y,
                Bin::Pow => x.wrapping_pow(y.max(0) as u32),
                Bin::Max => x.max(y),
                Bin::Min => x.min(y),
            })?;
            Value::new(shape, TensorData::$variant(v))
        }};
    }
    match (&a.data, &b.data) {
        (TensorData::F32(x), TensorData::F32(y)) => float!(x, y, F32),
        (TensorData::F64(x), TensorData::F64(y)) => float!(x, y, F64),
        (TensorData::I64(x), TensorData::I64(y)) => int!(x, y, I64),
        (TensorData::I32(x), TensorData::I32(y)) => int!(x, y, I32),
        // Pow allows a different exponent type; others must match (ONNX), but tolerate a
        // float/double mix by working in the first operand's type.
        (TensorData::F32(x), other) => {
            let y = to_f32(other)?;
            float!(x, &y, F32)
        }
        (TensorData::F64(x), other) => {
            let y = to_f64(other)?;
            float!(x, &y, F64)
        }
        (x, y) => Err(format!(
            "operands of types {} and {} are not supported",
            x.dtype().as_str(),
            y.dtype().as_str()
        )),
    }
}

fn map_float(data: &TensorData, op: &str, f: impl Fn(f64) -> f64) -> R<TensorData> {
    Ok(match data {
        TensorData::F32(v) => TensorData::F32(v.iter().map(|&x| f(x as f64) as f32).collect()),
        TensorData::F64(v) => TensorData::F64(v.iter().map(|&x| f(x)).collect()),
        other => return Err(type_err(op, other, "float or double")),
    })
}

fn unary(op: Un, x: &Value) -> R<Value> {
    macro_rules! apply {
        ($v:expr, $variant:ident, $t:ty) => {{
            TensorData::$variant(
                $v.iter()
                    .map(|&x: &$t| match op {
                        Un::Relu => x.max(0.0),
                        Un::Sigmoid => 1.0 / (1.0 + (-x).exp()),
                        Un::Tanh => x.tanh(),
                        Un::Exp => x.exp(),
                        Un::Log => x.ln(),
                        Un::Abs => x.abs(),
                        Un::Neg => -x,
                        Un::Sqrt => x.sqrt(),
                        Un::Reciprocal => 1.0 / x,
                        Un::LeakyRelu(alpha) => {
                            if x < 0.0 {
                                x * alpha as $t
                            } else {
                                x
                            }
                        }
                    })
                    .collect(),
            )
        }};
    }
    let data = match (&x.data, op) {
        (TensorData::F32(v), _) => apply!(v, F32, f32),
        (TensorData::F64(v), _) => apply!(v, F64, f64),
        (TensorData::I64(v), Un::Abs) => {
            TensorData::I64(v.iter().map(|x| x.wrapping_abs()).collect())
        }
        (TensorData::I64(v), Un::Neg) => {
            TensorData::I64(v.iter().map(|x| x.wrapping_neg()).collect())
        }
        (TensorData::I64(v), Un::Relu) => TensorData::I64(v.iter().map(|&x| x.max(0)).collect()),
        (other, _) => return Err(type_err(&format!("{op:?}"), other, "float or double")),
    };
    Value::new(x.shape.clone(), data)
}

fn norm_axis(axis: i64, rank: usize) -> R<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) {
        return Err(format!("axis {axis} is outside a tensor of rank {rank}"));
    }
    Ok(a as usize)
}

/// `(outer, dim, inner)` around `axis`.
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let dim = shape.get(axis).copied().unwrap_or(1);
    let inner = shape[(axis + 1).min(shape.len())..].iter().product();
    (outer, dim, inner)
}

fn softmax(x: &Value, axis: i64, coerce_2d: bool) -> R<Value> {
    let axis = norm_axis(axis, x.shape.len())?;
    let (outer, dim, inner) = if coerce_2d {
        (
            x.shape[..axis].iter().product(),
            x.shape[axis..].iter().product(),
            1,
        )
    } else {
        around(&x.shape, axis)
    };
    macro_rules! run {
        ($v:expr, $variant:ident, $t:ty) => {{
            let mut out: Vec<$t> = $v.clone();
            for o in 0..outer {
                for i in 0..inner {
                    let at = |k: usize| o * dim * inner + k * inner + i;
                    let m = (0..dim).map(|k| out[at(k)]).fold(<$t>::MIN, <$t>::max);
                    let mut sum = 0.0;
                    for k in 0..dim {
                        let e = (out[at(k)] - m).exp();
                        out[at(k)] = e;
                        sum += e;
                    }
                    for k in 0..dim {
                        out[at(k)] /= sum;
                    }
                }
            }
            TensorData::$variant(out)
        }};
    }
    let data = match &x.data {
        TensorData::F32(v) => run!(v, F32, f32),
        TensorData::F64(v) => run!(v, F64, f64),
        other => return Err(type_err("Softmax", other, "float or double")),
    };
    Value::new(x.shape.clone(), data)
}

fn argmax(x: &Value, axis: i64, keepdims: bool, last: bool, max: bool) -> R<Value> {
    let axis = norm_axis(axis, x.shape.len())?;
    let (outer, dim, inner) = around(&x.shape, axis);
    if dim == 0 {
        return Err("ArgMax/ArgMin over an empty axis".into());
    }
    let v = to_f64(&x.data)?;
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| v[o * dim * inner + k * inner + i];
            let mut best = 0;
            for k in 1..dim {
                let (a, b) = (at(k), at(best));
                let better = if max { a > b } else { a < b };
                if better || (last && a == b) {
                    best = k;
                }
            }
            out.push(best as i64);
        }
    }
    let mut shape = x.shape.clone();
    if keepdims {
        shape[axis] = 1;
    } else {
        shape.remove(axis);
    }
    Value::new(shape, TensorData::I64(out))
}

fn reshape(x: &Value, shape: &Value, allowzero: bool) -> R<Value> {
    let want = to_i64(&shape.data)?;
    let total = x.data.len();
    let mut out = Vec::with_capacity(want.len());
    let mut infer = None;
    for (i, &d) in want.iter().enumerate() {
        match d {
            -1 => {
                if infer.replace(i).is_some() {
                    return Err("Reshape's shape has more than one -1".into());
                }
                out.push(1);
            }
            0 if !allowzero => out.push(*x.shape.get(i).ok_or_else(|| {
                format!("Reshape copies dimension {i}, which the input does not have")
            })?),
            d if d >= 0 => out.push(d as usize),
            d => return Err(format!("Reshape's shape has {d}")),
        }
    }
    if let Some(i) = infer {
        let known: usize = out.iter().product();
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!(
                "cannot reshape {} elements into {:?}",
                total,
                want.as_ref()
            ));
        }
        out[i] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return Err(format!(
            "cannot reshape {} ({total} elements) into {:?}",
            ballast_core::tensor::fmt_shape(&x.shape),
            want.as_ref()
        ));
    }
    Value::new(out, x.data.clone())
}

fn concat(values: &[&Value], axis: i64) -> R<Value> {
    let first = values.first().ok_or("Concat with no inputs")?;
    let rank = first.shape.len();
    let axis = norm_axis(axis, rank)?;
    let mut shape = first.shape.clone();
    shape[axis] = 0;
    for v in values {
        if v.shape.len() != rank
            || v.shape
                .iter()
                .enumerate()
                .any(|(i, &d)| i != axis && d != first.shape[i])
        {
            return Err(format!(
                "Concat inputs {} and {} differ off axis {axis}",
                ballast_core::tensor::fmt_shape(&first.shape),
                ballast_core::tensor::fmt_shape(&v.shape)
            ));
        }
        shape[axis] += v.shape[axis];
    }
    let outer: usize = first.shape[..axis].iter().product();
    let inner: usize = first.shape[axis + 1..].iter().product();
    macro_rules! join {
        ($variant:ident) => {{
            let mut parts = Vec::with_capacity(values.len());
            for v in values {
                match &v.data {
                    TensorData::$variant(d) => parts.push((d, v.shape[axis] * inner)),
                    other => {
                        return Err(format!(
                            "Concat inputs differ in type ({} and {})",
                            first.data.dtype().as_str(),
                            other.dtype().as_str()
                        ));
                    }
                }
            }
            let mut out = Vec::with_capacity(shape.iter().product());
            for o in 0..outer {
                for (d, chunk) in &parts {
                    out.extend_from_slice(&d[o * chunk..(o + 1) * chunk]);
                }
            }
            TensorData::$variant(out)
        }};
    }
    let data = match &first.data {
        TensorData::F32(_) => join!(F32),
        TensorData::F64(_) => join!(F64),
        TensorData::I64(_) => join!(I64),
        TensorData::I32(_) => join!(I32),
        TensorData::U8(_) => join!(U8),
        TensorData::F16(_) => join!(F16),
        TensorData::Bool(_) => join!(Bool),
        TensorData::Bytes(_) => join!(Bytes),
    };
    Value::new(shape, data)
}

fn matmul(a: &Value, b: &Value) -> R<Value> {
    // Promote 1-D operands as NumPy does, then drop the added axis.
    let (a_shape, drop_m) = if a.shape.len() == 1 {
        (vec![1, a.shape[0]], true)
    } else {
        (a.shape.clone(), false)
    };
    let (b_shape, drop_n) = if b.shape.len() == 1 {
        (vec![b.shape[0], 1], true)
    } else {
        (b.shape.clone(), false)
    };
    let (m, k) = (a_shape[a_shape.len() - 2], a_shape[a_shape.len() - 1]);
    let (k2, n) = (b_shape[b_shape.len() - 2], b_shape[b_shape.len() - 1]);
    if k != k2 {
        return Err(format!(
            "MatMul of {} and {}: inner dimensions {k} and {k2} differ",
            ballast_core::tensor::fmt_shape(&a.shape),
            ballast_core::tensor::fmt_shape(&b.shape)
        ));
    }
    let a_batch = &a_shape[..a_shape.len() - 2];
    let b_batch = &b_shape[..b_shape.len() - 2];
    let batches: usize = a_batch.iter().product();
    let b_batches: usize = b_batch.iter().product();
    if b_batches != 1 && b_batch != a_batch {
        return Err("MatMul with broadcast batch dimensions is not supported".into());
    }
    macro_rules! mm {
        ($x:expr, $y:expr, $variant:ident, $t:ty) => {{
            let mut out = vec![0 as $t; batches * m * n];
            for bt in 0..batches {
                let xa = &$x[bt * m * k..(bt + 1) * m * k];
                let yb = if b_batches == 1 {
                    &$y[..]
                } else {
                    &$y[bt * k * n..(bt + 1) * k * n]
                };
                let o = &mut out[bt * m * n..(bt + 1) * m * n];
                for i in 0..m {
                    let row = &mut o[i * n..(i + 1) * n];
                    for p in 0..k {
                        let av = xa[i * k + p];
                        let brow = &yb[p * n..(p + 1) * n];
                        for (r, &bv) in row.iter_mut().zip(brow) {
                            *r += av * bv;
                        }
                    }
                }
            }
            TensorData::$variant(out)
        }};
    }
    let data = match (&a.data, &b.data) {
        (TensorData::F32(x), TensorData::F32(y)) => mm!(x, y, F32, f32),
        (TensorData::F64(x), TensorData::F64(y)) => mm!(x, y, F64, f64),
        (TensorData::F32(x), other) => {
            let y = to_f32(other)?;
            mm!(x, y, F32, f32)
        }
        (x, y) => {
            return Err(format!(
                "MatMul of {} and {} is not supported",
                x.dtype().as_str(),
                y.dtype().as_str()
            ));
        }
    };
    let mut shape = a_batch.to_vec();
    if !drop_m {
        shape.push(m);
    }
    if !drop_n {
        shape.push(n);
    }
    Value::new(shape, data)
}

fn transpose2(v: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

fn gemm(
    a: &Value,
    b: &Value,
    c: Option<&Value>,
    alpha: f64,
    beta: f64,
    trans_a: bool,
    trans_b: bool,
) -> R<Value> {
    let dims = |v: &Value, what: &str| -> R<(usize, usize)> {
        match v.shape.as_slice() {
            [r, c] => Ok((*r, *c)),
            other => Err(format!(
                "Gemm's {what} must be 2-D, got {}",
                ballast_core::tensor::fmt_shape(other)
            )),
        }
    };
    let (ar, ac) = dims(a, "A")?;
    let (br, bc) = dims(b, "B")?;
    let mut av = to_f64(&a.data)?.into_owned();
    let mut bv = to_f64(&b.data)?.into_owned();
    let (m, k) = if trans_a {
        av = transpose2(&av, ar, ac);
        (ac, ar)
    } else {
        (ar, ac)
    };
    let (k2, n) = if trans_b {
        bv = transpose2(&bv, br, bc);
        (bc, br)
    } else {
        (br, bc)
    };
    if k != k2 {
        return Err(format!("Gemm: inner dimensions {k} and {k2} differ"));
    }
    let mut out = vec![0.0f64; m * n];
    for i in 0..m {
        for p in 0..k {
            let x = av[i * k + p];
            for j in 0..n {
                out[i * n + j] += x * bv[p * n + j];
            }
        }
    }
    out.iter_mut().for_each(|v| *v *= alpha);
    if let Some(c) = c {
        let cv = to_f64(&c.data)?;
        let (sum, _) = zip_broadcast(&out, &[m, n], &cv, &c.shape, |x, y| x + beta * y)?;
        out = sum;
    }
    let data = match &a.data {
        TensorData::F64(_) => TensorData::F64(out),
        _ => TensorData::F32(out.iter().map(|&v| v as f32).collect()),
    };
    Value::new(vec![m, n], data)
}
