//! What every background worker of the device shares (the capture thread, the display,
//! the log writer, the LEDs): a named thread that is closed within a grace period so
//! shutdown never hangs on a device that stopped answering, counters readable at any
//! time, warnings about repeated failures limited to the 1st, 2nd, 4th, 8th... so a
//! fault that lasts for hours does not flood the journal, and retries with doubling
//! waits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long to wait before retrying a failed device: doubling from `initial` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

/// The waits of one run of retries under a [`Backoff`].
#[derive(Debug, Clone)]
pub struct Retry {
    backoff: Backoff,
    next: Duration,
}

impl Retry {
    /// Retries that start at `backoff.initial`.
    pub fn new(backoff: Backoff) -> Self {
        Self { backoff, next: backoff.initial }
    }

    /// The wait before this retry; the one after it is twice as long, up to the maximum.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.backoff.max);
        wait
    }

    /// The device worked again: the next failure waits the initial time.
    pub fn reset(&mut self) {
        self.next = self.backoff.initial;
    }
}

/// An event counter shared between a worker and whoever reads its counts.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Counts one event; returns the new total.
    pub fn add(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Counts one event and logs the warning `describe(total)` when the total is a power
    /// of two.
    pub fn add_and_warn(&self, describe: impl FnOnce(u64) -> String) -> u64 {
        let total = self.add();
        if total.is_power_of_two() {
            let warning = describe(total);
            log::warn!("{warning}");
        }
        total
    }

    /// The total so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A running worker thread.
#[derive(Debug)]
pub struct WorkerThread {
    name: String,
    handle: JoinHandle<()>,
}

impl WorkerThread {
    /// Starts `body` on a thread called `name` (shown by `top -H` and in log messages).
    pub fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> std::io::Result<Self> {
        let handle = std::thread::Builder::new().name(name.to_owned()).spawn(body)?;
        Ok(Self { name: name.to_owned(), handle })
    }

    /// Waits up to `grace` for the thread to finish and joins it; true if it did. A thread
    /// still blocked after that (in a device read or write that never returns) is left
    /// behind with a warning: the process is about to exit, and waiting would hang it.
    pub fn join(self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        while !self.handle.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if !self.handle.is_finished() {
            log::warn!("{}: still busy after {grace:?}; leaving it", self.name);
            return false;
        }
        if self.handle.join().is_err() {
            log::error!("{}: thread panicked", self.name);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_a_finishing_thread_and_gives_up_on_a_stuck_one() {
        let quick = WorkerThread::spawn("quick", || std::thread::sleep(Duration::from_millis(5))).unwrap();
        assert!(quick.join(Duration::from_secs(2)));
        let stuck = WorkerThread::spawn("stuck", || std::thread::sleep(Duration::from_secs(5))).unwrap();
        let started = Instant::now();
        assert!(!stuck.join(Duration::from_millis(50)));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn waits_double_up_to_the_maximum_and_start_over_after_a_reset() {
        let ms = Duration::from_millis;
        let mut retry = Retry::new(Backoff { initial: ms(100), max: ms(500) });
        let waits: Vec<Duration> = (0..5).map(|_| retry.next_wait()).collect();
        assert_eq!(waits, [ms(100), ms(200), ms(400), ms(500), ms(500)]);
        retry.reset();
        assert_eq!(retry.next_wait(), ms(100));
    }

    #[test]
    fn warnings_come_at_powers_of_two_and_every_event_is_counted() {
        let counter = Counter::default();
        let mut warned = Vec::new();
        for _ in 0..20 {
            counter.add_and_warn(|total| {
                warned.push(total);
                String::new()
            });
        }
        assert_eq!(warned, [1, 2, 4, 8, 16]);
        assert_eq!(counter.get(), 20);
    }
}
