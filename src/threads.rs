//! Ending the device's worker threads without ever hanging shutdown on one.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Waits up to `grace` for `thread` to finish and joins it; true if it did. A thread still
/// blocked after that (in a device read or write that never returns) is left behind, with a
/// warning naming `what`: the process is about to exit, and waiting would hang it.
pub fn join_within(thread: JoinHandle<()>, grace: Duration, what: &str) -> bool {
    let deadline = Instant::now() + grace;
    while !thread.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    if !thread.is_finished() {
        log::warn!("{what}: still busy after {grace:?}; leaving it");
        return false;
    }
    if thread.join().is_err() {
        log::error!("{what}: thread panicked");
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_a_finishing_thread_and_gives_up_on_a_stuck_one() {
        let quick = std::thread::spawn(|| std::thread::sleep(Duration::from_millis(5)));
        assert!(join_within(quick, Duration::from_secs(2), "quick"));
        let stuck = std::thread::spawn(|| std::thread::sleep(Duration::from_secs(5)));
        let started = Instant::now();
        assert!(!join_within(stuck, Duration::from_millis(50), "stuck"));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
