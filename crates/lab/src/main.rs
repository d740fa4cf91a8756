#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;

use clap::Parser;
use emotion_pi_lab::cli::{run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("emotion-pi-lab: {err:#}");
            ExitCode::from(2)
        }
    }
}
