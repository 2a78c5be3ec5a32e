//! Native tree ensembles: XGBoost JSON, LightGBM text and ONNX-ML `TreeEnsemble*` models
//! compiled to one flattened [`forest::Forest`] and evaluated in batches.
//!
//! Why our own evaluator rather than tract: tract lacks `TreeEnsembleRegressor` and walks every
//! leaf for each tree visit in `TreeEnsembleClassifier` (~8 ms a row), while fraud checks and
//! ranking mostly run gradient-boosted trees. Each format's loader reproduces that library's own
//! arithmetic: comparison operator, missing-value direction, categorical sets, base score,
//! accumulation precision (f32 for XGBoost and ONNX-ML, f64 for LightGBM) and output transform —
//! checked against the libraries' predictions in `tests/trees.rs`.
//!
//! Parallelism: one batch runs on the calling engine thread; with `threads > 1`, batches of at
//! least [`PARALLEL_MIN_ROWS`] rows are split into row blocks over a private rayon pool.

pub mod forest;
pub mod lightgbm;
pub mod onnx_ml;
pub(crate) mod ubjson;
pub mod xgboost;

use std::path::Path;

use ballast_core::{DataType, ModelSignature, Tensor, TensorData, TensorSpec};
use forest::{Forest, Value};

use crate::{Backend, BackendError};

/// Batches smaller than this run on one thread: splitting costs more than it saves.
pub const PARALLEL_MIN_ROWS: usize = 512;

/// The engine name in metadata, logs and metric labels.
pub const ENGINE: &str = "trees";

/// How raw scores (margins) become predictions, per XGBoost / LightGBM objective.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Transform {
    Identity,
    /// `1 / (1 + exp(-scale * x))` per output.
    Sigmoid(f64),
    /// Softmax across the outputs of a row.
    Softmax,
    Exp,
    /// LightGBM `regression sqrt`: `sign(x) * x^2`.
    SignedSquare,
    /// XGBoost `binary:hinge`: 1 when the margin is positive, else 0.
    Hinge,
    /// XGBoost `multi:softmax`: the index of the largest margin.
    ArgMax,
}

/// Output stage of an XGBoost / LightGBM model.
#[derive(Debug)]
pub(crate) struct GbmHead<T> {
    /// Accumulator start per output group (the base score in margin space).
    pub base: Vec<T>,
    /// LightGBM `average_output` (random forest mode): the sum is divided by this.
    pub divide_by: Option<T>,
    pub transform: Transform,
}

/// ONNX-ML class labels.
#[derive(Debug, Clone)]
pub(crate) enum Labels {
    Int(Vec<i64>),
    Str(Vec<String>),
}

impl Labels {
    fn len(&self) -> usize {
        match self {
            Labels::Int(v) => v.len(),
            Labels::Str(v) => v.len(),
        }
    }
}

/// ONNX-ML `post_transform`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
}

/// Which classifier result a graph output carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClassifierOutput {
    Label,
    Scores,
}

/// Output stage of an ONNX-ML `TreeEnsembleClassifier`, following ONNX Runtime's rules
/// (binary special cases included), since ONNX Runtime is what users compare against.
#[derive(Debug)]
pub(crate) struct ClassifierHead<T> {
    pub labels: Labels,
    pub base_values: Vec<T>,
    pub post: PostTransform,
    /// Two classes and every leaf weight for the same class.
    pub binary_case: bool,
    pub weights_all_positive: bool,
    /// Whether any leaf weight targets each class (ONNX Runtime's `has_score`).
    pub has_score: Vec<bool>,
    pub outputs: Vec<(ClassifierOutput, String)>,
}

/// Output stage of an ONNX-ML `TreeEnsembleRegressor`.
#[derive(Debug)]
pub(crate) struct RegressorHead<T> {
    pub base_values: Vec<T>,
    pub post: PostTransform,
    /// `AVERAGE`: divide by the tree count.
    pub average: bool,
}

#[derive(Debug)]
pub(crate) enum Head<T> {
    Gbm(GbmHead<T>),
    Classifier(ClassifierHead<T>),
    Regressor(RegressorHead<T>),
}

/// A compiled model in one precision.
#[derive(Debug)]
pub(crate) struct Ensemble<T> {
    pub forest: Forest<T>,
    pub head: Head<T>,
    pub signature: ModelSignature,
    /// What each row's accumulators start from: the base score for GBM heads, zero for ONNX
    /// sums, NaN ("no value yet") for ONNX min/max.
    init: Vec<T>,
}

impl<T: Value> Ensemble<T> {
    pub(crate) fn new(forest: Forest<T>, head: Head<T>, signature: ModelSignature) -> Self {
        let g = forest.n_groups();
        let init = match &head {
            Head::Gbm(h) => h.base.clone(),
            Head::Regressor(_) if forest.aggregate() != forest::Aggregate::Sum => vec![T::nan(); g],
            Head::Classifier(_) | Head::Regressor(_) => vec![T::ZERO; g],
        };
        Self {
            forest,
            head,
            signature,
            init,
        }
    }
}

#[derive(Debug)]
enum Precision {
    F32(Ensemble<f32>),
    F64(Ensemble<f64>),
}

/// A tree ensemble behind the [`Backend`] seam.
pub struct TreeBackend {
    model: Precision,
    pool: Option<rayon::ThreadPool>,
    format: &'static str,
}

impl std::fmt::Debug for TreeBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeBackend")
            .field("format", &self.format)
            .field("trees", &self.n_trees())
            .finish()
    }
}

impl TreeBackend {
    /// Loads an XGBoost JSON or UBJSON model (`model.json`, `model.ubj`).
    pub fn load_xgboost(path: &Path, threads: usize) -> Result<Self, BackendError> {
        let ensemble = xgboost::load(path).map_err(|reason| load_err(path, reason))?;
        Self::new(Precision::F32(ensemble), threads, "xgboost", path)
    }

    /// Loads a LightGBM text model (`model.txt`).
    pub fn load_lightgbm(path: &Path, threads: usize) -> Result<Self, BackendError> {
        let ensemble = lightgbm::load(path).map_err(|reason| load_err(path, reason))?;
        Self::new(Precision::F64(ensemble), threads, "lightgbm", path)
    }

    /// Loads an ONNX graph made of one `TreeEnsembleClassifier` / `TreeEnsembleRegressor`
    /// (with optional `Cast`, `Identity` and `ZipMap` around it), as scikit-learn, XGBoost and
    /// LightGBM converters emit.
    pub fn load_onnx(path: &Path, threads: usize) -> Result<Self, BackendError> {
        let model = match onnx_ml::load(path).map_err(|reason| load_err(path, reason))? {
            onnx_ml::Loaded::F32(e) => Precision::F32(e),
            onnx_ml::Loaded::F64(e) => Precision::F64(e),
        };
        Self::new(model, threads, "onnx-ml", path)
    }

    /// One tree-ensemble node of a larger graph (the onnx-ml engine's pipelines), on one
    /// thread: the ensemble alone, its input a float tensor of as many features as the trees
    /// use, its outputs the node's. Returns the backend and that feature count.
    pub(crate) fn from_onnx_node(
        node: &tract_onnx::pb::NodeProto,
    ) -> Result<(Self, usize), String> {
        use tract_onnx::pb;
        let input = node
            .input
            .first()
            .ok_or("the tree-ensemble node has no input")?;
        let unknown = || pb::tensor_shape_proto::Dimension {
            denotation: String::new(),
            value: None,
        };
        let tensor = |name: &str| pb::ValueInfoProto {
            name: name.to_string(),
            r#type: Some(pb::TypeProto {
                denotation: String::new(),
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: 1,
                    shape: Some(pb::TensorShapeProto {
                        dim: vec![unknown(), unknown()],
                    }),
                })),
            }),
            doc_string: String::new(),
        };
        let graph = pb::GraphProto {
            node: vec![node.clone()],
            input: vec![tensor(input)],
            output: node
                .output
                .iter()
                .filter(|o| !o.is_empty())
                .map(|o| tensor(o))
                .collect(),
            ..Default::default()
        };
        let model = match onnx_ml::from_graph(&graph)? {
            onnx_ml::Loaded::F32(e) => Precision::F32(e),
            onnx_ml::Loaded::F64(e) => Precision::F64(e),
        };
        let backend = Self {
            model,
            pool: None,
            format: "onnx-ml",
        };
        let features = backend
            .signature()
            .inputs
            .first()
            .and_then(|s| s.shape.get(1))
            .map_or(0, |&d| d.max(0) as usize);
        Ok((backend, features))
    }

    fn new(
        model: Precision,
        threads: usize,
        format: &'static str,
        path: &Path,
    ) -> Result<Self, BackendError> {
        let pool = if threads > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("ballast-trees-{i}"))
                    .build()
                    .map_err(|e| load_err(path, format!("cannot start {threads} threads: {e}")))?,
            )
        } else {
            None
        };
        Ok(Self {
            model,
            pool,
            format,
        })
    }

    /// The file format the model came from (`xgboost`, `lightgbm`, `onnx-ml`).
    pub fn format(&self) -> &'static str {
        self.format
    }

    pub fn n_trees(&self) -> usize {
        match &self.model {
            Precision::F32(e) => e.forest.n_trees(),
            Precision::F64(e) => e.forest.n_trees(),
        }
    }
}

fn load_err(path: &Path, reason: String) -> BackendError {
    BackendError::Load {
        path: path.display().to_string(),
        reason,
    }
}

impl Backend for TreeBackend {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn signature(&self) -> &ModelSignature {
        match &self.model {
            Precision::F32(e) => &e.signature,
            Precision::F64(e) => &e.signature,
        }
    }

    fn nan_is_missing(&self) -> bool {
        true
    }

    fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
        match &self.model {
            Precision::F32(e) => e.infer(inputs, self.pool.as_ref()),
            Precision::F64(e) => e.infer(inputs, self.pool.as_ref()),
        }
    }
}

impl<T: Value> Ensemble<T> {
    fn infer(
        &self,
        inputs: Vec<Tensor>,
        pool: Option<&rayon::ThreadPool>,
    ) -> Result<Vec<Tensor>, BackendError> {
        let [input]: [Tensor; 1] = inputs.try_into().map_err(|v: Vec<Tensor>| {
            BackendError::InvalidInput(format!(
                "a tree model takes exactly one input tensor, got {}",
                v.len()
            ))
        })?;
        let nf = self.forest.n_features();
        let rows = match input.shape.as_slice() {
            [n, f] if *f == nf => *n,
            [f] if *f == nf => 1,
            other => {
                return Err(BackendError::InvalidInput(format!(
                    "input '{}': expected shape [-1,{nf}], got {}",
                    input.name,
                    ballast_core::tensor::fmt_shape(other)
                )));
            }
        };
        let x = to_values::<T>(&input)?;
        let g = self.forest.n_groups();
        let mut acc: Vec<T> = Vec::with_capacity(rows * g);
        for _ in 0..rows {
            acc.extend_from_slice(&self.init);
        }
        match pool {
            Some(pool) if rows >= PARALLEL_MIN_ROWS => {
                use rayon::prelude::*;
                let threads = pool.current_num_threads().max(1);
                let chunk_rows = rows.div_ceil(threads).max(64);
                pool.install(|| {
                    x.par_chunks(chunk_rows * nf.max(1))
                        .zip(acc.par_chunks_mut(chunk_rows * g))
                        .for_each(|(xc, ac)| self.forest.accumulate(xc, ac));
                });
            }
            _ => self.forest.accumulate(&x, &mut acc),
        }
        self.finish(acc, rows)
    }

    fn finish(&self, mut acc: Vec<T>, rows: usize) -> Result<Vec<Tensor>, BackendError> {
        let g = self.forest.n_groups();
        let tensor = |spec: &TensorSpec, data: TensorData| {
            let shape = if spec.shape.len() == 1 {
                vec![rows]
            } else {
                vec![rows, data.len() / rows.max(1)]
            };
            Tensor::new(spec.name.clone(), shape, data)
                .map_err(|e| BackendError::Compute(e.to_string()))
        };
        match &self.head {
            Head::Gbm(h) => {
                if let Some(d) = h.divide_by {
                    acc.iter_mut().for_each(|v| *v = *v / d);
                }
                let out = gbm_transform(h.transform, acc, g);
                Ok(vec![tensor(&self.signature.outputs[0], T::wrap(out))?])
            }
            Head::Regressor(h) => {
                let n_trees = T::from_f64(self.forest.n_trees() as f64);
                let agg = self.forest.aggregate();
                let use_base = h.base_values.len() == g;
                let origin = if h.base_values.len() == 1 {
                    h.base_values[0]
                } else {
                    T::ZERO
                };
                for row in acc.chunks_exact_mut(g) {
                    for (k, v) in row.iter_mut().enumerate() {
                        let s = if v.is_nan() && agg != forest::Aggregate::Sum {
                            T::ZERO
                        } else {
                            *v
                        };
                        let s = if h.average { s / n_trees } else { s };
                        *v = if g == 1 {
                            s + origin
                        } else if use_base {
                            s + h.base_values[k]
                        } else {
                            s
                        };
                    }
                    if g >= 2 {
                        onnx_post(h.post, row);
                    }
                }
                Ok(vec![tensor(&self.signature.outputs[0], T::wrap(acc))?])
            }
            Head::Classifier(h) => {
                let (labels, scores) = classify(h, acc, g, rows);
                // Each kind appears at most once (the loader maps the node's two outputs).
                let (mut labels, mut scores) = (Some(labels), Some(scores));
                let mut out = Vec::with_capacity(h.outputs.len());
                for (spec, (kind, _)) in self.signature.outputs.iter().zip(&h.outputs) {
                    let data = match kind {
                        ClassifierOutput::Label => labels.take(),
                        ClassifierOutput::Scores => scores.take().map(T::wrap),
                    }
                    .ok_or_else(|| {
                        BackendError::Compute(format!("output '{}' listed twice", spec.name))
                    })?;
                    out.push(tensor(spec, data)?);
                }
                Ok(out)
            }
        }
    }
}

/// Input rows converted to the forest's precision (as the libraries convert: XGBoost and
/// ONNX-ML read `f32`, LightGBM `f64`).
fn to_values<T: Value>(input: &Tensor) -> Result<Vec<T>, BackendError> {
    Ok(match &input.data {
        TensorData::F32(v) => v.iter().map(|&x| T::from_f64(x as f64)).collect(),
        TensorData::F64(v) => v.iter().map(|&x| T::from_f64(x)).collect(),
        TensorData::I32(v) => v.iter().map(|&x| T::from_f64(x as f64)).collect(),
        TensorData::I64(v) => v.iter().map(|&x| T::from_f64(x as f64)).collect(),
        other => {
            return Err(BackendError::InvalidInput(format!(
                "input '{}': expected FP32 or FP64 features, got {}",
                input.name,
                other.dtype()
            )));
        }
    })
}

fn sigmoid<T: Value>(x: T, scale: T) -> T {
    T::ONE / (T::ONE + (-(scale * x)).exp())
}

fn softmax<T: Value>(row: &mut [T]) {
    let mut max = row[0];
    for &v in row.iter() {
        if v > max {
            max = v;
        }
    }
    let mut sum = T::ZERO;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v = *v / sum;
    }
}

fn gbm_transform<T: Value>(t: Transform, mut acc: Vec<T>, g: usize) -> Vec<T> {
    match t {
        Transform::Identity => {}
        Transform::Sigmoid(scale) => {
            let scale = T::from_f64(scale);
            acc.iter_mut().for_each(|v| *v = sigmoid(*v, scale));
        }
        Transform::Exp => acc.iter_mut().for_each(|v| *v = v.exp()),
        Transform::SignedSquare => acc.iter_mut().for_each(|v| {
            let sq = *v * *v;
            *v = if *v < T::ZERO { -sq } else { sq }
        }),
        Transform::Hinge => acc
            .iter_mut()
            .for_each(|v| *v = if *v > T::ZERO { T::ONE } else { T::ZERO }),
        Transform::Softmax => acc.chunks_exact_mut(g).for_each(softmax),
        Transform::ArgMax => {
            return acc
                .chunks_exact(g)
                .map(|row| {
                    let mut best = 0;
                    for (i, v) in row.iter().enumerate() {
                        if *v > row[best] {
                            best = i;
                        }
                    }
                    T::from_f64(best as f64)
                })
                .collect();
        }
    }
    acc
}

/// ONNX Runtime's logistic: `1 / (1 + exp(-|x|))`, mirrored for negative `x`.
fn onnx_logistic<T: Value>(x: T) -> T {
    let v = T::ONE / (T::ONE + (-x.abs()).exp());
    if x < T::ZERO { T::ONE - v } else { v }
}

/// ONNX Runtime's `write_scores` for two or more scores.
fn onnx_post<T: Value>(post: PostTransform, row: &mut [T]) {
    match post {
        PostTransform::None => {}
        PostTransform::Logistic => row.iter_mut().for_each(|v| *v = onnx_logistic(*v)),
        PostTransform::Softmax => softmax(row),
        PostTransform::SoftmaxZero => {
            let mut max = T::from_f64(-f64::from(f32::MAX));
            for &v in row.iter() {
                if v > max {
                    max = v;
                }
            }
            let exp_neg_max = (-max).exp();
            let eps = T::from_f64(0.0000001);
            let mut sum = T::ZERO;
            for v in row.iter_mut() {
                if *v > eps || *v < -eps {
                    *v = (*v - max).exp();
                    sum += *v;
                } else {
                    *v = *v * exp_neg_max;
                }
            }
            row.iter_mut().for_each(|v| *v = *v / sum);
        }
    }
}

/// Labels and class scores of every row, as ONNX Runtime's `TreeEnsembleClassifier` computes
/// them. Returns (labels tensor data, scores `rows x classes`).
fn classify<T: Value>(
    h: &ClassifierHead<T>,
    mut acc: Vec<T>,
    g: usize,
    rows: usize,
) -> (TensorData, Vec<T>) {
    let n_classes = h.labels.len();
    let mut scores = Vec::with_capacity(rows * n_classes);
    let mut label_idx: Vec<LabelPick> = Vec::with_capacity(rows);
    for s in acc.chunks_exact_mut(g) {
        if n_classes > 2 {
            for (k, b) in h.base_values.iter().enumerate().take(g) {
                s[k] += *b;
            }
            let mut best: Option<usize> = None;
            for k in 0..g {
                if h.has_score[k] && best.is_none_or(|b| s[k] > s[b]) {
                    best = Some(k);
                }
            }
            label_idx.push(LabelPick::Class(best.unwrap_or(0)));
            onnx_post(h.post, s);
            scores.extend_from_slice(s);
            continue;
        }
        // Two classes.
        let has0 = h.has_score.first().copied().unwrap_or(false);
        let has1 = h.has_score.get(1).copied().unwrap_or(false);
        let mut len = 2;
        let mut add_second: i32 = -1;
        match h.base_values.len() {
            2 => {
                if has1 {
                    // ONNX Runtime: base_values[0] is unused and the class-0 score is reused.
                    s[1] = h.base_values[1] + s[0];
                    s[0] = -s[1];
                } else {
                    s[1] += h.base_values[1];
                    s[0] += h.base_values[0];
                }
            }
            1 => {
                s[0] += h.base_values[0];
                if !has1 {
                    len = 1;
                }
            }
            0 => {
                add_second = 3;
                if !has1 {
                    len = 1;
                }
            }
            _ => {}
        }
        let pos = if len == 2 && has1 {
            s[1]
        } else if has0 {
            s[0]
        } else {
            T::ZERO
        };
        let pick = if h.binary_case {
            if h.weights_all_positive {
                if pos > T::from_f64(0.5) {
                    add_second = 0;
                    LabelPick::Class(1)
                } else {
                    add_second = 1;
                    LabelPick::Class(0)
                }
            } else if pos > T::ZERO {
                add_second = 2;
                LabelPick::Class(1)
            } else {
                add_second = 3;
                LabelPick::Class(0)
            }
        } else if pos > T::ZERO {
            LabelPick::Raw(1)
        } else {
            LabelPick::Raw(0)
        };
        label_idx.push(pick);
        if len == 2 {
            onnx_post(h.post, &mut s[..2]);
            scores.extend_from_slice(&s[..2]);
        } else {
            let v = s[0];
            let pair = match add_second {
                0 | 1 => [T::ONE - v, v],
                2 | 3 if h.post == PostTransform::Logistic => [onnx_logistic(-v), onnx_logistic(v)],
                2 | 3 => [-v, v],
                _ => [v, T::ZERO],
            };
            scores.extend_from_slice(&pair);
        }
    }
    let labels = match &h.labels {
        Labels::Int(l) => TensorData::I64(
            label_idx
                .iter()
                .map(|p| match p {
                    LabelPick::Class(i) => l.get(*i).copied().unwrap_or(0),
                    LabelPick::Raw(v) => *v,
                })
                .collect(),
        ),
        Labels::Str(l) => TensorData::Bytes(
            label_idx
                .iter()
                .map(|p| {
                    let i = match p {
                        LabelPick::Class(i) => *i,
                        LabelPick::Raw(v) => *v as usize,
                    };
                    l.get(i).map(|s| s.as_bytes().to_vec()).unwrap_or_default()
                })
                .collect(),
        ),
    };
    (labels, scores)
}

/// A class index into the labels, or ONNX Runtime's literal 0/1 label for two-class models
/// whose weights cover both classes.
#[derive(Clone, Copy)]
enum LabelPick {
    Class(usize),
    Raw(i64),
}

/// The signature of a GBM model: one `features` input, one output named for what it holds.
pub(crate) fn gbm_signature(
    dtype: DataType,
    n_features: usize,
    n_groups: usize,
    transform: Transform,
) -> ModelSignature {
    let input = TensorSpec::new("features", dtype, vec![-1, n_features as i64]);
    let output = match (transform, n_groups) {
        (Transform::Sigmoid(_), 1) => TensorSpec::new("probability", dtype, vec![-1]),
        (Transform::ArgMax, _) => TensorSpec::new("prediction", dtype, vec![-1]),
        (_, 1) => TensorSpec::new("prediction", dtype, vec![-1]),
        (Transform::Softmax | Transform::Sigmoid(_), g) => {
            TensorSpec::new("probabilities", dtype, vec![-1, g as i64])
        }
        (_, g) => TensorSpec::new("prediction", dtype, vec![-1, g as i64]),
    };
    ModelSignature {
        inputs: vec![input],
        outputs: vec![output],
    }
}
