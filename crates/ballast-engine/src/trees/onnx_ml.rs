//! ONNX-ML `TreeEnsembleClassifier` / `TreeEnsembleRegressor` graphs (opset 1 and 3 of
//! `ai.onnx.ml`), as skl2onnx and onnxmltools emit for scikit-learn, XGBoost and LightGBM.
//!
//! The graph may hold exactly one tree-ensemble node plus `Cast`, `Identity` and `ZipMap`
//! around it; anything else is a load error naming the operator (such graphs run on the ONNX
//! Runtime backend). `ZipMap`'s list-of-maps output has no OIP form, so its output serves the
//! probability tensor under the same name.
//!
//! Semantics follow the ONNX spec as ONNX Runtime implements it (the reference users compare
//! with): `nodes_modes` comparisons, `nodes_missing_value_tracks_true` for NaN (otherwise NaN
//! compares false), leaf weights per class/target, `base_values`, `aggregate_function`,
//! `post_transform` and the classifier's two-class special cases. Thresholds and sums are
//! `f32` (`f64` with `nodes_values_as_tensor` of type double).

use std::collections::HashMap;
use std::path::Path;

use ballast_core::{DataType, ModelSignature, TensorSpec};
use tract_onnx::pb;
use tract_onnx::prelude::Framework;

use super::forest::{Aggregate, Forest, Leaf, Test, TreeNode, TreeSpec, Value};
use super::{
    ClassifierHead, ClassifierOutput, Ensemble, Head, Labels, PostTransform, RegressorHead,
};

pub(crate) enum Loaded {
    F32(Ensemble<f32>),
    F64(Ensemble<f64>),
}

const ELEM_FLOAT: i32 = 1;
const ELEM_INT32: i32 = 6;
const ELEM_INT64: i32 = 7;
const ELEM_DOUBLE: i32 = 11;

/// Operators that may surround the tree ensemble.
const PASS_THROUGH: &[&str] = &["Cast", "Identity", "ZipMap"];

pub(crate) fn load(path: &Path) -> Result<Loaded, String> {
    let model = tract_onnx::onnx()
        .proto_model_for_path(path)
        .map_err(|e| format!("not a readable ONNX file: {e:#}"))?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| "the ONNX file has no graph".to_string())?;
    from_graph(graph)
}

/// True when the graph contains an ONNX-ML tree-ensemble node (whatever else it holds).
///
/// Decodes only the operator names: prost skips every other field — initializers included —
/// without materialising it, so asking costs little even for a large network.
pub fn has_tree_ensemble(path: &Path) -> bool {
    use prost::Message;
    std::fs::read(path)
        .ok()
        .and_then(|bytes| OpsOnly::decode(bytes.as_slice()).ok())
        .and_then(|m| m.graph)
        .is_some_and(|g| g.node.iter().any(|n| is_tree_op(&n.op_type)))
}

/// `ModelProto` reduced to `graph` (field 7) → `node` (field 1) → `op_type` (field 4).
#[derive(Clone, PartialEq, prost::Message)]
struct OpsOnly {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphOps>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct GraphOps {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeOp>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NodeOp {
    #[prost(string, tag = "4")]
    op_type: String,
}

fn is_tree_op(op: &str) -> bool {
    op == "TreeEnsembleClassifier" || op == "TreeEnsembleRegressor"
}

pub(crate) fn from_graph(graph: &pb::GraphProto) -> Result<Loaded, String> {
    let mut tree_node = None;
    for node in &graph.node {
        if is_tree_op(&node.op_type) {
            if tree_node.replace(node).is_some() {
                return Err("the graph has more than one tree-ensemble node".into());
            }
        } else if !PASS_THROUGH.contains(&node.op_type.as_str()) {
            return Err(format!(
                "operator '{}' (node '{}') is not supported by the native tree engine, which runs \
                 graphs of one TreeEnsembleClassifier/Regressor with Cast/Identity/ZipMap around it; \
                 use backend = \"onnxruntime\" for this model",
                node.op_type, node.name
            ));
        }
    }
    let tree = tree_node.ok_or_else(|| "the graph has no TreeEnsemble node".to_string())?;
    let attrs: HashMap<&str, &pb::AttributeProto> = tree
        .attribute
        .iter()
        .map(|a| (a.name.as_str(), a))
        .collect();
    let double = attrs.contains_key("nodes_values_as_tensor");
    if double {
        build::<f64>(graph, tree, &attrs).map(Loaded::F64)
    } else {
        build::<f32>(graph, tree, &attrs).map(Loaded::F32)
    }
}

fn ints<'a>(attrs: &HashMap<&str, &'a pb::AttributeProto>, name: &str) -> &'a [i64] {
    attrs.get(name).map(|a| a.ints.as_slice()).unwrap_or(&[])
}

fn string(attrs: &HashMap<&str, &pb::AttributeProto>, name: &str, default: &str) -> String {
    attrs
        .get(name)
        .map(|a| String::from_utf8_lossy(&a.s).into_owned())
        .unwrap_or_else(|| default.to_string())
}

/// A float attribute, or its `_as_tensor` double form.
fn values<T: Value>(
    attrs: &HashMap<&str, &pb::AttributeProto>,
    name: &str,
) -> Result<Vec<T>, String> {
    if let Some(a) = attrs.get(format!("{name}_as_tensor").as_str()) {
        let t =
            a.t.as_ref()
                .ok_or_else(|| format!("{name}_as_tensor holds no tensor"))?;
        if !t.double_data.is_empty() {
            return Ok(t.double_data.iter().map(|&v| T::from_f64(v)).collect());
        }
        if !t.raw_data.is_empty() {
            if t.raw_data.len() % 8 != 0 {
                return Err(format!(
                    "{name}_as_tensor: raw data is not a whole number of doubles"
                ));
            }
            return Ok(t
                .raw_data
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    T::from_f64(f64::from_le_bytes(b))
                })
                .collect());
        }
        return Ok(t
            .float_data
            .iter()
            .map(|&v| T::from_f64(v as f64))
            .collect());
    }
    Ok(attrs
        .get(name)
        .map(|a| a.floats.iter().map(|&v| T::from_f64(v as f64)).collect())
        .unwrap_or_default())
}

fn build<T: Value>(
    graph: &pb::GraphProto,
    tree: &pb::NodeProto,
    attrs: &HashMap<&str, &pb::AttributeProto>,
) -> Result<Ensemble<T>, String> {
    let classifier = tree.op_type == "TreeEnsembleClassifier";
    let tree_ids = ints(attrs, "nodes_treeids");
    let node_ids = ints(attrs, "nodes_nodeids");
    let feature_ids = ints(attrs, "nodes_featureids");
    let true_ids = ints(attrs, "nodes_truenodeids");
    let false_ids = ints(attrs, "nodes_falsenodeids");
    let missing_true = ints(attrs, "nodes_missing_value_tracks_true");
    let thresholds: Vec<T> = values(attrs, "nodes_values")?;
    let modes: Vec<String> = attrs
        .get("nodes_modes")
        .map(|a| {
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default();
    let n = tree_ids.len();
    for (name, len) in [
        ("nodes_nodeids", node_ids.len()),
        ("nodes_featureids", feature_ids.len()),
        ("nodes_truenodeids", true_ids.len()),
        ("nodes_falsenodeids", false_ids.len()),
        ("nodes_values", thresholds.len()),
        ("nodes_modes", modes.len()),
    ] {
        if len != n {
            return Err(format!(
                "{name} has {len} entries but nodes_treeids has {n}"
            ));
        }
    }
    let prefix = if classifier { "class" } else { "target" };
    let w_tree = ints(attrs, &format!("{prefix}_treeids"));
    let w_node = ints(attrs, &format!("{prefix}_nodeids"));
    let w_id = ints(attrs, &format!("{prefix}_ids"));
    let w_value: Vec<T> = values(attrs, &format!("{prefix}_weights"))?;
    if [w_node.len(), w_id.len(), w_value.len()]
        .iter()
        .any(|&l| l != w_tree.len())
    {
        return Err(format!(
            "{prefix}_treeids, {prefix}_nodeids, {prefix}_ids and {prefix}_weights differ in length"
        ));
    }

    // Trees in order of first appearance; node index within tree by (tree id, node id).
    let mut tree_order: Vec<i64> = Vec::new();
    let mut tree_index: HashMap<i64, usize> = HashMap::new();
    let mut where_is: HashMap<(i64, i64), (usize, usize)> = HashMap::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for i in 0..n {
        let t = *tree_index.entry(tree_ids[i]).or_insert_with(|| {
            tree_order.push(tree_ids[i]);
            members.push(Vec::new());
            tree_order.len() - 1
        });
        let local = members[t].len();
        members[t].push(i);
        if where_is
            .insert((tree_ids[i], node_ids[i]), (t, local))
            .is_some()
        {
            return Err(format!(
                "node {} of tree {} appears twice",
                node_ids[i], tree_ids[i]
            ));
        }
    }
    let mut leaf_weights: HashMap<(i64, i64), Vec<(u32, T)>> = HashMap::new();
    let mut max_group = 0i64;
    let mut weights_classes = std::collections::BTreeSet::new();
    let mut all_positive = true;
    for k in 0..w_tree.len() {
        if w_id[k] < 0 {
            return Err(format!("{prefix}_ids[{k}] is negative"));
        }
        max_group = max_group.max(w_id[k]);
        weights_classes.insert(w_id[k]);
        if w_value[k] < T::ZERO {
            all_positive = false;
        }
        leaf_weights
            .entry((w_tree[k], w_node[k]))
            .or_default()
            .push((w_id[k] as u32, w_value[k]));
    }

    let (n_groups, labels) = if classifier {
        let ints_labels = ints(attrs, "classlabels_int64s");
        let labels = if !ints_labels.is_empty() {
            Labels::Int(ints_labels.to_vec())
        } else {
            let strings = attrs
                .get("classlabels_strings")
                .map(|a| {
                    a.strings
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            if strings.is_empty() {
                return Err(
                    "the classifier has neither classlabels_int64s nor classlabels_strings".into(),
                );
            }
            Labels::Str(strings)
        };
        if labels.len() < 2 {
            return Err("a classifier with fewer than 2 class labels is not supported".into());
        }
        if max_group as usize >= labels.len() {
            return Err(format!(
                "class_ids reach {max_group} but there are {} class labels",
                labels.len()
            ));
        }
        (labels.len(), Some(labels))
    } else {
        let n_targets = attrs.get("n_targets").map(|a| a.i).unwrap_or(1).max(1) as usize;
        if max_group as usize >= n_targets {
            return Err(format!(
                "target_ids reach {max_group} but n_targets is {n_targets}"
            ));
        }
        (n_targets, None)
    };

    let mut trees = Vec::with_capacity(tree_order.len());
    for (t, &tree_id) in tree_order.iter().enumerate() {
        let mut nodes = Vec::with_capacity(members[t].len());
        for &i in &members[t] {
            let mode = modes[i].as_str();
            if mode == "LEAF" {
                let w = leaf_weights
                    .remove(&(tree_id, node_ids[i]))
                    .unwrap_or_default();
                nodes.push(TreeNode::Leaf(Leaf::Weights(w)));
                continue;
            }
            let child = |id: i64, which: &str| {
                where_is
                    .get(&(tree_id, id))
                    .map(|&(_, local)| local)
                    .ok_or_else(|| {
                        format!(
                            "tree {tree_id}, node {}: {which} node {id} does not exist",
                            node_ids[i]
                        )
                    })
            };
            let th = thresholds[i];
            let test = match mode {
                "BRANCH_LEQ" => Test::Le(th),
                "BRANCH_LT" => Test::Lt(th),
                "BRANCH_GTE" => Test::Ge(th),
                "BRANCH_GT" => Test::Gt(th),
                "BRANCH_EQ" => Test::Eq(th),
                "BRANCH_NEQ" => Test::Ne(th),
                other => {
                    return Err(format!(
                        "tree {tree_id}, node {}: node mode '{other}' is not supported",
                        node_ids[i]
                    ));
                }
            };
            if feature_ids[i] < 0 {
                return Err(format!(
                    "tree {tree_id}, node {}: negative feature id",
                    node_ids[i]
                ));
            }
            nodes.push(TreeNode::Split {
                feature: feature_ids[i] as u32,
                test,
                // The "true" branch is the left child; NaN takes it only when tracked.
                default_left: missing_true.get(i).copied().unwrap_or(0) == 1,
                left: child(true_ids[i], "true")?,
                right: child(false_ids[i], "false")?,
            });
        }
        trees.push(single_group(nodes));
    }

    let post = match string(attrs, "post_transform", "NONE").as_str() {
        "NONE" => PostTransform::None,
        "LOGISTIC" => PostTransform::Logistic,
        "SOFTMAX" => PostTransform::Softmax,
        "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
        other => return Err(format!("post_transform '{other}' is not supported")),
    };
    let base_values: Vec<T> = values(attrs, "base_values")?;

    // Signature: the graph input feeding the ensemble (through Casts) and the graph outputs it
    // reaches (through Identity/Cast/ZipMap).
    let (input_spec, n_features) = input_signature(graph, tree, feature_ids)?;
    let aggregate = match string(attrs, "aggregate_function", "SUM").as_str() {
        "SUM" => Aggregate::Sum,
        "AVERAGE" => Aggregate::Sum,
        "MIN" => Aggregate::Min,
        "MAX" => Aggregate::Max,
        other => return Err(format!("aggregate_function '{other}' is not supported")),
    };
    let average = string(attrs, "aggregate_function", "SUM") == "AVERAGE";
    let forest = Forest::build(trees, n_features, n_groups, aggregate)?;

    let out_names = output_names(graph, tree);
    let (head, outputs) = if let Some(labels) = labels {
        if aggregate != Aggregate::Sum || average {
            return Err("TreeEnsembleClassifier supports only aggregate_function SUM".into());
        }
        let mut outputs = Vec::new();
        let mut specs = Vec::new();
        for (k, name) in out_names.iter().enumerate() {
            let Some(name) = name else { continue };
            if k == 0 {
                let dtype = match labels {
                    Labels::Int(_) => DataType::I64,
                    Labels::Str(_) => DataType::Bytes,
                };
                outputs.push((ClassifierOutput::Label, name.clone()));
                specs.push(TensorSpec::new(name.clone(), dtype, vec![-1]));
            } else {
                outputs.push((ClassifierOutput::Scores, name.clone()));
                specs.push(TensorSpec::new(
                    name.clone(),
                    T::DTYPE,
                    vec![-1, n_groups as i64],
                ));
            }
        }
        let has_score = (0..n_groups as i64)
            .map(|c| weights_classes.contains(&c))
            .collect();
        (
            Head::Classifier(ClassifierHead {
                binary_case: n_groups == 2 && weights_classes.len() == 1,
                weights_all_positive: all_positive,
                has_score,
                labels,
                base_values,
                post,
                outputs,
            }),
            specs,
        )
    } else {
        let name = out_names
            .first()
            .cloned()
            .flatten()
            .ok_or_else(|| "the regressor's output is not a graph output".to_string())?;
        let spec = TensorSpec::new(name.clone(), T::DTYPE, vec![-1, n_groups as i64]);
        (
            Head::Regressor(RegressorHead {
                base_values,
                post,
                average,
            }),
            vec![spec],
        )
    };
    if outputs.is_empty() {
        return Err("no output of the tree ensemble reaches a graph output".into());
    }
    let signature = ModelSignature {
        inputs: vec![input_spec],
        outputs,
    };
    Ok(Ensemble::new(forest, head, signature))
}

/// The graph input behind the ensemble's input (following Cast/Identity backwards).
fn input_signature(
    graph: &pb::GraphProto,
    tree: &pb::NodeProto,
    feature_ids: &[i64],
) -> Result<(TensorSpec, usize), String> {
    let mut name = tree
        .input
        .first()
        .cloned()
        .ok_or_else(|| "the tree-ensemble node has no input".to_string())?;
    loop {
        if let Some(input) = graph.input.iter().find(|i| i.name == name) {
            let (elem, dims) = tensor_type(input)
                .ok_or_else(|| format!("graph input '{name}' is not a tensor"))?;
            let dtype = match elem {
                ELEM_FLOAT => DataType::F32,
                ELEM_DOUBLE => DataType::F64,
                ELEM_INT64 => DataType::I64,
                ELEM_INT32 => DataType::I32,
                other => {
                    return Err(format!(
                        "graph input '{name}' has ONNX element type {other}; the tree engine takes \
                         float, double, int32 or int64 features"
                    ));
                }
            };
            let used = feature_ids
                .iter()
                .copied()
                .max()
                .map_or(0, |m| m as usize + 1);
            let n_features = match dims.get(1) {
                Some(&d) if d > 0 => {
                    if (d as usize) < used {
                        return Err(format!(
                            "graph input '{name}' has {d} features but the trees use feature {}",
                            used - 1
                        ));
                    }
                    d as usize
                }
                _ => used,
            };
            let spec = TensorSpec::new(name, dtype, vec![-1, n_features as i64]);
            return Ok((spec, n_features));
        }
        let producer = graph
            .node
            .iter()
            .find(|n| n.output.contains(&name))
            .ok_or_else(|| {
                format!("tensor '{name}' is neither a graph input nor produced by a node")
            })?;
        if !matches!(producer.op_type.as_str(), "Cast" | "Identity") {
            return Err(format!(
                "the ensemble's input comes from a '{}' node; only Cast/Identity may precede it",
                producer.op_type
            ));
        }
        name = producer
            .input
            .first()
            .cloned()
            .ok_or_else(|| format!("node '{}' has no input", producer.name))?;
    }
}

/// For each ensemble output in the node's order (label, scores / variable), the graph output it
/// reaches through pass-through nodes, if any.
fn output_names(graph: &pb::GraphProto, tree: &pb::NodeProto) -> Vec<Option<String>> {
    let graph_outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let mut result = Vec::new();
    for out in &tree.output {
        let mut name = out.clone();
        let mut found = None;
        for _ in 0..=graph.node.len() {
            if graph_outputs.contains(&name.as_str()) {
                found = Some(name.clone());
                break;
            }
            let Some(next) = graph.node.iter().find(|n| {
                PASS_THROUGH.contains(&n.op_type.as_str()) && n.input.first() == Some(&name)
            }) else {
                break;
            };
            let Some(o) = next.output.first() else { break };
            name = o.clone();
        }
        result.push(found);
    }
    result
}

fn tensor_type(v: &pb::ValueInfoProto) -> Option<(i32, Vec<i64>)> {
    let pb::type_proto::Value::TensorType(t) = v.r#type.as_ref()?.value.as_ref()?;
    let dims = t
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) => *v,
                    _ => -1,
                })
                .collect()
        })
        .unwrap_or_default();
    Some((t.elem_type, dims))
}

/// A tree whose leaves each carry one weight, all for the same class or target, becomes a
/// tree of plain leaf values for that group (the fast path); others keep weight lists.
fn single_group<T: Value>(nodes: Vec<TreeNode<T>>) -> TreeSpec<T> {
    let mut group = None;
    let uniform = nodes.iter().all(|n| match n {
        TreeNode::Leaf(Leaf::Weights(w)) => w.len() == 1 && *group.get_or_insert(w[0].0) == w[0].0,
        _ => true,
    });
    match (uniform, group) {
        (true, Some(g)) => TreeSpec {
            nodes: nodes
                .into_iter()
                .map(|n| match n {
                    TreeNode::Leaf(Leaf::Weights(w)) => TreeNode::Leaf(Leaf::Value(w[0].1)),
                    other => other,
                })
                .collect(),
            root: 0,
            group: g,
        },
        _ => TreeSpec {
            nodes,
            root: 0,
            group: 0,
        },
    }
}
