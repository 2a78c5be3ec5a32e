//! XGBoost's JSON and UBJSON model formats (`Booster.save_model("model.json")` from XGBoost
//! 1.0, `model.ubj` — the default since 2.1 — read through [`super::ubjson`]).
//!
//! Semantics reproduced from XGBoost's CPU predictor: features are read as `f32`; a split goes
//! left when `x < split_condition`; NaN follows `default_left`; a categorical split sends the
//! listed categories right and everything else (other categories, negative or out-of-range
//! values) left; margins start at the base score (stored in probability space for logistic
//! objectives, log space for count/gamma/tweedie, as is for the rest; a vector in 3.x) and add
//! each tree's leaf in file order in `f32`; the objective's transform turns margins into
//! predictions.

use std::path::Path;

use serde::Deserialize;

use super::forest::{Aggregate, Forest, Leaf, Test, TreeNode, TreeSpec};
use super::{Ensemble, GbmHead, Head, Transform, gbm_signature};
use ballast_core::DataType;

#[derive(Deserialize)]
struct Model {
    learner: Learner,
}

#[derive(Deserialize)]
struct Learner {
    learner_model_param: LearnerParam,
    objective: Objective,
    gradient_booster: serde_json::Value,
}

#[derive(Deserialize)]
struct LearnerParam {
    base_score: String,
    #[serde(default)]
    num_class: Option<String>,
    num_feature: String,
    #[serde(default)]
    num_target: Option<String>,
}

#[derive(Deserialize)]
struct Objective {
    name: String,
}

#[derive(Deserialize)]
struct GbTree {
    trees: Vec<Tree>,
    tree_info: Vec<u32>,
}

#[derive(Deserialize)]
struct Tree {
    left_children: Vec<i64>,
    right_children: Vec<i64>,
    split_indices: Vec<u32>,
    split_conditions: Vec<f32>,
    default_left: Vec<Flag>,
    #[serde(default)]
    split_type: Vec<u8>,
    #[serde(default)]
    categories: Vec<u32>,
    #[serde(default)]
    categories_nodes: Vec<usize>,
    #[serde(default)]
    categories_segments: Vec<usize>,
    #[serde(default)]
    categories_sizes: Vec<usize>,
    tree_param: TreeParam,
}

#[derive(Deserialize)]
struct TreeParam {
    #[serde(default)]
    size_leaf_vector: Option<String>,
}

/// `default_left` is `[0, 1, ...]` in some versions and `[false, true, ...]` in others.
#[derive(Deserialize)]
#[serde(untagged)]
enum Flag {
    Int(i64),
    Bool(bool),
}

impl Flag {
    fn is_set(&self) -> bool {
        match self {
            Flag::Int(i) => *i != 0,
            Flag::Bool(b) => *b,
        }
    }
}

/// Loads and compiles `path`. Errors name the unsupported feature or malformed field.
pub(crate) fn load(path: &Path) -> Result<Ensemble<f32>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    parse(&bytes)
}

/// Parses an XGBoost model in JSON or UBJSON (told apart by their first bytes, not the file
/// name, so either works under any name).
pub(crate) fn parse(bytes: &[u8]) -> Result<Ensemble<f32>, String> {
    let model: Model = if super::ubjson::looks_like_ubjson(bytes) {
        let value =
            super::ubjson::parse(bytes).map_err(|e| format!("not an XGBoost UBJSON model: {e}"))?;
        serde_path_to_error::deserialize(value).map_err(|e| {
            format!(
                "not an XGBoost model (read as UBJSON): at '{}': {}",
                e.path(),
                e.inner()
            )
        })?
    } else {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de).map_err(|e| {
            format!(
                "not an XGBoost JSON model: at '{}': {}",
                e.path(),
                e.inner()
            )
        })?
    };
    let learner = model.learner;
    let param = &learner.learner_model_param;
    let n_features: usize = parse_num(&param.num_feature, "num_feature")?;
    let num_class: usize = match &param.num_class {
        Some(s) => parse_num(s, "num_class")?,
        None => 0,
    };
    let num_target: usize = match &param.num_target {
        Some(s) => parse_num(s, "num_target")?,
        None => 1,
    };
    let n_groups = num_class.max(num_target).max(1);
    let objective = learner.objective.name.as_str();
    let (transform, margin_of) = objective_rules(objective, n_groups)?;

    let base: Vec<f64> = parse_base_score(&param.base_score)?;
    let base: Vec<f32> = match base.len() {
        1 => vec![margin_of(base[0]) as f32; n_groups],
        n if n == n_groups => base.iter().map(|&b| margin_of(b) as f32).collect(),
        n => {
            return Err(format!(
                "base_score has {n} values but the model has {n_groups} outputs"
            ));
        }
    };

    let (gbtree, weight_drop) = booster(learner.gradient_booster)?;
    if gbtree.tree_info.len() != gbtree.trees.len() {
        return Err(format!(
            "tree_info lists {} trees but the model has {}",
            gbtree.tree_info.len(),
            gbtree.trees.len()
        ));
    }
    let mut trees = Vec::with_capacity(gbtree.trees.len());
    for (t, (tree, group)) in gbtree.trees.iter().zip(&gbtree.tree_info).enumerate() {
        let weight = weight_drop.as_ref().and_then(|w| w.get(t).copied());
        trees.push(convert_tree(t, tree, *group, weight)?);
    }
    let forest = Forest::build(trees, n_features, n_groups, Aggregate::Sum)?;
    let head = Head::Gbm(GbmHead {
        base,
        divide_by: None,
        transform,
    });
    let signature = gbm_signature(DataType::F32, n_features, n_groups, transform);
    Ok(Ensemble::new(forest, head, signature))
}

fn parse_num(s: &str, what: &str) -> Result<usize, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{what} is '{s}', not a number"))
}

/// `"5E-1"` (XGBoost < 3) or `"[3.9E-1]"` / `"[a,b,c]"` (3.x, one per output).
fn parse_base_score(s: &str) -> Result<Vec<f64>, String> {
    let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(',')
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .map_err(|_| format!("base_score '{s}' is not a number or list of numbers"))
        })
        .collect()
}

type MarginOf = fn(f64) -> f64;

/// The prediction transform and the base-score-to-margin rule of an objective.
fn objective_rules(name: &str, n_groups: usize) -> Result<(Transform, MarginOf), String> {
    fn identity(b: f64) -> f64 {
        b
    }
    fn logit(b: f64) -> f64 {
        (b / (1.0 - b)).ln()
    }
    fn log(b: f64) -> f64 {
        b.ln()
    }
    let rules: (Transform, MarginOf) = match name {
        "binary:logistic" | "reg:logistic" => (Transform::Sigmoid(1.0), logit),
        "binary:logitraw" => (Transform::Identity, logit),
        "binary:hinge" => (Transform::Hinge, identity),
        "multi:softprob" => (Transform::Softmax, identity),
        "multi:softmax" => (Transform::ArgMax, identity),
        "count:poisson" | "reg:gamma" | "reg:tweedie" | "survival:cox" | "survival:aft" => {
            (Transform::Exp, log)
        }
        "reg:squarederror"
        | "reg:linear"
        | "reg:squaredlogerror"
        | "reg:pseudohubererror"
        | "reg:absoluteerror"
        | "reg:quantileerror"
        | "rank:pairwise"
        | "rank:ndcg"
        | "rank:map" => (Transform::Identity, identity),
        other => {
            return Err(format!(
                "objective '{other}' is not supported (supported: binary:logistic, binary:logitraw, \
                 binary:hinge, reg:logistic, reg:squarederror and the other reg:* losses, \
                 multi:softprob, multi:softmax, count:poisson, reg:gamma, reg:tweedie, rank:*)"
            ));
        }
    };
    if matches!(rules.0, Transform::Softmax | Transform::ArgMax) && n_groups < 2 {
        return Err(format!("objective '{name}' needs num_class >= 2"));
    }
    Ok(rules)
}

/// The tree model inside `gradient_booster`: `gbtree` directly, `dart` with per-tree weights.
fn booster(value: serde_json::Value) -> Result<(GbTree, Option<Vec<f32>>), String> {
    let name = value
        .get("name")
        .and_then(|n| n.as_str())
        .unwrap_or("")
        .to_string();
    let parse_gbtree = |v: &serde_json::Value| -> Result<GbTree, String> {
        let model = v
            .get("model")
            .ok_or_else(|| "gradient_booster has no 'model'".to_string())?;
        GbTree::deserialize(model).map_err(|e| format!("gradient_booster.model: {e}"))
    };
    match name.as_str() {
        "gbtree" => Ok((parse_gbtree(&value)?, None)),
        "dart" => {
            let inner = value
                .get("gbtree")
                .ok_or_else(|| "dart booster has no 'gbtree'".to_string())?;
            let weights: Vec<f32> = value
                .get("weight_drop")
                .map(|w| Vec::<f32>::deserialize(w).map_err(|e| format!("weight_drop: {e}")))
                .transpose()?
                .unwrap_or_default();
            Ok((parse_gbtree(inner)?, Some(weights)))
        }
        "gblinear" => Err(
            "booster 'gblinear' (a linear model) is not supported; only tree boosters \
             (gbtree, dart) are"
                .into(),
        ),
        other => Err(format!("booster '{other}' is not supported")),
    }
}

fn convert_tree(
    t: usize,
    tree: &Tree,
    group: u32,
    weight: Option<f32>,
) -> Result<TreeSpec<f32>, String> {
    if let Some(s) = &tree.tree_param.size_leaf_vector
        && s.trim() != "1"
        && s.trim() != "0"
    {
        return Err(format!(
            "tree {t} has vector leaves (size_leaf_vector={s}, multi_strategy=\"multi_output_tree\"), \
             which are not supported"
        ));
    }
    let n = tree.left_children.len();
    if [
        tree.right_children.len(),
        tree.split_indices.len(),
        tree.split_conditions.len(),
        tree.default_left.len(),
    ]
    .iter()
    .any(|&l| l != n)
    {
        return Err(format!("tree {t}: node arrays have different lengths"));
    }
    // Categories per node: categories[segment .. segment + size] for node categories_nodes[k].
    let mut node_categories: Vec<Option<&[u32]>> = vec![None; n];
    for (k, &node) in tree.categories_nodes.iter().enumerate() {
        let (Some(&start), Some(&size)) = (
            tree.categories_segments.get(k),
            tree.categories_sizes.get(k),
        ) else {
            return Err(format!(
                "tree {t}: categories_segments/sizes are shorter than categories_nodes"
            ));
        };
        let cats = tree
            .categories
            .get(start..start + size)
            .ok_or_else(|| format!("tree {t}: categories of node {node} are out of range"))?;
        if node >= n {
            return Err(format!(
                "tree {t}: categories_nodes names node {node}, which does not exist"
            ));
        }
        node_categories[node] = Some(cats);
    }
    let mut nodes = Vec::with_capacity(n);
    #[allow(clippy::needless_range_loop)] // i indexes eight parallel arrays
    for i in 0..n {
        let left = tree.left_children[i];
        if left < 0 {
            let v = tree.split_conditions[i];
            let v = match weight {
                Some(w) => v * w,
                None => v,
            };
            nodes.push(TreeNode::Leaf(Leaf::Value(v)));
            continue;
        }
        let right = tree.right_children[i];
        if right < 0 {
            return Err(format!(
                "tree {t}, node {i} has a left child but no right child"
            ));
        }
        let categorical = tree.split_type.get(i).copied().unwrap_or(0) == 1;
        let test = if categorical {
            let cats = node_categories[i].ok_or_else(|| {
                format!("tree {t}, node {i} is a categorical split without categories")
            })?;
            Test::Categorical {
                categories: cats.to_vec(),
                in_set_left: false,
                other_left: true,
            }
        } else {
            Test::Lt(tree.split_conditions[i])
        };
        nodes.push(TreeNode::Split {
            feature: tree.split_indices[i],
            test,
            default_left: tree.default_left[i].is_set(),
            left: left as usize,
            right: right as usize,
        });
    }
    Ok(TreeSpec {
        nodes,
        root: 0,
        group,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_parts_are_named() {
        let model = |objective: &str, booster: &str| {
            format!(
                r#"{{"learner": {{"learner_model_param": {{"base_score": "5E-1", "num_class": "0", "num_feature": "2"}},
                "objective": {{"name": "{objective}"}},
                "gradient_booster": {{"name": "{booster}", "model": {{"trees": [], "tree_info": []}}}}}}}}"#
            )
        };
        let err = parse(model("reg:bogus", "gbtree").as_bytes()).unwrap_err();
        assert!(err.contains("objective 'reg:bogus'"), "{err}");
        let err = parse(model("reg:squarederror", "gblinear").as_bytes()).unwrap_err();
        assert!(err.contains("gblinear"), "{err}");
        let err = parse(b"{\"learner\": {}}").unwrap_err();
        assert!(err.contains("learner"), "{err}");
        let ok = parse(model("reg:squarederror", "gbtree").as_bytes()).unwrap();
        assert_eq!(ok.forest.n_trees(), 0);
    }

    #[test]
    fn base_score_forms() {
        assert_eq!(parse_base_score("5E-1").unwrap(), vec![0.5]);
        assert_eq!(parse_base_score("[3.9E-1]").unwrap(), vec![0.39]);
        assert_eq!(parse_base_score("[1E-1,-2E-1]").unwrap(), vec![0.1, -0.2]);
        assert!(parse_base_score("[x]").is_err());
    }
}
