//! Classification metrics: accuracy, macro-F1, per-class precision/recall, confusion matrix.

use serde::Serialize;

use crate::report::Report;

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// A full report; the JSON form is what `emotion-pi eval --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccuracyReport {
    pub n: u64,
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Class name → metrics, in class order.
    pub per_class: serde_json::Map<String, serde_json::Value>,
    /// Rows are true classes, columns predicted classes.
    pub confusion: Vec<Vec<u64>>,
    /// Per true class, the faces that got no prediction (no face found in a whole frame);
    /// they count wrong. Absent when the evaluation cannot miss a face.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed: Option<Vec<u64>>,
}

/// Accumulates (true, predicted) pairs.
#[derive(Debug, Clone)]
pub struct Confusion {
    counts: Vec<Vec<u64>>,
    missed: Option<Vec<u64>>,
}

impl Confusion {
    /// Every face gets a prediction (cropped faces).
    pub fn new(classes: usize) -> Self {
        Self { counts: vec![vec![0; classes]; classes], missed: None }
    }

    /// A face may get none ([`Self::add_missed`]), which counts wrong for its class.
    pub fn counting_missed(classes: usize) -> Self {
        Self { missed: Some(vec![0; classes]), ..Self::new(classes) }
    }

    /// Counts a face that got no prediction; ignored without [`Self::counting_missed`] or
    /// outside the class range (callers validate).
    pub fn add_missed(&mut self, truth: usize) {
        if let Some(cell) = self.missed.as_mut().and_then(|missed| missed.get_mut(truth)) {
            *cell += 1;
        }
    }

    /// Counts one prediction; labels outside the class range are ignored (callers validate).
    pub fn add(&mut self, truth: usize, predicted: usize) {
        if let Some(cell) = self.counts.get_mut(truth).and_then(|row| row.get_mut(predicted)) {
            *cell += 1;
        }
    }

    pub fn report(&self, class_names: &[String]) -> AccuracyReport {
        let k = self.counts.len();
        let missed = |class: usize| self.missed.as_ref().and_then(|m| m.get(class)).copied().unwrap_or(0);
        let n: u64 = self.counts.iter().flatten().sum::<u64>() + (0..k).map(missed).sum::<u64>();
        let correct: u64 = (0..k).map(|i| self.counts[i][i]).sum();
        let mut per_class = serde_json::Map::new();
        let mut f1_sum = 0.0;
        for i in 0..k {
            let tp = self.counts[i][i] as f64;
            let predicted: u64 = (0..k).map(|r| self.counts[r][i]).sum();
            let actual: u64 = self.counts[i].iter().sum::<u64>() + missed(i);
            let ratio = |num: f64, den: u64| if den == 0 { 0.0 } else { num / den as f64 };
            let precision = ratio(tp, predicted);
            let recall = ratio(tp, actual);
            let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
            f1_sum += f1;
            let metrics = ClassMetrics { precision, recall, f1, support: actual };
            let name = class_names.get(i).cloned().unwrap_or_else(|| format!("class{i}"));
            per_class.insert(name, serde_json::to_value(metrics).unwrap_or_default());
        }
        AccuracyReport {
            n,
            accuracy: if n == 0 { 0.0 } else { correct as f64 / n as f64 },
            macro_f1: if k == 0 { 0.0 } else { f1_sum / k as f64 },
            per_class,
            confusion: self.counts.clone(),
            missed: self.missed.clone(),
        }
    }
}

impl Report for AccuracyReport {
    /// The human-readable form: headline numbers, per-class table, confusion matrix.
    fn to_text(&self) -> String {
        let mut text = format!(
            "n = {}\naccuracy = {:.2}%\nmacro-F1 = {:.4}\n\n{:<10}{:>10}{:>10}{:>10}{:>9}\n",
            self.n,
            self.accuracy * 100.0,
            self.macro_f1,
            "class",
            "precision",
            "recall",
            "f1",
            "support"
        );
        let field = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_f64()).unwrap_or(0.0);
        for (name, m) in &self.per_class {
            text += &format!(
                "{:<10}{:>10.3}{:>10.3}{:>10.3}{:>9}\n",
                name,
                field(m, "precision"),
                field(m, "recall"),
                field(m, "f1"),
                field(m, "support") as u64
            );
        }
        let no_face = if self.missed.is_some() { ", last no face found" } else { "" };
        text += &format!("\nconfusion (rows true, columns predicted{no_face})\n          ");
        for name in self.per_class.keys() {
            text += &format!("{:>9}", name.chars().take(8).collect::<String>());
        }
        if self.missed.is_some() {
            text += &format!("{:>9}", "no face");
        }
        for (i, (name, row)) in self.per_class.keys().zip(&self.confusion).enumerate() {
            text += &format!("\n{name:<10}");
            let missed = self.missed.as_ref().and_then(|m| m.get(i));
            for v in row.iter().chain(missed) {
                text += &format!("{v:>9}");
            }
        }
        text + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_computed_by_hand() {
        // Same example as tools/tests/test_pipeline.py::test_report_metrics_by_hand.
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let mut confusion = Confusion::new(3);
        for (t, p) in [(0, 0), (0, 1), (1, 1), (1, 1), (2, 0)] {
            confusion.add(t, p);
        }
        let report = confusion.report(&names);
        assert_eq!(report.n, 5);
        assert!((report.accuracy - 0.6).abs() < 1e-12);
        assert!((report.macro_f1 - (0.5 + 0.8) / 3.0).abs() < 1e-12);
        assert!((report.per_class["b"]["precision"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(report.confusion, vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 0]]);
    }

    #[test]
    fn a_missed_face_counts_wrong_for_its_class_and_in_no_precision() {
        let names: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let mut confusion = Confusion::counting_missed(2);
        for (t, p) in [(0, 0), (1, 1), (1, 0)] {
            confusion.add(t, p);
        }
        confusion.add_missed(0);
        let report = confusion.report(&names);
        assert_eq!(report.n, 4);
        assert!((report.accuracy - 0.5).abs() < 1e-12);
        // a: 1 of 2 found (recall 0.5), predicted twice, once right (precision 0.5).
        assert!((report.per_class["a"]["recall"].as_f64().unwrap() - 0.5).abs() < 1e-12);
        assert!((report.per_class["a"]["precision"].as_f64().unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(report.per_class["a"]["support"], 2);
        assert_eq!(report.missed, Some(vec![1, 0]));
        assert!(report.to_text().contains("no face"));
        let cropped = Confusion::new(2).report(&names);
        assert!(!serde_json::to_string(&cropped).unwrap().contains("missed"));
    }
}
