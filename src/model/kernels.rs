//! Which f32 matrix-product kernel tract runs on the Pi 4's and Pi 5's cores.
//!
//! tract 0.23.9 runs every f32 product with at least 8 columns on `arm64simd_mmm_f32_8x8_gen`
//! on any aarch64 core that is not an A53 or A55. Its 12x8 kernel does the same work with
//! fewer instructions when the rows fill its 12-row tiles: 24 multiply-adds and 2 loads per
//! step of the shared dimension for 96 products, against 16 and 2 for 64, and two thirds as
//! many tiles, each with its own fixed cost. This tier asks tract for whichever of the two an
//! instruction-count model says is cheaper for the product's shape, and leaves every other
//! product (vectors, narrow ones, integer and half-precision ones) to tract's own choice.
//!
//! Only where the generic kernels are the ones tract would run does the choice take effect:
//! on an A53 or A55 tract keeps only its kernels tuned for those cores, so the names given
//! here are not among the candidates and tract's own tier decides (see
//! `tract_linalg::mmm_tiers::preferred`).

use tract_onnx::prelude::DatumType;
use tract_onnx::tract_core::tract_linalg::isa::{Arch, IsaSet};
use tract_onnx::tract_core::tract_linalg::mmm::{suitable_named, Query, Suitable};
use tract_onnx::tract_core::tract_linalg::mmm_tiers::{self, MmmTier};

/// A NEON f32 kernel with an `mr`×`nr` output tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct F32Kernel {
    /// tract's name for it.
    pub name: &'static str,
    /// Rows of the output tile.
    pub mr: usize,
    /// Columns of the output tile.
    pub nr: usize,
}

/// The generic kernels weighed, in tract-linalg 0.23.9's `arm64simd` set.
pub const CANDIDATES: [F32Kernel; 2] = [
    F32Kernel { name: "arm64simd_mmm_f32_8x8_gen", mr: 8, nr: 8 },
    F32Kernel { name: "arm64simd_mmm_f32_12x8_gen", mr: 12, nr: 8 },
];

/// Fixed instructions per output tile besides its per-register stores: the call through
/// tract's kernel dispatcher and the walk of its fused-op list.
const TILE_DISPATCH: usize = 40;
/// Instructions per 4-float output register for storing a tile and applying its bias and
/// clamp.
const TILE_PER_REGISTER: usize = 3;

impl F32Kernel {
    /// Instructions the kernel's inner loop spends per step of the shared dimension: one
    /// 4-lane multiply-add per output register, and the loads (`ld1` of up to four registers
    /// at a time) of `mr` floats of one operand and `nr` of the other.
    fn per_step(self) -> usize {
        self.mr * self.nr / 4 + self.mr.div_ceil(16) + self.nr.div_ceil(16)
    }

    /// Estimated instructions of an `m`×`k` by `k`×`n` product: whole tiles (the last one of
    /// each axis padded), each running the inner loop `k` times plus its fixed cost.
    pub fn estimated_instructions(self, m: usize, k: usize, n: usize) -> usize {
        let tiles = m.div_ceil(self.mr) * n.div_ceil(self.nr);
        tiles * (k * self.per_step() + TILE_DISPATCH + TILE_PER_REGISTER * self.mr * self.nr / 4)
    }
}

/// The candidate with the fewest estimated instructions for this shape (the first on a tie).
pub fn cheapest(m: usize, k: usize, n: usize) -> F32Kernel {
    let mut best = CANDIDATES[0];
    for kernel in &CANDIDATES[1..] {
        if kernel.estimated_instructions(m, k, n) < best.estimated_instructions(m, k, n) {
            best = *kernel;
        }
    }
    best
}

/// Where this tier sits: above tract's own aarch64 tiers (1: NEON, 2: half precision).
const PRECEDENCE: u8 = 10;

/// The tier's answer: where tract's own tiers would run an f32 product of known shape on the
/// 8x8 generic kernel, the cheaper candidate; no opinion on anything else.
fn preferred(isa: &IsaSet, accumulator: DatumType, query: &Query, suitable: &[Suitable]) -> Option<&'static str> {
    if accumulator != DatumType::F32 {
        return None;
    }
    let (m, k, n) = (query.m?, query.k?, query.n?);
    let below: Vec<&'static MmmTier> =
        mmm_tiers::for_isa(isa).into_iter().filter(|tier| tier.precedence < PRECEDENCE).collect();
    let theirs = mmm_tiers::preferred(isa, &below, accumulator, query, suitable)?;
    if suitable[theirs].0.name() != CANDIDATES[0].name {
        return None;
    }
    let name = cheapest(m, k, n).name;
    suitable_named(suitable, name).map(|_| name)
}

inventory::submit! {
    MmmTier {
        arch: Some(Arch::Aarch64),
        precedence: PRECEDENCE,
        name: "emotion-pi-f32-count",
        applies: |_| true,
        preferred,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_row_tiles_win_where_the_rows_fill_them() {
        // The classifier's first fused convolution: 96 output channels, 3x3x32 inputs, 24x24.
        let (eight, twelve) = (CANDIDATES[0], CANDIDATES[1]);
        // 8x8: 12 x 72 tiles of (288 x (16 + 1 + 1) + 40 + 48) instructions.
        assert_eq!(eight.estimated_instructions(96, 288, 576), 12 * 72 * (288 * 18 + 40 + 48));
        // 12x8: 8 x 72 tiles of (288 x (24 + 1 + 1) + 40 + 72) instructions.
        assert_eq!(twelve.estimated_instructions(96, 288, 576), 8 * 72 * (288 * 26 + 40 + 72));
        assert_eq!(cheapest(96, 288, 576), twelve);
        assert_eq!(cheapest(768, 128, 36), twelve);
    }

    #[test]
    fn eight_row_tiles_stay_where_twelve_would_pad_a_third_of_a_tile() {
        // 64 rows: 8 tiles of 8 against 6 of 12 holding 72 rows, and 32 rows: 4 against 3 of 36.
        assert_eq!(cheapest(64, 288, 144), CANDIDATES[0]);
        assert_eq!(cheapest(32, 9, 576), CANDIDATES[0]);
    }

    /// What tract now runs for a product, on this aarch64 host (CI's tests run under qemu's
    /// cortex-a72, which tract takes for a generic core).
    #[cfg(target_arch = "aarch64")]
    fn picked(accumulator: DatumType, m: usize, k: usize, n: usize) -> String {
        use tract_onnx::tract_core::tract_linalg::mmm::MmmDispatch;
        let query = Query::plain(accumulator, Some(m), Some(k), Some(n));
        MmmDispatch::native().pick(&query).map(|(mmm, _, _)| mmm.name().to_owned()).unwrap_or_default()
    }

    #[cfg(target_arch = "aarch64")]
    #[test]
    fn tract_runs_the_cheaper_kernel_and_keeps_its_own_choice_elsewhere() {
        assert_eq!(picked(DatumType::F32, 96, 288, 576), "arm64simd_mmm_f32_12x8_gen");
        assert_eq!(picked(DatumType::F32, 64, 288, 144), "arm64simd_mmm_f32_8x8_gen");
        // Narrow products keep tract's 16x4 kernel, vectors its 64x1, integers its own.
        assert_eq!(picked(DatumType::F32, 96, 288, 4), "arm64simd_mmm_f32_16x4_gen");
        assert_eq!(picked(DatumType::F32, 640, 128, 1), "arm64simd_mmm_f32_64x1_gen");
        assert!(picked(DatumType::I32, 96, 288, 576).contains("i32"));
    }
}
