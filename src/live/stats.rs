//! Per-stage latency and frame rate of the live loop, in bounded memory.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Samples kept per stage: enough for stable p99 figures, fixed so a months-long run does
/// not grow.
const WINDOW: usize = 4096;

/// The most recent latencies of one stage, in milliseconds.
#[derive(Debug, Clone)]
pub struct LatencyWindow {
    samples: Vec<f32>,
    next: usize,
    count: u64,
}

impl Default for LatencyWindow {
    fn default() -> Self {
        Self { samples: Vec::with_capacity(WINDOW), next: 0, count: 0 }
    }
}

/// Median and 99th percentile of a window, and how many samples it has seen in all.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl LatencyWindow {
    pub fn record(&mut self, duration: Duration) {
        let ms = duration.as_secs_f32() * 1e3;
        if self.samples.len() < WINDOW {
            self.samples.push(ms);
        } else {
            self.samples[self.next] = ms;
        }
        self.next = (self.next + 1) % WINDOW;
        self.count += 1;
    }

    /// Nearest-rank percentiles of the window (zeros before the first sample).
    pub fn percentiles(&self) -> Percentiles {
        let mut sorted = self.samples.clone();
        sorted.sort_by(f32::total_cmp);
        let rank = |q: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let index = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            f64::from(sorted[index])
        };
        Percentiles { count: self.count, p50_ms: rank(0.5), p99_ms: rank(0.99) }
    }
}

/// The loop's stages, each timed per frame where it ran.
#[derive(Debug, Clone, Default)]
pub struct StageTimes {
    /// Inside the source: waiting for the device and converting the buffer (capture thread).
    pub capture: LatencyWindow,
    pub detect: LatencyWindow,
    pub crop: LatencyWindow,
    pub classify: LatencyWindow,
    pub track: LatencyWindow,
    /// From taking the frame to all its outputs queued.
    pub total: LatencyWindow,
    /// From capture to all outputs queued: what a person in front of the camera sees as lag.
    pub latency: LatencyWindow,
}

/// [`StageTimes`] summarised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StageSummary {
    pub capture: Percentiles,
    pub detect: Percentiles,
    pub crop: Percentiles,
    pub classify: Percentiles,
    pub track: Percentiles,
    pub total: Percentiles,
    pub latency: Percentiles,
}

impl StageTimes {
    pub fn summary(&self) -> StageSummary {
        StageSummary {
            capture: self.capture.percentiles(),
            detect: self.detect.percentiles(),
            crop: self.crop.percentiles(),
            classify: self.classify.percentiles(),
            track: self.track.percentiles(),
            total: self.total.percentiles(),
            latency: self.latency.percentiles(),
        }
    }
}

/// Frames per second over roughly the last second, updated per frame.
#[derive(Debug, Clone, Default)]
pub struct FrameRate {
    window_start: Option<Instant>,
    frames_in_window: u32,
    fps: f64,
}

impl FrameRate {
    /// Counts a frame at `now`; the rate is recomputed once a second has passed.
    pub fn tick(&mut self, now: Instant) {
        let start = *self.window_start.get_or_insert(now);
        self.frames_in_window += 1;
        let elapsed = now.duration_since(start);
        if elapsed >= Duration::from_secs(1) {
            self.fps = f64::from(self.frames_in_window - 1) / elapsed.as_secs_f64();
            self.window_start = Some(now);
            self.frames_in_window = 1;
        }
    }

    pub fn fps(&self) -> f64 {
        self.fps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut window = LatencyWindow::default();
        assert_eq!(window.percentiles(), Percentiles { count: 0, p50_ms: 0.0, p99_ms: 0.0 });
        for ms in 1..=100 {
            window.record(Duration::from_millis(ms));
        }
        let p = window.percentiles();
        assert_eq!(p.count, 100);
        assert!((p.p50_ms - 50.0).abs() < 1e-3 && (p.p99_ms - 99.0).abs() < 1e-3, "{p:?}");
    }

    #[test]
    fn window_keeps_only_the_latest_samples() {
        let mut window = LatencyWindow::default();
        for _ in 0..WINDOW {
            window.record(Duration::from_millis(100));
        }
        for _ in 0..WINDOW {
            window.record(Duration::from_millis(1));
        }
        let p = window.percentiles();
        assert_eq!(p.count, 2 * WINDOW as u64);
        assert!((p.p99_ms - 1.0).abs() < 1e-3, "{p:?}");
    }

    #[test]
    fn frame_rate_counts_intervals_per_second() {
        let mut rate = FrameRate::default();
        let start = Instant::now();
        // 31 frames 1/30 s apart span exactly one second: 30 intervals.
        for i in 0..=30 {
            rate.tick(start + Duration::from_secs_f64(i as f64 / 30.0));
        }
        assert!((rate.fps() - 30.0).abs() < 1e-6, "{}", rate.fps());
    }
}
