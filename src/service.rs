//! Talking to systemd when `emotion-pi run` is a `Type=notify` service.
//!
//! READY=1 goes out once the models are loaded and the capture thread runs, so that
//! `systemctl start` returns when the device really works. Watchdog pings go out only
//! while the loop makes progress: a camera read or an inference that hangs stops them,
//! and systemd restarts the service after `WatchdogSec`. Waiting for a missing camera
//! is progress (the capture thread retries by itself), so an unplugged camera does not
//! make the service flap. Outside systemd (`NOTIFY_SOCKET` unset) all of this is a no-op.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Tells systemd that start-up is done, with a one-line status for `systemctl status`.
pub fn notify_ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Sets the one-line status `systemctl status` shows.
pub fn notify_status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// Tells systemd that the service is shutting down on purpose.
pub fn notify_stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(states) {
        log::warn!("could not notify systemd (NOTIFY_SOCKET): {err}");
    }
}

/// Paces the watchdog pings of the live loop from its progress.
#[derive(Debug)]
pub struct Watchdog {
    period: Duration,
    last_ping: Option<Instant>,
    frames_at_last_ping: u64,
}

impl Watchdog {
    /// The watchdog systemd asked for (`WATCHDOG_USEC`), or `None` when it is off.
    pub fn from_env() -> Option<Self> {
        sd_notify::watchdog_enabled().map(Self::new)
    }

    /// Pings four times per `timeout`, so one late loop iteration does not get the
    /// service killed.
    pub fn new(timeout: Duration) -> Self {
        Self { period: timeout / 4, last_ping: None, frames_at_last_ping: 0 }
    }

    /// Called by the loop on every iteration; sends a ping when one is due.
    pub fn observe(&mut self, now: Instant, frames: u64, waiting_for_camera: bool) {
        if self.due(now, frames, waiting_for_camera) {
            send(&[NotifyState::Watchdog]);
        }
    }

    /// Whether to ping now, recording the ping if so: there must have been progress
    /// (a processed frame, or the camera being retried) since the last ping, and at
    /// least a period must have passed.
    fn due(&mut self, now: Instant, frames: u64, waiting_for_camera: bool) -> bool {
        let progressed = frames > self.frames_at_last_ping || waiting_for_camera;
        let rested = self.last_ping.is_none_or(|last| now.saturating_duration_since(last) >= self.period);
        if progressed && rested {
            self.last_ping = Some(now);
            self.frames_at_last_ping = frames;
        }
        progressed && rested
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn pings_at_most_once_per_quarter_timeout_while_frames_flow() {
        let start = Instant::now();
        let mut watchdog = Watchdog::new(ms(400));
        let pings: Vec<u64> = (0..=10u64).filter(|&i| watchdog.due(start + ms(50 * i), i + 1, false)).collect();
        // Every 50 ms a new frame; a ping at 0 ms, then whenever 100 ms have passed.
        assert_eq!(pings, vec![0, 2, 4, 6, 8, 10]);
    }

    #[test]
    fn a_stalled_loop_gets_no_pings_until_frames_flow_again() {
        let start = Instant::now();
        let mut watchdog = Watchdog::new(ms(400));
        assert!(watchdog.due(start, 5, false));
        assert!(!watchdog.due(start + ms(150), 5, false));
        assert!(!watchdog.due(start + ms(10_000), 5, false));
        assert!(watchdog.due(start + ms(10_050), 6, false));
    }

    #[test]
    fn waiting_for_a_missing_camera_counts_as_progress() {
        let start = Instant::now();
        let mut watchdog = Watchdog::new(ms(400));
        assert!(watchdog.due(start, 0, true));
        assert!(!watchdog.due(start + ms(50), 0, true));
        assert!(watchdog.due(start + ms(100), 0, true));
    }
}
