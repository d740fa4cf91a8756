//! Command line of `emotion-pi-lab`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use emotion_pi::analyze::ModelPaths;
use emotion_pi::config::MAX_WORKERS;
use emotion_pi::detect::DetectorRange;
use emotion_pi::report::print_report;

use crate::live::{run_live_bench, LiveBenchOptions};
use crate::panel::panel_traffic;
use crate::profile::profile_models;
use crate::soak::{run_soak, SoakOptions};

/// emotion-pi's workbench: benchmarks, soak and profiles beyond `emotion-pi bench`.
#[derive(Debug, Parser)]
#[command(name = "emotion-pi-lab", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print one JSON object instead of the table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Folder holding the models [default: as for emotion-pi].
    #[arg(long, value_name = "DIR", global = true)]
    pub models: Option<PathBuf>,
}

/// What to measure.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole live loop on a looped image folder (detection every frame): sustained FPS,
    /// per-stage latency and resident memory.
    Live(LiveArgs),
    /// The whole device paced like a camera, PNG display every 100th frame, the log on a
    /// pty, with camera, display and serial faults injected in turn: recoveries, lost log
    /// lines, memory and latency over time. Exit 1 when a fault was not recovered from or
    /// a line was lost.
    Soak(SoakArgs),
    /// Both models node by node: time per op kind and the slowest nodes with the kernels
    /// tract chose.
    Profile(ProfileArgs),
    /// Bytes sent over SPI per screen for each supported panel size.
    Panel,
}

/// Flags of `live`.
#[derive(Debug, Args)]
pub struct LiveArgs {
    /// Frames to run for.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub frames: u64,
    /// Image folder to loop [default: the built-in portrait framed at 640x480].
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
    /// Frames analysed at once, each on its own thread; 0 = one per CPU core.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=MAX_WORKERS as u64))]
    pub workers: u64,
}

/// Flags of `soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// How long the soak runs, in minutes (0.5 to a week).
    #[arg(long, default_value_t = 30.0, value_parser = soak_minutes)]
    pub minutes: f64,
    /// Frame rate the image folder is paced at.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=120))]
    pub fps: u32,
    /// Seconds between the starts of two injected faults.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..))]
    pub fault_every: u64,
    /// Image folder to loop [default: the built-in portrait framed at 640x480].
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
}

/// Flags of `profile`.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Timed runs per model.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub iterations: u64,
}

fn soak_minutes(text: &str) -> Result<f64, String> {
    const RANGE: std::ops::RangeInclusive<f64> = 0.5..=7.0 * 24.0 * 60.0;
    let minutes: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if RANGE.contains(&minutes) {
        Ok(minutes)
    } else {
        Err(format!("{minutes} is outside {RANGE:?}"))
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let models = ModelPaths::in_dir(&cli.models.unwrap_or_else(ModelPaths::default_dir), DetectorRange::default());
    match cli.command {
        Command::Live(args) => {
            let options = LiveBenchOptions { source: args.source, frames: args.frames, workers: args.workers as usize };
            print_report(&run_live_bench(&models, &options)?, cli.json)?;
        }
        Command::Soak(args) => {
            let options = SoakOptions {
                duration: Duration::from_secs_f64(args.minutes * 60.0),
                fps: args.fps,
                source: args.source,
                fault_every: Duration::from_secs(args.fault_every),
            };
            let report = run_soak(&models, &options)?;
            print_report(&report, cli.json)?;
            if !report.healthy() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Profile(args) => print_report(&profile_models(&models, args.iterations as usize)?, cli.json)?,
        Command::Panel => print_report(&panel_traffic(&models)?, cli.json)?,
    }
    Ok(ExitCode::SUCCESS)
}
