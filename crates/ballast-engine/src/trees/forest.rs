//! The flattened forest every tree format compiles to, and the batch evaluator.
//!
//! Layout: all trees' nodes in one array, each tree in pre-order, so a split's left child is
//! the next node and only the right child's index is stored. A node is 16 bytes for `f32`
//! forests (XGBoost, ONNX-ML) and 24 for `f64` (LightGBM), so a tree of depth 6 spans a few
//! cache lines.
//!
//! Every split is normalised to "left when `x < value`, missing (NaN) goes to its default
//! side": XGBoost's `<` is that already; `<=` becomes `<` against the next representable value
//! above the threshold (exact for every non-NaN input); `>=`/`>` swap the children. What does
//! not fit (categorical sets, LightGBM's zero-as-missing, ONNX `BRANCH_EQ`/`NEQ`) is flagged
//! slow and decided from a side table, so the common path stays one compare and one select.
//!
//! Evaluation is tree-major within blocks of rows: each tree is walked for every row of a
//! block before the next tree, keeping that tree's nodes in L1 while the block's rows stream
//! past. Accumulation follows the tree order of the file, in the forest's own precision, so
//! sums round exactly as the reference libraries round them.

use std::fmt::Debug;

use ballast_core::DataType;

/// The numeric type of a forest's thresholds, leaf values and accumulators.
pub trait Value:
    Copy
    + Debug
    + Default
    + PartialOrd
    + Send
    + Sync
    + 'static
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
{
    const DTYPE: DataType;
    const ZERO: Self;
    const ONE: Self;
    const NEG_INFINITY: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn is_nan(self) -> bool;
    fn exp(self) -> Self;
    fn abs(self) -> Self;
    fn ln(self) -> Self;
    /// The least value greater than `self` (itself for +inf and NaN).
    fn next_up(self) -> Self;
    fn nan() -> Self;
    /// Negates when `sign` is SIGN (bit 31), else returns the value unchanged; branch-free.
    fn flip(self, sign: u32) -> Self;
    /// `!(self >= t)`: true when `self < t` or either is NaN. One compare on the concrete type
    /// (through `PartialOrd` the generic form costs several instructions more per step).
    fn lt_or_nan(self, t: Self) -> bool;
    /// Wraps values in the tensor buffer of this type.
    fn wrap(values: Vec<Self>) -> ballast_core::TensorData;
}

macro_rules! impl_value {
    ($t:ty, $bits:ty, $dt:expr, $wrap:path) => {
        impl Value for $t {
            const DTYPE: DataType = $dt;
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn next_up(self) -> Self {
                <$t>::next_up(self)
            }
            #[inline(always)]
            fn nan() -> Self {
                <$t>::NAN
            }
            #[inline(always)]
            fn flip(self, sign: u32) -> Self {
                <$t>::from_bits(self.to_bits() ^ ((sign as $bits) << (<$bits>::BITS - 32)))
            }
            #[inline(always)]
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            fn lt_or_nan(self, t: Self) -> bool {
                !(self >= t)
            }
            fn wrap(values: Vec<Self>) -> ballast_core::TensorData {
                $wrap(values)
            }
        }
    };
}
impl_value!(f32, u32, DataType::F32, ballast_core::TensorData::F32);
impl_value!(f64, u64, DataType::F64, ballast_core::TensorData::F64);

const FEATURE_MASK: u32 = (1 << 24) - 1;
const LEAF: u32 = 1 << 24;
const SLOW: u32 = 1 << 25;
const VECTOR: u32 = 1 << 26;
/// Negate the feature before comparing (see [`Node`]).
const SIGN: u32 = 1 << 31;

/// One node of the flattened forest (16 bytes for `f32`, 24 for `f64`).
///
/// Fast split: go to `left` when `!(s·x >= value)`, else to `right`, where `s` is -1 when
/// `meta` has SIGN and the feature is `meta & FEATURE_MASK`. That one comparison also sends NaN
/// left, so compilation orders the children so that NaN's default side is `left`: a split
/// stated as "left when x < t, NaN right" becomes "B when !(-x >= next_up(-t))", which is the
/// same test for every non-NaN x. Leaves point at themselves on both sides, so a walk may step
/// past a leaf and stay there: the lane walkers run every row to the tree's depth without
/// testing for leaves. Slow split (SLOW): `value` holds an index into `Forest::slow`.
#[derive(Clone, Copy, Debug)]
struct Node<T> {
    value: T,
    meta: u32,
    left: u32,
    right: u32,
}

/// A split the fast path cannot decide.
#[derive(Clone, Debug)]
struct Slow<T> {
    split: SlowSplit<T>,
    /// Where NaN goes.
    default_left: bool,
}

#[derive(Clone, Debug)]
enum SlowSplit<T> {
    /// Category membership: the value truncated to an integer is looked up in `bits`.
    /// `in_set_left` says where members go, non-members go the other way; NaN goes by the
    /// node's default side; values that cannot be a category (negative, beyond the set) go to
    /// `other_left`.
    Categorical {
        bits: Vec<u32>,
        in_set_left: bool,
        other_left: bool,
    },
    /// LightGBM zero-as-missing: NaN and |x| <= 1e-35 go by the default side, else `x <= t`.
    ZeroMissing { threshold: T },
    /// ONNX `BRANCH_EQ` (left when equal) and `BRANCH_NEQ` (left when not equal).
    Equal { threshold: T, equal_left: bool },
}

/// How a split compares, as the source format states it.
#[derive(Clone, Debug)]
pub enum Test<T> {
    /// Left when `x < t`.
    Lt(T),
    /// Left when `x <= t`.
    Le(T),
    /// Left when `x > t`.
    Gt(T),
    /// Left when `x >= t`.
    Ge(T),
    /// Left when `x == t`.
    Eq(T),
    /// Left when `x != t`.
    Ne(T),
    /// Left when `x <= t`, with zero (|x| <= 1e-35) and NaN taking the default side.
    LeZeroMissing(T),
    /// Category membership of `trunc(x)`.
    Categorical {
        categories: Vec<u32>,
        in_set_left: bool,
        other_left: bool,
    },
}

/// What a leaf adds.
#[derive(Clone, Debug)]
pub enum Leaf<T> {
    /// One value, added to the tree's group.
    Value(T),
    /// Weights for several groups (ONNX-ML leaves voting for several classes).
    Weights(Vec<(u32, T)>),
}

/// One node of a tree as a format describes it; children are indices into the same tree.
#[derive(Clone, Debug)]
pub enum TreeNode<T> {
    Split {
        feature: u32,
        test: Test<T>,
        /// Where NaN goes.
        default_left: bool,
        left: usize,
        right: usize,
    },
    Leaf(Leaf<T>),
}

/// A tree before flattening.
#[derive(Clone, Debug)]
pub struct TreeSpec<T> {
    pub nodes: Vec<TreeNode<T>>,
    pub root: usize,
    /// The output group (class or target) single-value leaves add to.
    pub group: u32,
}

/// How leaf values combine across trees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    Sum,
    Min,
    Max,
}

/// A compiled forest.
#[derive(Debug)]
pub struct Forest<T> {
    nodes: Vec<Node<T>>,
    /// Leaf value per node (zero for splits and vector leaves).
    leaf_value: Vec<T>,
    /// For vector leaves: (start, count) into `leaf_weights`, per node.
    leaf_range: Vec<(u32, u32)>,
    roots: Vec<u32>,
    /// Per tree: its output group, its depth, and whether the lane walkers can walk it (no
    /// slow splits, no vector leaves).
    groups: Vec<u32>,
    depths: Vec<u32>,
    fast: Vec<bool>,
    /// Per tree t: the greatest depth among trees t..t+LANES when all of them are fast (the
    /// one-row path walks them side by side), else None.
    lane_run: Vec<Option<u32>>,
    slow: Vec<Slow<T>>,
    leaf_weights: Vec<(u32, T)>,
    n_features: usize,
    n_groups: usize,
    aggregate: Aggregate,
}

/// A node waiting to be placed: its id in the source tree, the flattened split it hangs from
/// (and whether on that split's left side), and its depth.
type Pending = (usize, Option<(usize, bool)>, u32);

/// Rows per block of the tree-major loop: the block's accumulators and rows stay in L1/L2
/// while each tree is walked for all of them.
const BLOCK_ROWS: usize = 64;
/// Walks advanced side by side (rows through one tree, or one row through several trees), so
/// their dependent load chains overlap.
const LANES: usize = 8;

impl<T: Value> Forest<T> {
    /// Flattens `trees`, checking every index, feature and group. Errors say which tree and
    /// node is malformed.
    pub fn build(
        trees: Vec<TreeSpec<T>>,
        n_features: usize,
        n_groups: usize,
        aggregate: Aggregate,
    ) -> Result<Self, String> {
        if n_groups == 0 {
            return Err("the model has no outputs (0 classes or targets)".into());
        }
        if n_features > FEATURE_MASK as usize {
            return Err(format!(
                "{n_features} features is more than the 2^24 supported"
            ));
        }
        let mut forest = Forest {
            nodes: Vec::new(),
            leaf_value: Vec::new(),
            leaf_range: Vec::new(),
            roots: Vec::with_capacity(trees.len()),
            groups: Vec::with_capacity(trees.len()),
            depths: Vec::with_capacity(trees.len()),
            fast: Vec::with_capacity(trees.len()),
            lane_run: Vec::new(),
            slow: Vec::new(),
            leaf_weights: Vec::new(),
            n_features,
            n_groups,
            aggregate,
        };
        for (t, tree) in trees.into_iter().enumerate() {
            forest.add_tree(t, tree)?;
        }
        let n = forest.roots.len();
        forest.lane_run = (0..n)
            .map(|t| {
                (t + LANES <= n && forest.fast[t..t + LANES].iter().all(|&f| f)).then(|| {
                    forest.depths[t..t + LANES]
                        .iter()
                        .copied()
                        .max()
                        .unwrap_or(0)
                })
            })
            .collect();
        if forest.nodes.len() >= u32::MAX as usize || forest.slow.len() >= 1 << 24 {
            return Err("the forest is too large (2^32 nodes or 2^24 special splits)".into());
        }
        Ok(forest)
    }

    fn push(&mut self, node: Node<T>, leaf_value: T, range: (u32, u32)) -> usize {
        self.nodes.push(node);
        self.leaf_value.push(leaf_value);
        self.leaf_range.push(range);
        self.nodes.len() - 1
    }

    fn add_tree(&mut self, t: usize, tree: TreeSpec<T>) -> Result<(), String> {
        if tree.group as usize >= self.n_groups {
            return Err(format!(
                "tree {t} adds to output {} but the model has {} outputs",
                tree.group, self.n_groups
            ));
        }
        if tree.root >= tree.nodes.len() {
            return Err(format!("tree {t} has no node {} (its root)", tree.root));
        }
        self.roots.push(self.nodes.len() as u32);
        self.groups.push(tree.group);
        let mut depth = 0u32;
        let mut fast = true;
        let mut visited = vec![false; tree.nodes.len()];
        // Pre-order with an explicit stack; `parent` is the flattened split (and which of its
        // sides) that the node being placed hangs from.
        let mut stack: Vec<Pending> = vec![(tree.root, None, 0)];
        while let Some((id, parent, level)) = stack.pop() {
            depth = depth.max(level);
            let Some(node) = tree.nodes.get(id) else {
                return Err(format!(
                    "tree {t} refers to node {id}, which does not exist"
                ));
            };
            if std::mem::replace(&mut visited[id], true) {
                return Err(format!(
                    "tree {t}: node {id} is reached twice (the tree has a cycle or a shared node)"
                ));
            }
            let here = self.nodes.len();
            if let Some((p, is_left)) = parent {
                if is_left {
                    self.nodes[p].left = here as u32;
                } else {
                    self.nodes[p].right = here as u32;
                }
            }
            let selfloop = |meta| Node {
                value: T::ZERO,
                meta,
                left: here as u32,
                right: here as u32,
            };
            match node {
                TreeNode::Leaf(Leaf::Value(v)) => {
                    self.push(selfloop(LEAF), *v, (0, 0));
                }
                TreeNode::Leaf(Leaf::Weights(w)) => {
                    fast = false;
                    if let Some((g, _)) = w.iter().find(|(g, _)| *g as usize >= self.n_groups) {
                        return Err(format!(
                            "tree {t}, node {id}: a leaf weight is for output {g} but the model has {} outputs",
                            self.n_groups
                        ));
                    }
                    let range = (self.leaf_weights.len() as u32, w.len() as u32);
                    self.leaf_weights.extend_from_slice(w);
                    self.push(selfloop(LEAF | VECTOR), T::ZERO, range);
                }
                TreeNode::Split {
                    feature,
                    test,
                    default_left,
                    left,
                    right,
                } => {
                    if *feature as usize >= self.n_features {
                        return Err(format!(
                            "tree {t}, node {id} splits on feature {feature} but the model has {} features",
                            self.n_features
                        ));
                    }
                    let (value, meta, swap) = self.compile_test(test, *default_left)?;
                    fast &= meta & SLOW == 0;
                    self.push(
                        Node {
                            value,
                            meta: meta | feature,
                            left: 0,
                            right: 0,
                        },
                        T::ZERO,
                        (0, 0),
                    );
                    // The node's `left` side leads to `first`.
                    let (first, second) = if swap {
                        (*right, *left)
                    } else {
                        (*left, *right)
                    };
                    stack.push((second, Some((here, false)), level + 1));
                    stack.push((first, Some((here, true)), level + 1));
                }
            }
        }
        self.depths.push(depth);
        self.fast.push(fast);
        Ok(())
    }

    /// Compiles a test to (value, meta flags, whether the node's left side is the source's
    /// right child).
    fn compile_test(
        &mut self,
        test: &Test<T>,
        default_left: bool,
    ) -> Result<(T, u32, bool), String> {
        // Normalise to "A when x < t, else B" (with NaN's default side among A/B).
        let (t, nan_to_a, swapped) = match test {
            Test::Lt(t) => (*t, default_left, false),
            Test::Le(t) => (t.next_up(), default_left, false),
            // x >= t  <=>  !(x < t): A is the source's right child.
            Test::Ge(t) => (*t, !default_left, true),
            // x > t  <=>  !(x < next_up(t)).
            Test::Gt(t) => (t.next_up(), !default_left, true),
            Test::Eq(t) => {
                return Ok(self.slow(
                    SlowSplit::Equal {
                        threshold: *t,
                        equal_left: true,
                    },
                    default_left,
                ));
            }
            Test::Ne(t) => {
                return Ok(self.slow(
                    SlowSplit::Equal {
                        threshold: *t,
                        equal_left: false,
                    },
                    default_left,
                ));
            }
            Test::LeZeroMissing(t) => {
                return Ok(self.slow(SlowSplit::ZeroMissing { threshold: *t }, default_left));
            }
            Test::Categorical {
                categories,
                in_set_left,
                other_left,
            } => {
                let max = categories.iter().copied().max().unwrap_or(0) as usize;
                if max >= 1 << 24 {
                    return Err(format!("category {max} is too large (max 2^24)"));
                }
                let mut bits = vec![
                    0u32;
                    if categories.is_empty() {
                        0
                    } else {
                        max / 32 + 1
                    }
                ];
                for &c in categories {
                    bits[c as usize / 32] |= 1 << (c % 32);
                }
                let split = SlowSplit::Categorical {
                    bits,
                    in_set_left: *in_set_left,
                    other_left: *other_left,
                };
                return Ok(self.slow(split, default_left));
            }
        };
        Ok(if nan_to_a {
            // left = A when !(x >= t): x < t, or NaN.
            (t, 0, swapped)
        } else if t == T::NEG_INFINITY {
            // Never x < -inf, and NaN goes to B: always B (both sides B).
            (T::NEG_INFINITY, 0, !swapped)
        } else {
            // left = B when !(-x >= next_up(-t)): x >= t, or NaN.
            ((-t).next_up(), SIGN, !swapped)
        })
    }

    fn slow(&mut self, split: SlowSplit<T>, default_left: bool) -> (T, u32, bool) {
        let index = self.slow.len();
        self.slow.push(Slow {
            split,
            default_left,
        });
        (T::from_f64(index as f64), SLOW, false)
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    pub fn n_groups(&self) -> usize {
        self.n_groups
    }

    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    pub fn n_nodes(&self) -> usize {
        self.nodes.len()
    }

    pub fn aggregate(&self) -> Aggregate {
        self.aggregate
    }

    /// Adds every tree's contribution for the rows of `x` (row-major, `n_features` wide) into
    /// `acc` (`rows * n_groups`, pre-filled by the caller: base scores for sums, NaN for min/max
    /// meaning "no value yet").
    pub fn accumulate(&self, x: &[T], acc: &mut [T]) {
        let nf = self.n_features.max(1);
        let g = self.n_groups;
        debug_assert_eq!(x.len() / nf, acc.len() / g);
        for (xb, ab) in x
            .chunks(BLOCK_ROWS * nf)
            .zip(acc.chunks_mut(BLOCK_ROWS * g))
        {
            self.accumulate_block(xb, ab, nf, g);
        }
    }

    #[inline]
    fn accumulate_block(&self, x: &[T], acc: &mut [T], nf: usize, g: usize) {
        let rows = x.len() / nf;
        let sum = self.aggregate == Aggregate::Sum;
        // Groups of LANES rows: tree by tree, rows side by side.
        let lane_rows = if sum && self.n_features > 0 {
            rows - rows % LANES
        } else {
            0
        };
        for (t, &root) in self.roots.iter().enumerate() {
            if lane_rows == 0 {
                break;
            }
            let root = root as usize;
            let group = self.groups[t] as usize;
            if self.fast[t] {
                for (xs, out) in x[..lane_rows * nf]
                    .chunks_exact(LANES * nf)
                    .zip(acc[..lane_rows * g].chunks_exact_mut(LANES * g))
                {
                    let at = self.walk_lanes([root; LANES], self.depths[t], |lane| lane * nf, xs);
                    for (lane, i) in at.iter().enumerate() {
                        out[lane * g + group] += self.leaf_value[*i];
                    }
                }
            } else {
                for (row, out) in x[..lane_rows * nf]
                    .chunks_exact(nf)
                    .zip(acc[..lane_rows * g].chunks_exact_mut(g))
                {
                    let leaf = self.leaf(root, row);
                    self.add_leaf(leaf, group, out);
                }
            }
        }
        // The remaining rows: one row at a time, trees side by side.
        for (row, out) in x[lane_rows * nf..]
            .chunks_exact(nf)
            .zip(acc[lane_rows * g..].chunks_exact_mut(g))
        {
            self.accumulate_row(row, out);
        }
    }

    /// Every tree for one row, in tree order: runs of LANES fast trees are walked side by side.
    fn accumulate_row(&self, row: &[T], out: &mut [T]) {
        let n = self.roots.len();
        let sum = self.aggregate == Aggregate::Sum && self.n_features > 0;
        let mut t = 0;
        while t < n {
            if let (true, Some(depth)) = (sum, self.lane_run[t]) {
                let roots: [usize; LANES] =
                    std::array::from_fn(|lane| self.roots[t + lane] as usize);
                let at = self.walk_lanes(roots, depth, |_| 0, row);
                for (lane, i) in at.iter().enumerate() {
                    out[self.groups[t + lane] as usize] += self.leaf_value[*i];
                }
                t += LANES;
            } else {
                let leaf = self.leaf(self.roots[t] as usize, row);
                self.add_leaf(leaf, self.groups[t] as usize, out);
                t += 1;
            }
        }
    }

    /// Advances LANES walks `depth` steps (leaves absorb), lane `l` starting at `roots[l]` and
    /// reading its row at `x[offset(l)..]`. Only for trees without slow splits.
    #[inline(always)]
    fn walk_lanes(
        &self,
        roots: [usize; LANES],
        depth: u32,
        offset: impl Fn(usize) -> usize,
        x: &[T],
    ) -> [usize; LANES] {
        let nodes = &self.nodes[..];
        let mut at = roots;
        let offsets: [usize; LANES] = std::array::from_fn(offset);
        for _ in 0..depth {
            for lane in 0..LANES {
                let n = &nodes[at[lane]];
                let v = x[offsets[lane] + (n.meta & FEATURE_MASK) as usize];
                let left = v.flip(n.meta & SIGN).lt_or_nan(n.value);
                at[lane] = if left { n.left } else { n.right } as usize;
            }
        }
        at
    }

    /// Walks one tree for one row, any split kind; returns the leaf's index.
    #[inline]
    fn leaf(&self, root: usize, row: &[T]) -> usize {
        let nodes = &self.nodes[..];
        let mut i = root;
        loop {
            let n = &nodes[i];
            if n.meta & LEAF != 0 {
                return i;
            }
            let x = row[(n.meta & FEATURE_MASK) as usize];
            let left = if n.meta & SLOW != 0 {
                self.decide_slow(n, x)
            } else {
                x.flip(n.meta & SIGN).lt_or_nan(n.value)
            };
            i = if left { n.left } else { n.right } as usize;
        }
    }

    #[cold]
    fn decide_slow(&self, n: &Node<T>, x: T) -> bool {
        let Some(Slow {
            split,
            default_left,
        }) = self.slow.get(n.value.to_f64() as usize)
        else {
            return true;
        };
        let default_left = *default_left;
        match split {
            SlowSplit::ZeroMissing { threshold } => {
                let zero = T::from_f64(1e-35);
                if x.is_nan() || (x >= -zero && x <= zero) {
                    default_left
                } else {
                    x <= *threshold
                }
            }
            SlowSplit::Equal {
                threshold,
                equal_left,
            } => {
                if x.is_nan() {
                    default_left
                } else {
                    (x == *threshold) == *equal_left
                }
            }
            SlowSplit::Categorical {
                bits,
                in_set_left,
                other_left,
            } => {
                if x.is_nan() {
                    return default_left;
                }
                let v = x.to_f64().trunc();
                if v < 0.0 || v >= (bits.len() * 32) as f64 {
                    return *other_left;
                }
                let c = v as usize;
                if bits[c / 32] >> (c % 32) & 1 == 1 {
                    *in_set_left
                } else {
                    !*in_set_left
                }
            }
        }
    }

    #[inline(always)]
    fn add_leaf(&self, i: usize, group: usize, out: &mut [T]) {
        let leaf = &self.nodes[i];
        if leaf.meta & VECTOR == 0 {
            self.combine(&mut out[group], self.leaf_value[i]);
        } else {
            let (start, count) = self.leaf_range[i];
            let start = start as usize;
            for &(g, w) in &self.leaf_weights[start..start + count as usize] {
                self.combine(&mut out[g as usize], w);
            }
        }
    }

    /// Folds one leaf value into an accumulator (min/max treat NaN as "no value yet").
    #[inline(always)]
    fn combine(&self, slot: &mut T, value: T) {
        *slot = match self.aggregate {
            Aggregate::Sum => *slot + value,
            Aggregate::Min if slot.is_nan() || value < *slot => value,
            Aggregate::Max if slot.is_nan() || value > *slot => value,
            Aggregate::Min | Aggregate::Max => *slot,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf<T>(v: T) -> TreeNode<T> {
        TreeNode::Leaf(Leaf::Value(v))
    }

    fn stump(test: Test<f32>, default_left: bool) -> Forest<f32> {
        let tree = TreeSpec {
            nodes: vec![
                TreeNode::Split {
                    feature: 0,
                    test,
                    default_left,
                    left: 1,
                    right: 2,
                },
                leaf(-1.0),
                leaf(1.0),
            ],
            root: 0,
            group: 0,
        };
        Forest::build(vec![tree], 1, 1, Aggregate::Sum).unwrap()
    }

    fn eval(f: &Forest<f32>, x: f32) -> f32 {
        let mut acc = [0.0];
        f.accumulate(&[x], &mut acc);
        acc[0]
    }

    #[test]
    fn comparisons_follow_the_stated_operator_at_the_threshold() {
        for (test, below, at, above) in [
            (Test::Lt(0.5), -1.0, 1.0, 1.0),
            (Test::Le(0.5), -1.0, -1.0, 1.0),
            (Test::Gt(0.5), 1.0, 1.0, -1.0),
            (Test::Ge(0.5), 1.0, -1.0, -1.0),
            (Test::Eq(0.5), 1.0, -1.0, 1.0),
            (Test::Ne(0.5), -1.0, 1.0, -1.0),
        ] {
            let f = stump(test.clone(), true);
            assert_eq!(eval(&f, 0.25), below, "{test:?} below");
            assert_eq!(eval(&f, 0.5), at, "{test:?} at");
            assert_eq!(eval(&f, 0.75), above, "{test:?} above");
            assert_eq!(eval(&f, f32::NAN), -1.0, "{test:?} NaN default left");
            let f = stump(test.clone(), false);
            assert_eq!(eval(&f, f32::NAN), 1.0, "{test:?} NaN default right");
        }
    }

    #[test]
    fn categorical_and_zero_missing_splits() {
        let f = stump(
            Test::Categorical {
                categories: vec![1, 3, 40],
                in_set_left: false,
                other_left: true,
            },
            true,
        );
        assert_eq!(eval(&f, 3.0), 1.0);
        assert_eq!(eval(&f, 3.7), 1.0, "truncated to 3");
        assert_eq!(eval(&f, 40.0), 1.0);
        assert_eq!(eval(&f, 2.0), -1.0);
        assert_eq!(eval(&f, -1.0), -1.0);
        assert_eq!(eval(&f, 1000.0), -1.0);
        let f = stump(Test::LeZeroMissing(-0.5), false);
        assert_eq!(eval(&f, 0.0), 1.0, "zero is missing: default right");
        assert_eq!(eval(&f, f32::NAN), 1.0);
        assert_eq!(eval(&f, -0.6), -1.0);
    }

    #[test]
    fn malformed_trees_are_errors_not_panics() {
        let cyclic = TreeSpec {
            nodes: vec![TreeNode::Split {
                feature: 0,
                test: Test::Lt(0.0f32),
                default_left: true,
                left: 0,
                right: 0,
            }],
            root: 0,
            group: 0,
        };
        let err = Forest::build(vec![cyclic], 1, 1, Aggregate::Sum).unwrap_err();
        assert!(err.contains("reached twice"), "{err}");
        let dangling = TreeSpec {
            nodes: vec![TreeNode::Split {
                feature: 0,
                test: Test::Lt(0.0f32),
                default_left: true,
                left: 1,
                right: 7,
            }],
            root: 0,
            group: 0,
        };
        let err = Forest::build(vec![dangling], 1, 1, Aggregate::Sum).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        let feature = TreeSpec {
            nodes: vec![
                TreeNode::Split {
                    feature: 3,
                    test: Test::Lt(0.0f32),
                    default_left: true,
                    left: 1,
                    right: 2,
                },
                leaf(0.0),
                leaf(0.0),
            ],
            root: 0,
            group: 0,
        };
        let err = Forest::build(vec![feature], 2, 1, Aggregate::Sum).unwrap_err();
        assert!(err.contains("feature 3"), "{err}");
    }

    #[test]
    fn min_max_and_vector_leaves() {
        let tree = |v: f32| TreeSpec {
            nodes: vec![TreeNode::Leaf(Leaf::Weights(vec![(0, v), (1, -v)]))],
            root: 0,
            group: 0,
        };
        let f = Forest::build(vec![tree(1.0), tree(3.0)], 1, 2, Aggregate::Max).unwrap();
        let mut acc = [f32::NAN; 2];
        f.accumulate(&[0.0], &mut acc);
        assert_eq!(acc, [3.0, -1.0]);
        let f = Forest::build(vec![tree(1.0), tree(3.0)], 1, 2, Aggregate::Sum).unwrap();
        let mut acc = [0.0; 2];
        f.accumulate(&[0.0], &mut acc);
        assert_eq!(acc, [4.0, -4.0]);
    }
}
