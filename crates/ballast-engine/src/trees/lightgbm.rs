//! LightGBM's text model format (`Booster.save_model("model.txt")`, LightGBM 3 and 4).
//!
//! Semantics reproduced from LightGBM's `Tree::NumericalDecision` / `CategoricalDecision`:
//! features and thresholds are `f64`; a numerical split goes left when `x <= threshold`; its
//! `decision_type` holds the categorical bit (1), the default-left bit (2) and the missing type
//! in bits 2–3 (0 none: NaN is read as 0; 1 zero: 0 and NaN take the default side; 2 NaN: NaN
//! takes the default side). A categorical split sends categories in its bitset left and NaN,
//! negative values and everything else right. Tree `k` adds to class `k % num_tree_per_iteration`;
//! sums are `f64`; `average_output` divides by the iteration count; the objective's transform
//! (with its `sigmoid:` scale) turns raw scores into predictions.

use std::collections::HashMap;
use std::path::Path;

use super::forest::{Aggregate, Forest, Leaf, Test, TreeNode, TreeSpec};
use super::{Ensemble, GbmHead, Head, Transform, gbm_signature};
use ballast_core::DataType;

const CATEGORICAL: u32 = 1;
const DEFAULT_LEFT: u32 = 2;

/// Loads and compiles `path`. Errors name the line's key or the unsupported feature.
pub(crate) fn load(path: &Path) -> Result<Ensemble<f64>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    parse(&text)
}

pub(crate) fn parse(text: &str) -> Result<Ensemble<f64>, String> {
    let mut lines = text.lines().map(str::trim_end);
    if lines.next().map(str::trim) != Some("tree") {
        return Err("not a LightGBM text model: the first line is not 'tree'".into());
    }
    let mut header: HashMap<&str, &str> = HashMap::new();
    let mut average_output = false;
    let mut blocks: Vec<HashMap<&str, &str>> = Vec::new();
    let mut current: Option<HashMap<&str, &str>> = None;
    for line in lines {
        let line = line.trim();
        if line == "end of trees" {
            break;
        }
        if line.is_empty() {
            if let Some(block) = current.take() {
                blocks.push(block);
            }
            continue;
        }
        if line.starts_with("Tree=") {
            if let Some(block) = current.take() {
                blocks.push(block);
            }
            current = Some(HashMap::new());
            continue;
        }
        match (&mut current, line.split_once('=')) {
            (Some(block), Some((k, v))) => {
                block.insert(k, v);
            }
            (None, Some((k, v))) => {
                header.insert(k, v);
            }
            (None, None) if line == "average_output" => average_output = true,
            _ => {}
        }
    }
    if let Some(block) = current.take() {
        blocks.push(block);
    }

    let get = |k: &str| header.get(k).copied();
    let num_class: usize = num(get("num_class").unwrap_or("1"), "num_class")?;
    let per_iteration: usize = num(
        get("num_tree_per_iteration").unwrap_or(&num_class.to_string()),
        "num_tree_per_iteration",
    )?;
    let max_feature_idx: usize = num(
        get("max_feature_idx").ok_or("the header has no max_feature_idx")?,
        "max_feature_idx",
    )?;
    let n_features = max_feature_idx + 1;
    let n_groups = per_iteration.max(1);
    let transform = objective(get("objective").unwrap_or(""), n_groups)?;

    let mut trees = Vec::with_capacity(blocks.len());
    for (t, block) in blocks.iter().enumerate() {
        trees.push(convert_tree(t, block, (t % n_groups) as u32)?);
    }
    let iterations = trees.len().div_ceil(n_groups).max(1);
    let forest = Forest::build(trees, n_features, n_groups, Aggregate::Sum)?;
    let head = Head::Gbm(GbmHead {
        base: vec![0.0; n_groups],
        divide_by: average_output.then_some(iterations as f64),
        transform,
    });
    let signature = gbm_signature(DataType::F64, n_features, n_groups, transform);
    Ok(Ensemble::new(forest, head, signature))
}

fn num<T: std::str::FromStr>(s: &str, key: &str) -> Result<T, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{key}={s} is not a valid number"))
}

fn list<T: std::str::FromStr>(
    block: &HashMap<&str, &str>,
    key: &str,
    t: usize,
) -> Result<Vec<T>, String> {
    let Some(raw) = block.get(key) else {
        return Ok(Vec::new());
    };
    raw.split_whitespace()
        .map(|v| {
            v.parse()
                .map_err(|_| format!("tree {t}: {key} holds '{v}', not a number"))
        })
        .collect()
}

/// The objective line, e.g. `binary sigmoid:1`, `multiclass num_class:3`, `regression`.
fn objective(line: &str, n_groups: usize) -> Result<Transform, String> {
    let mut tokens = line.split_whitespace();
    let name = tokens.next().unwrap_or("");
    let mut sigmoid = 1.0;
    let mut sqrt = false;
    for token in tokens {
        if let Some(v) = token.strip_prefix("sigmoid:") {
            sigmoid = num(v, "objective sigmoid")?;
        } else if token == "sqrt" {
            sqrt = true;
        }
    }
    Ok(match name {
        "binary" | "cross_entropy" | "xentropy" => Transform::Sigmoid(sigmoid),
        "multiclass" | "softmax" => {
            if n_groups < 2 {
                return Err("objective multiclass needs num_class >= 2".into());
            }
            Transform::Softmax
        }
        "multiclassova" | "multiclass_ova" | "ova" | "ovr" => Transform::Sigmoid(sigmoid),
        "poisson" | "gamma" | "tweedie" => Transform::Exp,
        "regression"
        | "regression_l2"
        | "l2"
        | "mean_squared_error"
        | "mse"
        | "l2_root"
        | "root_mean_squared_error"
        | "rmse"
        | "regression_l1"
        | "l1"
        | "mean_absolute_error"
        | "mae"
        | "huber"
        | "fair"
        | "quantile"
        | "mape"
        | "mean_absolute_percentage_error" => {
            if sqrt {
                Transform::SignedSquare
            } else {
                Transform::Identity
            }
        }
        "lambdarank" | "rank_xendcg" | "xendcg" | "xe_ndcg" | "xe_ndcg_mart" | "xendcg_mart"
        | "custom" | "none" | "null" | "" => Transform::Identity,
        other => {
            return Err(format!(
                "objective '{other}' is not supported (supported: binary, multiclass, multiclassova, \
                 regression and its l1/huber/fair/quantile/mape variants, poisson, gamma, tweedie, \
                 cross_entropy, lambdarank, rank_xendcg)"
            ));
        }
    })
}

fn convert_tree(
    t: usize,
    block: &HashMap<&str, &str>,
    group: u32,
) -> Result<TreeSpec<f64>, String> {
    if block.get("is_linear").is_some_and(|v| v.trim() == "1") {
        return Err(format!(
            "tree {t} is a linear tree (linear_tree=true), which is not supported"
        ));
    }
    let num_leaves: usize = num(
        block
            .get("num_leaves")
            .ok_or_else(|| format!("tree {t} has no num_leaves"))?,
        "num_leaves",
    )?;
    let leaf_value: Vec<f64> = list(block, "leaf_value", t)?;
    if leaf_value.len() != num_leaves {
        return Err(format!(
            "tree {t}: num_leaves={num_leaves} but leaf_value has {} values",
            leaf_value.len()
        ));
    }
    if num_leaves == 1 {
        return Ok(TreeSpec {
            nodes: vec![TreeNode::Leaf(Leaf::Value(leaf_value[0]))],
            root: 0,
            group,
        });
    }
    let split_feature: Vec<u32> = list(block, "split_feature", t)?;
    let threshold: Vec<f64> = list(block, "threshold", t)?;
    let decision_type: Vec<u32> = list(block, "decision_type", t)?;
    let left_child: Vec<i64> = list(block, "left_child", t)?;
    let right_child: Vec<i64> = list(block, "right_child", t)?;
    let cat_boundaries: Vec<usize> = list(block, "cat_boundaries", t)?;
    let cat_threshold: Vec<u32> = list(block, "cat_threshold", t)?;
    let n_splits = num_leaves - 1;
    for (key, len) in [
        ("split_feature", split_feature.len()),
        ("threshold", threshold.len()),
        ("decision_type", decision_type.len()),
        ("left_child", left_child.len()),
        ("right_child", right_child.len()),
    ] {
        if len != n_splits {
            return Err(format!(
                "tree {t}: {key} has {len} values, expected {n_splits} (num_leaves - 1)"
            ));
        }
    }
    // Splits are nodes 0..n_splits; leaf k is node n_splits + k; a child index c < 0 means
    // leaf !c (LightGBM's ~leaf encoding).
    let child = |c: i64| -> Result<usize, String> {
        if c < 0 {
            let leaf = (!c) as usize;
            if leaf >= num_leaves {
                return Err(format!("tree {t} refers to leaf {leaf} of {num_leaves}"));
            }
            Ok(n_splits + leaf)
        } else {
            Ok(c as usize)
        }
    };
    let mut nodes = Vec::with_capacity(n_splits + num_leaves);
    for i in 0..n_splits {
        let dt = decision_type[i];
        let missing = (dt >> 2) & 3;
        let (test, default_left) = if dt & CATEGORICAL != 0 {
            let idx = threshold[i] as usize;
            let (Some(&start), Some(&end)) = (cat_boundaries.get(idx), cat_boundaries.get(idx + 1))
            else {
                return Err(format!(
                    "tree {t}, split {i}: categorical set {idx} is missing from cat_boundaries"
                ));
            };
            let words = cat_threshold.get(start..end).ok_or_else(|| {
                format!("tree {t}, split {i}: cat_boundaries point past cat_threshold")
            })?;
            let categories = words
                .iter()
                .enumerate()
                .flat_map(|(w, bits)| {
                    (0..32)
                        .filter(move |b| bits >> b & 1 == 1)
                        .map(move |b| (w * 32 + b) as u32)
                })
                .collect();
            // Members go left; NaN, negative values and non-members go right (LightGBM 4).
            let test = Test::Categorical {
                categories,
                in_set_left: true,
                other_left: false,
            };
            (test, false)
        } else {
            match missing {
                // None: NaN is read as 0.0, so it goes where 0.0 goes.
                0 => (Test::Le(threshold[i]), 0.0 <= threshold[i]),
                1 => (Test::LeZeroMissing(threshold[i]), dt & DEFAULT_LEFT != 0),
                2 => (Test::Le(threshold[i]), dt & DEFAULT_LEFT != 0),
                other => {
                    return Err(format!(
                        "tree {t}, split {i}: unknown missing type {other} in decision_type {dt}"
                    ));
                }
            }
        };
        nodes.push(TreeNode::Split {
            feature: split_feature[i],
            test,
            default_left,
            left: child(left_child[i])?,
            right: child(right_child[i])?,
        });
    }
    nodes.extend(
        leaf_value
            .into_iter()
            .map(|v| TreeNode::Leaf(Leaf::Value(v))),
    );
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
    fn unsupported_and_malformed_models_are_named() {
        assert!(parse("hello").unwrap_err().contains("not a LightGBM"));
        let linear = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nmax_feature_idx=1\nobjective=regression\n\nTree=0\nnum_leaves=1\nleaf_value=0.5\nis_linear=1\n\nend of trees\n";
        assert!(parse(linear).unwrap_err().contains("linear tree"));
        let bogus = linear.replace("objective=regression", "objective=bogus");
        assert!(parse(&bogus).unwrap_err().contains("objective 'bogus'"));
        let short = "tree\nmax_feature_idx=0\nobjective=regression\n\nTree=0\nnum_leaves=2\nsplit_feature=0\nthreshold=0.5\ndecision_type=2\nleft_child=-1\nright_child=-2\nleaf_value=1\n\nend of trees\n";
        assert!(parse(short).unwrap_err().contains("leaf_value has 1"));
    }

    #[test]
    fn a_stump_follows_lightgbm_rules() {
        // Split on x0 <= 0.5, missing type NaN (8), default left (2): 8|2 = 10.
        let text = "tree\nmax_feature_idx=0\nobjective=regression\n\nTree=0\nnum_leaves=2\nsplit_feature=0\nthreshold=0.5\ndecision_type=10\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n\nend of trees\n";
        let e = parse(text).unwrap();
        let eval = |x: f64| {
            let mut acc = [0.0];
            e.forest.accumulate(&[x], &mut acc);
            acc[0]
        };
        assert_eq!(eval(0.5), 1.0, "<= goes left");
        assert_eq!(eval(0.500001), 2.0);
        assert_eq!(eval(f64::NAN), 1.0, "NaN default left");
        // Missing type none (0): NaN is 0.0, which is <= 0.5.
        let e = parse(&text.replace("decision_type=10", "decision_type=0")).unwrap();
        let mut acc = [0.0];
        e.forest.accumulate(&[f64::NAN], &mut acc);
        assert_eq!(acc[0], 1.0);
    }
}
