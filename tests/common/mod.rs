//! Helpers the integration tests of the detector share.

use std::path::PathBuf;

/// The repository root, where `models/` and `tests/fixtures/` are.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the built `emotion-pi` with `args` from the repository root, with the shipped
/// models, and returns its standard output; fails the test if it does not succeed.
pub fn emotion_pi(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_emotion-pi"))
        .args(args)
        .current_dir(root())
        .env_remove("EMOTION_PI_MODELS")
        .output()
        .expect("emotion-pi runs");
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8")
}
