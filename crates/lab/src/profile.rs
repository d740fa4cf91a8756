//! `emotion-pi-lab profile`: where an optimised model spends its time, node by node.
//!
//! tract's own profiler lives in `tract-libcli`, whose command-line-tool dependencies (GPU
//! back-ends, a second clap) this firmware does not want; the same figures come from timing
//! each node through tract-core's evaluation hook. Tuning the models or
//! the runtime (see models/MODEL_CARD.md) starts from these numbers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{eval, SimpleState};

use emotion_pi::analyze::{Analyzer, AnalyzerSettings, ModelPaths};
use emotion_pi::model::ModelError;
use emotion_pi::report::Report;

/// One node of the optimised plan and its mean time per run.
#[derive(Debug, Clone, Serialize)]
pub struct NodeTiming {
    pub node: usize,
    pub name: String,
    pub op: String,
    /// Shapes of the node's inputs.
    pub inputs: Vec<String>,
    /// What tract reports about the op, e.g. the matrix-product kernel it chose.
    pub detail: String,
    pub mean_us: f64,
}

/// Time per op kind, summed over its nodes.
#[derive(Debug, Clone, Serialize)]
pub struct OpTiming {
    pub op: String,
    pub nodes: usize,
    pub mean_us: f64,
}

/// A model's profile: every node, slowest first, and the totals per op kind.
#[derive(Debug, Clone, Serialize)]
pub struct ModelProfile {
    pub model: String,
    pub runs: usize,
    /// Sum of the node times of one run; the plan's own bookkeeping between nodes is not in it.
    pub total_us: f64,
    pub by_op: Vec<OpTiming>,
    pub nodes: Vec<NodeTiming>,
}

/// Runs `plan` once to warm up, then `runs` times on zeros of its input shape, timing each node.
///
/// The models here have no value-dependent control flow, so zeros cost what a face does.
pub fn profile_plan(path: &Path, plan: &Arc<TypedRunnableModel>, runs: usize) -> Result<ModelProfile, ModelError> {
    let run_error = |cause: anyhow::Error| ModelError::Run { path: path.to_owned(), cause };
    let model = plan.model();
    let inputs: TVec<TValue> = model
        .input_outlets()
        .map_err(run_error)?
        .iter()
        .map(|outlet| {
            let fact = model.outlet_fact(*outlet)?;
            let shape =
                fact.shape.as_concrete().ok_or_else(|| anyhow::anyhow!("input shape {:?} is not fixed", fact.shape))?;
            Ok(Tensor::zero_dt(fact.datum_type, shape)?.into())
        })
        .collect::<TractResult<_>>()
        .map_err(run_error)?;
    let mut state = SimpleState::new(plan).map_err(run_error)?;
    state.run(inputs.clone()).map_err(run_error)?;
    let mut seconds = vec![0.0f64; model.nodes.len()];
    for _ in 0..runs {
        state
            .run_plan_with_eval(inputs.clone(), |context, op_state, node, node_inputs| {
                let started = Instant::now();
                let outputs = eval(context, op_state, node, node_inputs);
                seconds[node.id] += started.elapsed().as_secs_f64();
                outputs
            })
            .map_err(run_error)?;
    }
    let per_run_us = |s: f64| s * 1e6 / runs.max(1) as f64;
    let mut nodes = Vec::with_capacity(model.nodes.len());
    for node in &model.nodes {
        let shapes = node
            .inputs
            .iter()
            .map(|outlet| model.outlet_fact(*outlet).map(|fact| format!("{:?}", fact.shape)))
            .collect::<TractResult<Vec<_>>>()
            .map_err(run_error)?;
        nodes.push(NodeTiming {
            node: node.id,
            name: node.name.clone(),
            op: node.op.name().to_string(),
            inputs: shapes,
            detail: node.op.info().map(|lines| lines.join("; ")).unwrap_or_default(),
            mean_us: per_run_us(seconds[node.id]),
        });
    }
    nodes.sort_by(|a, b| b.mean_us.total_cmp(&a.mean_us));
    let mut by_op: HashMap<&str, (usize, f64)> = HashMap::new();
    for node in &nodes {
        let entry = by_op.entry(node.op.as_str()).or_default();
        entry.0 += 1;
        entry.1 += node.mean_us;
    }
    let mut by_op: Vec<OpTiming> =
        by_op.into_iter().map(|(op, (count, us))| OpTiming { op: op.to_owned(), nodes: count, mean_us: us }).collect();
    by_op.sort_by(|a, b| b.mean_us.total_cmp(&a.mean_us).then_with(|| a.op.cmp(&b.op)));
    Ok(ModelProfile {
        model: path.display().to_string(),
        runs,
        total_us: nodes.iter().map(|n| n.mean_us).sum(),
        by_op,
        nodes,
    })
}

/// Nodes a profile lists per model in its text form (the JSON form has all of them).
pub const TOP_NODES: usize = 15;

/// The profiles of both models, as `emotion-pi-lab profile` prints them.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Profiles(pub Vec<ModelProfile>);

impl Report for Profiles {
    fn to_text(&self) -> String {
        let tables: Vec<String> = self.0.iter().map(|p| p.to_text(TOP_NODES)).collect();
        tables.join("\n")
    }
}

/// Profiles the detector and the emotion model node by node over `runs` runs each.
pub fn profile_models(paths: &ModelPaths, runs: usize) -> anyhow::Result<Profiles> {
    let analyzer = Analyzer::load(paths, AnalyzerSettings::default())?;
    Ok(Profiles(vec![
        profile_plan(&paths.detector, analyzer.detector().plan(), runs)?,
        profile_plan(&paths.classifier, analyzer.classifier().plan(), runs)?,
    ]))
}

impl ModelProfile {
    /// The per-op totals and the `top` slowest nodes as a table.
    pub fn to_text(&self, top: usize) -> String {
        let share = |us: f64| if self.total_us > 0.0 { 100.0 * us / self.total_us } else { 0.0 };
        let mut text = format!("{}: {:.1} us per run over {} runs\n\n", self.model, self.total_us, self.runs);
        text += &format!("{:<28}{:>7}{:>11}{:>8}\n", "op", "nodes", "us", "share");
        for op in &self.by_op {
            text += &format!("{:<28}{:>7}{:>11.1}{:>7.1}%\n", op.op, op.nodes, op.mean_us, share(op.mean_us));
        }
        text += &format!("\nslowest {} of {} nodes\n", top.min(self.nodes.len()), self.nodes.len());
        for node in self.nodes.iter().take(top) {
            text += &format!(
                "{:>9.1} us {:>5.1}%  #{:<4} {:<24} {}  in {}\n",
                node.mean_us,
                share(node.mean_us),
                node.node,
                node.op,
                node.name,
                node.inputs.join(" ")
            );
            if !node.detail.is_empty() {
                text += &format!("{:>19}{}\n", "", node.detail);
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use emotion_pi::classify::{ClassifierSettings, TractClassifier};

    #[test]
    fn every_node_is_timed_once_and_the_totals_add_up() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/emotion_mobilenet_int8.onnx");
        let classifier = TractClassifier::load(&path, ClassifierSettings::default()).expect("shipped model loads");
        let profile = profile_plan(&path, classifier.plan(), 1).expect("profile");
        let mut ids: Vec<usize> = profile.nodes.iter().map(|n| n.node).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..classifier.plan().model().nodes.len()).collect::<Vec<_>>());
        assert!(profile.nodes.windows(2).all(|w| w[0].mean_us >= w[1].mean_us), "not slowest first");
        assert!(profile.total_us > 0.0);
        let op_sum: f64 = profile.by_op.iter().map(|op| op.mean_us).sum();
        assert!((op_sum - profile.total_us).abs() <= 1e-6 * profile.total_us, "{op_sum} vs {}", profile.total_us);
        assert_eq!(profile.by_op.iter().map(|op| op.nodes).sum::<usize>(), profile.nodes.len());
        // The 1x1 convolutions run as matrix products, and the profile names the kernel tract chose.
        let products: Vec<&NodeTiming> = profile.nodes.iter().filter(|n| n.op == "OptMatMul").collect();
        assert!(!products.is_empty());
        // tract words it "Mult: m:576 k:16 n:96 with [fma_mmm_f32_40x2]"; kernel names differ per CPU.
        assert!(products.iter().all(|n| n.detail.contains(" with [")), "{:?}", products[0].detail);

        let text = profile.to_text(3);
        assert!(text.starts_with(&path.display().to_string()), "{text}");
        assert!(text.contains(&format!("slowest 3 of {} nodes", profile.nodes.len())), "{text}");
        assert_eq!(text.lines().filter(|l| l.contains(" us ") && l.contains('#')).count(), 3, "{text}");
    }
}
