//! A kernel this crate adds to tract's registry of machine-specific routines.
//!
//! tract 0.23.9 runs a channels-last depthwise convolution through the "depthwise_c"
//! routine of the machine when one is registered. It ships one for aarch64 (NEON) and
//! none for x86-64, where it falls back to a loop that loads and stores every output
//! channel once per kernel tap: 4–6 GFLOP/s on the classifier's layers here, a quarter of
//! the model's time. [`depthwise_c_f32_avx2`] keeps 32 output channels in registers
//! across all taps. It is registered through `inventory`, the way tract-linalg registers
//! its own kernels, so tract picks it on x86-64 machines with AVX2 and FMA and keeps its
//! loop on any other.

#[cfg(target_arch = "x86_64")]
pub use x86::{depthwise_c_f32_avx2, KERNEL_NAME};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{__m256, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps, _mm256_storeu_ps};

    use tract_onnx::tract_core::tract_linalg::isa::{Arch, Isa, IsaReq};
    use tract_onnx::tract_core::tract_linalg::routines::{Func, Routine, RoutineFactory};

    /// The name tract reports for the kernel.
    pub const KERNEL_NAME: &str = "emotion_pi_avx2_depthwise_c_f32";

    /// Channels-last depthwise convolution over `len` output positions, with the contract of
    /// `tract_linalg::routines::DepthwiseCF32`: for each position `i` and channel `c`,
    /// `output[i·out_stride + c] = bias[c] + Σ_t kernel[taps[t]·k_stride + c] ·
    /// input[i·in_stride + offsets[t] + c]`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA. Every `input`, `kernel` and `bias` element the sum
    /// names must be readable and every `output` element it names writable, and `taps` and
    /// `offsets` must have the same length.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn depthwise_c_f32_avx2(
        input: *const f32,
        output: *mut f32,
        kernel: *const f32,
        taps: &[usize],
        offsets: &[isize],
        bias: *const f32,
        channels: usize,
        k_stride: usize,
        len: usize,
        in_stride: isize,
        out_stride: isize,
    ) {
        const LANES: usize = 8;
        const BLOCK: usize = 4 * LANES;
        // SAFETY: every pointer below stays within the elements the caller vouches for:
        // channels c..c+BLOCK (or c..c+LANES) exist because the loops stop short of `channels`.
        unsafe {
            for i in 0..len as isize {
                let src = input.offset(i * in_stride);
                let dst = output.offset(i * out_stride);
                let mut c = 0;
                while c + BLOCK <= channels {
                    let mut acc: [__m256; 4] = [_mm256_setzero_ps(); 4];
                    for (j, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_loadu_ps(bias.add(c + j * LANES));
                    }
                    for (&tap, &offset) in taps.iter().zip(offsets) {
                        let weights = kernel.add(tap * k_stride + c);
                        let values = src.offset(offset).add(c);
                        for (j, a) in acc.iter_mut().enumerate() {
                            let x = _mm256_loadu_ps(values.add(j * LANES));
                            *a = _mm256_fmadd_ps(x, _mm256_loadu_ps(weights.add(j * LANES)), *a);
                        }
                    }
                    for (j, a) in acc.iter().enumerate() {
                        _mm256_storeu_ps(dst.add(c + j * LANES), *a);
                    }
                    c += BLOCK;
                }
                while c + LANES <= channels {
                    let mut acc = _mm256_loadu_ps(bias.add(c));
                    for (&tap, &offset) in taps.iter().zip(offsets) {
                        let x = _mm256_loadu_ps(src.offset(offset).add(c));
                        acc = _mm256_fmadd_ps(x, _mm256_loadu_ps(kernel.add(tap * k_stride + c)), acc);
                    }
                    _mm256_storeu_ps(dst.add(c), acc);
                    c += LANES;
                }
                for c in c..channels {
                    let mut sum = *bias.add(c);
                    for (&tap, &offset) in taps.iter().zip(offsets) {
                        sum = (*src.offset(offset).add(c)).mul_add(*kernel.add(tap * k_stride + c), sum);
                    }
                    *dst.add(c) = sum;
                }
            }
        }
    }

    inventory::submit! {
        Routine {
            func: Func::DepthwiseC,
            arch: Some(Arch::X86_64),
            isa: IsaReq::ANY.needing(&[Isa::X86_64Avx2, Isa::X86_64Fma]),
            boost: 0,
            round_trip: false,
            // tract calls it only where `isa` says AVX2 and FMA are present, which is the one
            // requirement the kernel adds to the DepthwiseCF32 contract.
            factory: RoutineFactory::DepthwiseCF32 { name: KERNEL_NAME, run: depthwise_c_f32_avx2 },
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use tract_onnx::prelude::DatumType;
    use tract_onnx::tract_core::tract_linalg::isa;
    use tract_onnx::tract_core::tract_linalg::routines::{best_for, Func};

    fn avx2_fma() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    #[test]
    fn tract_picks_the_kernel_on_avx2_machines() {
        let chosen = best_for(Func::DepthwiseC, DatumType::F32, &isa::native()).map(|r| r.name());
        assert_eq!(chosen == Some(KERNEL_NAME), avx2_fma(), "{chosen:?}");
    }

    #[test]
    fn matches_a_scalar_depthwise_sum_for_every_channel_tail() {
        if !avx2_fma() {
            return;
        }
        // A 3x3 neighbourhood in an image of 5 channels-last rows, stepping 2 positions per
        // output (stride 2), with 4 taps dropped as at a border.
        for channels in [1, 7, 8, 9, 31, 32, 33, 40, 71, 144] {
            let width = 12;
            let k_stride = channels + 3;
            let input: Vec<f32> = (0..5 * width * channels).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect();
            let kernel: Vec<f32> = (0..9 * k_stride).map(|i| ((i * 53 % 89) as f32 - 44.0) / 31.0).collect();
            let bias: Vec<f32> = (0..channels).map(|c| c as f32 * 0.25 - 3.0).collect();
            let row = (width * channels) as isize;
            let ch = channels as isize;
            let all: Vec<(usize, isize)> =
                (0..9).map(|t| (t, (t as isize / 3 - 1) * row + (t as isize % 3 - 1) * ch)).collect();
            for taps in [all.clone(), all.iter().copied().filter(|(t, _)| t % 3 != 0 && *t > 2).collect()] {
                let (tap_indices, offsets): (Vec<usize>, Vec<isize>) = taps.iter().copied().unzip();
                let (len, in_stride, out_stride) = (4, 2 * ch, ch + 1);
                let centre = 2 * row + ch;
                let mut output = vec![f32::NAN; len * (channels + 1)];
                // SAFETY: AVX2 and FMA were detected; centre ± one row and column plus 3 steps of
                // 2 positions stay inside `input`, and `output` holds len rows of channels + 1.
                unsafe {
                    depthwise_c_f32_avx2(
                        input.as_ptr().offset(centre),
                        output.as_mut_ptr(),
                        kernel.as_ptr(),
                        &tap_indices,
                        &offsets,
                        bias.as_ptr(),
                        channels,
                        k_stride,
                        len,
                        in_stride,
                        out_stride,
                    )
                };
                for i in 0..len {
                    for c in 0..channels {
                        let expected: f64 = bias[c] as f64
                            + taps
                                .iter()
                                .map(|&(t, off)| {
                                    let x = input[(centre + i as isize * in_stride + off) as usize + c];
                                    kernel[t * k_stride + c] as f64 * x as f64
                                })
                                .sum::<f64>();
                        let got = output[i * (channels + 1) + c];
                        assert!(
                            (got as f64 - expected).abs() < 1e-4,
                            "{channels} ch, pos {i}, c {c}: {got} vs {expected}"
                        );
                    }
                    assert!(output[i * (channels + 1) + channels].is_nan(), "wrote past the channels");
                }
            }
        }
    }
}
