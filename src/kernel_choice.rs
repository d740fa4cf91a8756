//! Matrix-product kernels chosen by measuring them on this machine, at model load.
//!
//! tract picks the kernel of each matrix product from a cost model fitted per CPU vendor.
//! For the emotion model's products, whose depth is small (k = 16 to 960), it picks poorly on
//! some machines: on an AMD EPYC with AVX-512 here, forcing each product's fastest kernel
//! took one face from 1.22 to 1.02 ms (`bench --profile` per kernel, then per shape). The
//! fastest kernel depends on the CPU, so instead of a table written here the runtime
//! measures: it optimises the model once per candidate kernel, times every product node,
//! and keeps the fastest kernel per product shape.
//!
//! tract asks a ladder of registered "tiers" which kernel to run; the choice reaches tract
//! through a tier of this crate's, registered with `inventory` like tract's own, ahead of
//! them. A tier is a plain function with no state, so what it answers is process-wide, and
//! it answers only while [`measured_plan`] builds plans: other plans get tract's kernels. A
//! plan optimised on another thread during a measurement may get a forced kernel; every
//! kernel computes the same product, so that only ever changes speed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;
use tract_onnx::tract_core::ops::matmul::optimized::OptMatMul;
use tract_onnx::tract_core::tract_linalg::isa::IsaSet;
use tract_onnx::tract_core::tract_linalg::mmm::{retain_best, Query, Suitable};
use tract_onnx::tract_core::tract_linalg::mmm_tiers::MmmTier;
use tract_onnx::tract_core::tract_linalg::MmmDispatch;

use crate::model::ModelError;
use crate::profile::profile_plan;

/// Who picks the kernel of each matrix product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KernelChoice {
    /// tract's cost model.
    Tract,
    /// The fastest kernel measured on this machine at load ([`measured_plan`]).
    #[default]
    Measured,
}

/// A product's shape as tract's kernel selection sees it: rows, depth, columns.
pub type ProductShape = (usize, usize, usize);

/// What the tier answers.
enum TierAnswer {
    /// Nothing: tract's tiers decide.
    Silent,
    /// While measuring: the kernel every f32 product runs on.
    Forced(&'static str),
    /// While building the final plan: the fastest kernel measured for each shape.
    Chosen(BTreeMap<ProductShape, &'static str>),
}

static ANSWER: RwLock<TierAnswer> = RwLock::new(TierAnswer::Silent);
/// A measurement sets the process-wide answer, so two must not overlap.
static MEASURING: Mutex<()> = Mutex::new(());

/// The tier's answer: the forced or chosen kernel for an f32 product of known shape.
///
/// Matrix-vector products (n = 1) are left to tract: it has kernels made for them.
fn preferred(_isa: &IsaSet, accumulator: DatumType, query: &Query, _suitable: &[Suitable]) -> Option<&'static str> {
    if accumulator != DatumType::F32 || query.n == Some(1) {
        return None;
    }
    match &*ANSWER.read().unwrap_or_else(PoisonError::into_inner) {
        TierAnswer::Silent => None,
        TierAnswer::Forced(kernel) => Some(kernel),
        TierAnswer::Chosen(by_shape) => by_shape.get(&(query.m?, query.k?, query.n?)).copied(),
    }
}

inventory::submit! {
    MmmTier {
        // Every architecture, above all of tract's tiers (theirs go up to 8).
        arch: None,
        precedence: 200,
        name: "emotion-pi measured",
        applies: |_| true,
        preferred,
    }
}

/// The f32 matrix-product kernels worth trying here: tract's best class for this machine
/// (its own code for this architecture, at the best instruction-set level), without the
/// matrix-vector ones.
pub fn candidate_kernels() -> Vec<&'static str> {
    let dispatch = MmmDispatch::native();
    let mut suitable = dispatch.suitable(&Query::plain(DatumType::F32, None, None, None));
    retain_best(&mut suitable);
    let mut names: Vec<&'static str> = dispatch
        .runnable()
        .iter()
        .filter(|kernel| kernel.nr() > 1 && suitable.iter().any(|(s, _, _)| s.name() == kernel.name()))
        .map(|kernel| kernel.name())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The shape of every matrix product in `plan`, by node id.
pub fn product_shapes(plan: &TypedRunnableModel) -> HashMap<usize, ProductShape> {
    plan.model()
        .nodes
        .iter()
        .filter_map(|node| {
            let op = node.op_as::<OptMatMul>()?;
            let dim = |axis: Option<usize>| axis.and_then(|ix| op.c_fact.shape.get(ix)?.to_usize().ok());
            let k = op.guess_k()?.to_usize().ok()?;
            Some((node.id, (dim(op.c_m_axis)?, k, dim(op.c_n_axis)?)))
        })
        .collect()
}

/// The kernel each product node of `plan` runs on, by node id.
pub fn product_kernels(plan: &TypedRunnableModel) -> HashMap<usize, String> {
    plan.model()
        .nodes
        .iter()
        .filter_map(|node| Some((node.id, node.op_as::<OptMatMul>()?.mmm.first()?.name().to_owned())))
        .collect()
}

/// Microseconds per run spent on each matrix-matrix product shape of `plan`: its product
/// nodes and the nodes that pack their inputs, whose layout depends on the kernel.
fn time_per_shape(
    path: &std::path::Path,
    plan: &Arc<TypedRunnableModel>,
    runs: usize,
) -> Result<HashMap<ProductShape, f64>, ModelError> {
    let profile = profile_plan(path, plan, runs)?;
    let node_us: HashMap<usize, f64> = profile.nodes.iter().map(|n| (n.node, n.mean_us)).collect();
    let model = plan.model();
    let mut per_shape: HashMap<ProductShape, f64> = HashMap::new();
    for (node_id, shape) in product_shapes(plan).into_iter().filter(|(_, shape)| shape.2 > 1) {
        let packing: f64 = model.nodes[node_id]
            .inputs
            .iter()
            .filter(|outlet| model.nodes[outlet.node].op.name() == "OptMatMulPack")
            .filter_map(|outlet| node_us.get(&outlet.node))
            .sum();
        *per_shape.entry(shape).or_default() += node_us.get(&node_id).copied().unwrap_or(0.0) + packing;
    }
    Ok(per_shape)
}

/// Per shape, the kernel with the least time, from `timings[shape][kernel]` in microseconds.
/// Ties go to the kernel that sorts first, so the choice does not depend on hash order.
pub fn fastest_per_shape(
    timings: &HashMap<ProductShape, HashMap<&'static str, f64>>,
) -> BTreeMap<ProductShape, &'static str> {
    timings
        .iter()
        .filter_map(|(shape, by_kernel)| {
            let best = by_kernel.iter().min_by(|a, b| a.1.total_cmp(b.1).then_with(|| a.0.cmp(b.0)))?;
            Some((*shape, *best.0))
        })
        .collect()
}

/// How the kernels were chosen for one model.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelReport {
    /// Kernels tried.
    pub candidates: usize,
    /// What timing them found; `None` with a single candidate, which has nothing to beat.
    pub timings: Option<KernelTimings>,
    /// The kernel chosen for each matrix-matrix product shape of the model.
    pub chosen: BTreeMap<ProductShape, &'static str>,
}

/// Product times measured at load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelTimings {
    /// Timed runs of each candidate's plan per round.
    pub runs: usize,
    /// Product time per run with tract's kernels, microseconds (fastest of the rounds).
    pub tract_us: f64,
    /// Product time per run with the chosen kernels, as measured per shape.
    pub chosen_us: f64,
}

/// How long measuring the kernels may take: rounds, and runs of each candidate's plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeasureBudget {
    /// Rounds over all candidates; the fastest round counts, which discounts moments when
    /// other work had the CPU.
    pub rounds: usize,
    /// Most timed runs of one candidate's plan per round.
    pub max_runs: usize,
    /// Time the timed runs of one candidate's plan may take per round, in microseconds: a slow
    /// machine (or an emulator) gets fewer runs rather than a load that takes minutes.
    pub plan_us: f64,
}

impl MeasureBudget {
    /// Timed runs per plan when one run takes `run_us`: as many as fit in `plan_us`, at least
    /// one and at most `max_runs`.
    pub fn runs_for(&self, run_us: f64) -> usize {
        let fitting = if run_us > 0.0 { (self.plan_us / run_us).floor() } else { f64::INFINITY };
        (fitting.min(self.max_runs as f64) as usize).max(1)
    }
}

/// Builds the plan `build` makes, with each product on the kernel measured fastest here.
///
/// `build` runs once per candidate kernel in each round, and twice more: for tract's own
/// picks (timed first to set how many runs fit the budget, then in every round) and at the
/// end. With a single candidate nothing is
/// timed (under qemu, where that happens, one run of the shipped model takes 16 s).
pub fn measured_plan(
    path: &std::path::Path,
    build: impl Fn() -> Result<Arc<TypedRunnableModel>, ModelError>,
    budget: MeasureBudget,
) -> Result<(Arc<TypedRunnableModel>, KernelReport), ModelError> {
    let _measuring = MEASURING.lock().unwrap_or_else(PoisonError::into_inner);
    let candidates = candidate_kernels();
    let measured = (|| {
        answer(TierAnswer::Silent);
        let tract_plan = build()?;
        let (chosen, timings) = match candidates.as_slice() {
            [only] => {
                let shapes = product_shapes(&tract_plan).into_values().filter(|shape| shape.2 > 1);
                (shapes.map(|shape| (shape, *only)).collect(), None)
            }
            _ => {
                let runs = budget.runs_for(profile_plan(path, &tract_plan, 1)?.total_us);
                let (chosen, tract_us, chosen_us) =
                    time_candidates(path, &tract_plan, &build, &candidates, budget.rounds, runs)?;
                (chosen, Some(KernelTimings { runs, tract_us, chosen_us }))
            }
        };
        answer(TierAnswer::Chosen(chosen.clone()));
        Ok::<_, ModelError>((build()?, KernelReport { candidates: candidates.len(), timings, chosen }))
    })();
    answer(TierAnswer::Silent);
    measured
}

/// Times `tract_plan` (tract's picks) and each of `candidates` over `rounds` rounds of `runs`
/// runs: the fastest kernel per shape, tract's product time and the chosen kernels' product time.
fn time_candidates(
    path: &std::path::Path,
    tract_plan: &Arc<TypedRunnableModel>,
    build: &impl Fn() -> Result<Arc<TypedRunnableModel>, ModelError>,
    candidates: &[&'static str],
    rounds: usize,
    runs: usize,
) -> Result<(BTreeMap<ProductShape, &'static str>, f64, f64), ModelError> {
    let mut timings: HashMap<ProductShape, HashMap<&'static str, f64>> = HashMap::new();
    let mut tract_us = f64::INFINITY;
    for _ in 0..rounds.max(1) {
        tract_us = tract_us.min(time_per_shape(path, tract_plan, runs)?.values().sum());
        for &kernel in candidates {
            answer(TierAnswer::Forced(kernel));
            for (shape, us) in time_per_shape(path, &build()?, runs)? {
                let best = timings.entry(shape).or_default().entry(kernel).or_insert(f64::INFINITY);
                *best = best.min(us);
            }
        }
    }
    let chosen = fastest_per_shape(&timings);
    let chosen_us = chosen.iter().map(|(shape, kernel)| timings[shape][kernel]).sum();
    Ok((chosen, tract_us, chosen_us))
}

fn answer(answer: TierAnswer) {
    *ANSWER.write().unwrap_or_else(PoisonError::into_inner) = answer;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fastest_kernel_wins_per_shape_and_ties_go_to_the_first_name() {
        let mut timings: HashMap<ProductShape, HashMap<&'static str, f64>> = HashMap::new();
        timings.insert((576, 24, 144), HashMap::from([("a_16x12", 80.0), ("b_24x4", 61.5), ("c_32x6", 70.0)]));
        timings.insert((96, 576, 36), HashMap::from([("a_16x12", 50.0), ("b_24x4", 52.0)]));
        timings.insert((64, 192, 36), HashMap::from([("b_24x4", 9.0), ("a_16x12", 9.0)]));
        let chosen = fastest_per_shape(&timings);
        assert_eq!(chosen.len(), 3);
        assert_eq!(chosen[&(576, 24, 144)], "b_24x4");
        assert_eq!(chosen[&(96, 576, 36)], "a_16x12");
        assert_eq!(chosen[&(64, 192, 36)], "a_16x12");
    }

    #[test]
    fn runs_fill_the_budget_between_one_and_the_most_allowed() {
        let budget = MeasureBudget { rounds: 2, max_runs: 10, plan_us: 100_000.0 };
        // 100 ms fits 25 runs of 4 ms, capped at 10; 7 of 14 ms; none of a second, so one.
        assert_eq!(budget.runs_for(4_000.0), 10);
        assert_eq!(budget.runs_for(14_000.0), 7);
        assert_eq!(budget.runs_for(1_000_000.0), 1);
        assert_eq!(budget.runs_for(0.0), 10);
    }

    #[test]
    fn candidates_are_matrix_kernels_this_machine_runs() {
        let candidates = candidate_kernels();
        assert!(!candidates.is_empty());
        let runnable = MmmDispatch::native().runnable();
        for name in &candidates {
            let kernel = runnable.iter().find(|k| k.name() == *name).expect("a runnable kernel");
            assert!(kernel.nr() > 1, "{name} is a matrix-vector kernel");
            assert_eq!(kernel.internal_type(), DatumType::F32, "{name}");
        }
    }
}
