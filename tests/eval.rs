//! `emotion-pi eval` against the tools' onnxruntime evaluation of the same model.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn eval(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_emotion-pi"))
        .arg("eval")
        .args(args)
        .current_dir(root())
        .output()
        .expect("runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn public_test_accuracy_matches_tools_evaluation() {
    let data = root().join("../shared/data/fer2013/fer2013_train_val.csv.gz");
    if !data.exists() {
        eprintln!("SKIPPED public_test_accuracy_matches_tools_evaluation: {} is absent", data.display());
        return;
    }
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("models/emotion_mobilenet_int8.publictest.json")).expect("tools report"),
    )
    .expect("JSON");
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = dir.path().join("predictions.csv");
    let (code, stdout, stderr) =
        eval(&[data.to_str().unwrap(), "--usage", "PublicTest", "--json", "--predictions", rows.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    let ours: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(ours["n"], 3589);
    assert_eq!(ours["n"], expected["n"]);
    let (a, b) = (ours["accuracy"].as_f64().unwrap(), expected["accuracy"].as_f64().unwrap());
    assert!((a - b).abs() <= 0.001, "tract {a} vs onnxruntime {b}");
    for key in ["macro_f1", "per_class", "confusion"] {
        assert!(ours.get(key).is_some(), "missing {key}");
    }

    // Row by row: tract's top-1 against onnxruntime's (tools/ship.sh stores them).
    let names: Vec<&String> = expected["per_class"].as_object().expect("classes").keys().collect();
    let onnxruntime: Vec<&str> = expected["predictions"]
        .as_array()
        .expect("per-row predictions in the tools report")
        .iter()
        .map(|p| names[p.as_u64().expect("class index") as usize].as_str())
        .collect();
    let text = std::fs::read_to_string(&rows).expect("predictions file");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("row,label,predicted"));
    let tract: Vec<&str> = lines.map(|l| l.rsplit(',').next().expect("predicted column")).collect();
    assert_eq!(tract.len(), onnxruntime.len());
    let same = tract.iter().zip(&onnxruntime).filter(|(a, b)| a == b).count();
    let agreement = same as f64 / tract.len() as f64;
    eprintln!("tract vs onnxruntime top-1 agreement on PublicTest: {same}/{} = {:.2}%", tract.len(), 100.0 * agreement);
    assert!(agreement >= 0.995, "agreement {agreement}");
}

#[test]
fn tiny_csv_report_counts_every_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("faces.csv");
    let row =
        |label: u8, value: u8, usage: &str| format!("{label},{},{usage}\n", vec![value.to_string(); 2304].join(" "));
    let text = format!(
        "emotion,pixels,Usage\n{}{}{}",
        row(3, 200, "PublicTest"),
        row(0, 20, "PublicTest"),
        row(1, 5, "Training")
    );
    std::fs::write(&csv, text).expect("write");
    let (code, stdout, stderr) = eval(&[csv.to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).expect("JSON");
    assert_eq!(report["n"], 2);
    let confusion = report["confusion"].as_array().unwrap();
    let total: u64 = confusion.iter().flat_map(|r| r.as_array().unwrap()).map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total, 2);
    // Row sums are the true-class supports: one happy, one angry.
    let support = |i: usize| confusion[i].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum::<u64>();
    assert_eq!((support(0), support(3)), (1, 1));
}

#[test]
fn bad_csv_line_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, "emotion,pixels,Usage\n3,1 2 3,PublicTest\n").expect("write");
    let (code, _, stderr) = eval(&[csv.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("bad.csv:2: expected 2304 pixel values, found 3"), "{stderr}");
}
