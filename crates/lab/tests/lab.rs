//! The workbench binary on the shipped models: profiles, SPI traffic and a short soak.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emotion-pi-lab"))
        .args(args)
        .current_dir(root())
        .env_remove("EMOTION_PI_MODELS")
        .output()
        .expect("binary runs")
}

#[test]
fn profile_lists_both_models_node_by_node() {
    let output = lab(&["profile", "--iterations", "2", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let profiles: Value = serde_json::from_slice(&output.stdout).expect("one JSON array");
    let models: Vec<&str> = profiles.as_array().unwrap().iter().map(|p| p["model"].as_str().unwrap()).collect();
    assert_eq!(
        models,
        ["models/blazeface/face_detection_front_128x128_barracuda.onnx", "models/emotion_mobilenet_int8.onnx"]
    );
    for profile in profiles.as_array().unwrap() {
        assert_eq!(profile["runs"], 2);
        assert!(profile["nodes"].as_array().unwrap().len() > 100, "{}", profile["model"]);
    }
}

#[test]
fn panel_traffic_sends_a_whole_screen_first_and_less_after() {
    let output = lab(&["panel", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let panels: Value = serde_json::from_slice(&output.stdout).expect("one JSON array");
    let screens: Vec<&str> = panels.as_array().unwrap().iter().map(|p| p["screen"].as_str().unwrap()).collect();
    assert_eq!(screens, ["240x240", "240x320", "320x240"]);
    for panel in panels.as_array().unwrap() {
        let (w, h) = match panel["screen"].as_str().unwrap() {
            "240x240" => (240, 240),
            _ => (240, 320),
        };
        // A whole screen is two bytes a pixel plus the address and write commands.
        let full = panel["full_frame_bytes"].as_u64().unwrap();
        assert!(full >= w * h * 2 && full < w * h * 2 + 4096, "{panel}");
        let per_frame = panel["bytes_per_frame"].as_f64().unwrap();
        assert!(per_frame > 0.0 && per_frame < full as f64, "{panel}");
    }
}

#[test]
fn a_short_soak_recovers_from_every_fault_and_loses_no_log_line() {
    let output = lab(&["soak", "--minutes", "1", "--fault-every", "5", "--fps", "30", "--json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let faults = report["faults"].as_array().unwrap();
    let kinds: std::collections::BTreeSet<&str> = faults.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["camera_timeout", "camera_unplugged", "corrupt_frame", "display_unwritable", "serial_unplugged"].into(),
        "{report}"
    );
    assert!(faults.iter().all(|f| f["recovered_after_s"].is_f64()), "{report}");
    // Each injected corrupt frame is skipped and counted; an unplug is at least one failure.
    let corrupt_injected = faults.iter().filter(|f| f["kind"] == "corrupt_frame").count() as u64;
    assert_eq!(report["corrupt"].as_u64(), Some(corrupt_injected), "{report}");
    assert!(report["camera_failures"].as_u64().unwrap() >= 1, "{report}");
    assert!(report["display"]["failures"].as_u64().unwrap() >= 1, "{report}");
    assert!(report["display"]["rendered"].as_u64().unwrap() >= 2, "{report}");
    // Every line the device wrote was read back whole from one of the ptys.
    let written = report["log"]["written"].as_u64().unwrap();
    assert!(written > 60, "a status line a second: {report}");
    assert_eq!(report["lines_received"].as_u64(), Some(written), "{report}");
    assert_eq!(report["lines_garbled"], 0, "{report}");
    assert_eq!(report["log"]["dropped"], 0, "{report}");
    assert!(report["log"]["failures"].as_u64().unwrap() >= 1, "the pulled port was noticed: {report}");
    assert!(!report["samples"].as_array().unwrap().is_empty(), "{report}");
}

#[test]
fn live_on_a_folder_with_link_loops_ends() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    std::fs::copy(root().join("tests/fixtures/astronaut.png"), photos.join("astronaut.png")).unwrap();
    for (name, target) in [("self", "."), ("up", ".."), ("again", ".")] {
        std::os::unix::fs::symlink(target, photos.join(name)).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_emotion-pi-lab"))
        .args(["live", "--frames", "3", "--json", "--source"])
        .arg(&photos)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the live benchmark walked the link loops for 120 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(report["frames"], 3, "{report}");
}

#[test]
fn live_shorter_than_the_memory_baseline_says_so_instead_of_zero() {
    let output = lab(&["live", "--frames", "3"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("3 frames") && text.contains("RSS at the end: "), "{text}");
    assert!(!text.contains("RSS at frame 1000"), "{text}");
}
