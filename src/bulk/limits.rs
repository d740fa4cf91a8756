//! How much one input may make the program read or hold, and the memory budget the
//! decoding threads share. The README ("Limits") lists these with their defaults.

use std::sync::{Condvar, Mutex, PoisonError};

/// Image files are read whole; larger ones are refused before reading. 64 MiB holds any
/// JPEG or PNG photo within [`MAX_IMAGE_PIXELS`].
pub const MAX_IMAGE_FILE_BYTES: u64 = 64 << 20;

/// Larger images are refused before decoding: a header can claim any size, and a few
/// bytes must not make the device allocate gigabytes. 50 MP holds any camera photo.
pub const MAX_IMAGE_PIXELS: u64 = 50_000_000;

/// What one image's decoder may allocate. 16-bit PNGs are decoded to 8 bits per sample,
/// so a 50 MP image needs at most 4 bytes per pixel (RGBA or CMYK), 200 MB.
pub const MAX_DECODED_BYTES: u64 = 256 << 20;

/// Memory the images being decoded and classified at once may hold together. An image
/// needing more is decoded alone.
pub const DECODE_BUDGET_BYTES: u64 = 256 << 20;

/// Config files are read whole; a config is a few kilobytes.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A FER2013 CSV line is about 9 KB (2,304 pixel values); a longer line is not one.
pub const MAX_CSV_LINE_BYTES: u64 = 64 << 10;

/// Uncompressed bytes of a CSV `eval` reads (FER2013 is about 300 MB); the faces kept
/// take about a quarter of this.
pub const MAX_CSV_BYTES: u64 = 1 << 30;

/// Whether an image of `width`×`height` is within [`MAX_IMAGE_PIXELS`].
pub fn within_pixel_limit(width: u32, height: u32) -> bool {
    u64::from(width) * u64::from(height) <= MAX_IMAGE_PIXELS
}

/// Bytes shared by threads that each need a known amount for a while: a claim waits
/// until it fits beside the others, and a claim larger than the whole budget waits until
/// it is alone, so at most one oversized claim is ever held.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    in_use: Mutex<u64>,
    released: Condvar,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        Self { limit, in_use: Mutex::new(0), released: Condvar::new() }
    }

    /// Waits until `bytes` fit, then holds them until the claim is dropped.
    pub fn claim(&self, bytes: u64) -> Claim<'_> {
        // The counter stays consistent even if a holder panicked: it only adds and subtracts.
        let mut in_use = self.in_use.lock().unwrap_or_else(PoisonError::into_inner);
        while *in_use > 0 && in_use.saturating_add(bytes) > self.limit {
            in_use = self.released.wait(in_use).unwrap_or_else(PoisonError::into_inner);
        }
        *in_use = in_use.saturating_add(bytes);
        Claim { budget: self, bytes }
    }

    /// Bytes held by claims now.
    pub fn in_use(&self) -> u64 {
        *self.in_use.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Bytes held from a [`MemoryBudget`]; given back when dropped.
#[derive(Debug)]
pub struct Claim<'a> {
    budget: &'a MemoryBudget,
    bytes: u64,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut in_use = self.budget.in_use.lock().unwrap_or_else(PoisonError::into_inner);
        *in_use = in_use.saturating_sub(self.bytes);
        self.budget.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn the_pixel_limit_admits_a_48_megapixel_photo_and_no_more_than_50() {
        assert!(within_pixel_limit(8000, 6000));
        assert!(within_pixel_limit(10_000, 5_000));
        assert!(!within_pixel_limit(10_000, 5_001));
        assert!(!within_pixel_limit(u32::MAX, u32::MAX));
    }

    #[test]
    fn threads_sharing_a_budget_never_hold_more_than_it_except_one_oversized_claim_alone() {
        let budget = MemoryBudget::new(100);
        let peak = AtomicU64::new(0);
        let holders = AtomicU64::new(0);
        let oversized_with_company = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for thread in 0..8u64 {
                let (budget, peak, holders, oversized_with_company) =
                    (&budget, &peak, &holders, &oversized_with_company);
                scope.spawn(move || {
                    for round in 0..50u64 {
                        // Mostly 10..70 bytes, sometimes 150: more than the whole budget.
                        let bytes = if (thread + round) % 11 == 0 { 150 } else { 10 + (thread * 7 + round * 13) % 60 };
                        let claim = budget.claim(bytes);
                        let others = holders.fetch_add(1, Ordering::SeqCst);
                        let held = budget.in_use();
                        peak.fetch_max(held, Ordering::SeqCst);
                        if bytes > 100 && others > 0 {
                            oversized_with_company.fetch_add(1, Ordering::SeqCst);
                        }
                        std::thread::yield_now();
                        holders.fetch_sub(1, Ordering::SeqCst);
                        drop(claim);
                    }
                });
            }
        });
        assert!(peak.load(Ordering::SeqCst) <= 150, "peak {}", peak.load(Ordering::SeqCst));
        assert_eq!(oversized_with_company.load(Ordering::SeqCst), 0);
        assert_eq!(budget.in_use(), 0);
    }
}
