//! Depthwise convolution and 2x2 max-pooling of channel-planar (NCHW) float data, as tract ops.
//!
//! BlazeFace runs channels-first, where tract 0.23.9's depthwise convolution walks its
//! patches with general-purpose address arithmetic and its max-pool goes through the
//! generic pooling loop; together they were most of the detector's instructions on a Pi
//! (README, "Written by hand, and why"). The two ops here do the same arithmetic in row
//! order, which the compiler turns into 4-lane NEON on aarch64 (and SSE on x86-64)
//! without any target-specific code:
//!
//! - the depthwise convolution copies each channel once into a zero-padded scratch plane,
//!   split by column into `stride` phases so that every kernel tap reads a contiguous
//!   run, then adds up to nine taps per pass over each output row;
//! - the max-pool takes the maximum of each 2x2 block, two rows at a time.
//!
//! [`use_planar_ops`] swaps them into a decluttered model before tract optimises it; what
//! they do not cover (other layouts, dilations, groups other than depthwise, other pools)
//! stays with tract.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{
    ensure, EvalContext, EvalOp, Op, StaticName, TValue, TypedModelPatch, TypedOp, Validation,
};
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, MaxPool, PaddingSpec, PoolSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Kernel taps accumulated in one pass over an output row: a whole 3x3 kernel.
const TAPS_PER_PASS: usize = 9;

/// Multiply-add as the kernels use it: fused on aarch64, where every core has the
/// instruction, separate elsewhere, where the fused form would be a library call.
#[inline(always)]
fn multiply_add(weight: f32, value: f32, accumulator: f32) -> f32 {
    #[cfg(target_arch = "aarch64")]
    {
        weight.mul_add(value, accumulator)
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        accumulator + weight * value
    }
}

/// The spatial geometry of one planar operation: input and output planes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Planes {
    /// Planes in the tensor (batch times channels).
    count: usize,
    input_height: usize,
    input_width: usize,
    output_height: usize,
    output_width: usize,
}

impl Planes {
    fn input_len(&self) -> usize {
        self.input_height * self.input_width
    }

    fn output_len(&self) -> usize {
        self.output_height * self.output_width
    }
}

/// A depthwise convolution (one square kernel per channel) of NCHW or CHW float data with
/// explicit zero padding. The weights and biases are constants of the op.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanarDepthwise {
    channels: usize,
    kernel: usize,
    stride: usize,
    pad_top: usize,
    pad_left: usize,
    pad_bottom: usize,
    pad_right: usize,
    input_height: usize,
    input_width: usize,
    /// Each channel's kernel, row-major, cut into groups of [`TAPS_PER_PASS`] taps (the
    /// last padded with zero weights): `channels * groups` entries.
    weight_groups: Vec<[f32; TAPS_PER_PASS]>,
    /// One per channel.
    bias: Vec<f32>,
}

// tract compares ops to merge identical nodes; weights that are NaN would only compare
// unequal and keep two nodes apart.
impl Eq for PlanarDepthwise {}

impl PlanarDepthwise {
    fn output_height(&self) -> usize {
        let padded = self.pad_top + self.input_height + self.pad_bottom;
        padded.saturating_sub(self.kernel) / self.stride + 1
    }

    fn output_width(&self) -> usize {
        let padded = self.pad_left + self.input_width + self.pad_right;
        padded.saturating_sub(self.kernel) / self.stride + 1
    }

    /// Width of one column phase of the padded plane: the columns `phase, phase + stride, ...`.
    fn phase_width(&self) -> usize {
        (self.output_width() - 1) + self.kernel.div_ceil(self.stride)
    }

    /// Rows of the padded plane that outputs read.
    fn padded_height(&self) -> usize {
        (self.output_height() - 1) * self.stride + self.kernel
    }

    /// Computes the output planes from the input planes (`planes.count` of each).
    fn run(&self, input: &[f32], output: &mut [f32], planes: Planes) {
        let phase_width = self.phase_width();
        let phase_len = self.padded_height() * phase_width;
        // Padding cells are the same for every channel: zeroed once, never written.
        let mut scratch = vec![0f32; phase_len * self.stride];
        // Where each tap reads, relative to the start of an output row in the scratch planes;
        // the padding taps of the last group read the first tap's cell with weight zero.
        let offsets: Vec<usize> = (0..self.kernel * self.kernel)
            .map(|t| {
                let (ky, kx) = (t / self.kernel, t % self.kernel);
                (kx % self.stride) * phase_len + ky * phase_width + kx / self.stride
            })
            .collect();
        let offset_groups: Vec<[usize; TAPS_PER_PASS]> = offsets
            .chunks(TAPS_PER_PASS)
            .map(|group| std::array::from_fn(|tap| group.get(tap).copied().unwrap_or(offsets[0])))
            .collect();
        let in_planes = input.chunks_exact(planes.input_len());
        let out_planes = output.chunks_exact_mut(planes.output_len());
        for (plane, (source, target)) in in_planes.zip(out_planes).enumerate() {
            let channel = plane % self.channels;
            self.fill_scratch(source, &mut scratch, phase_len, phase_width);
            let groups = offset_groups.len();
            let weight_groups = &self.weight_groups[channel * groups..(channel + 1) * groups];
            for (oy, row) in target.chunks_exact_mut(planes.output_width).enumerate() {
                let row_start = oy * self.stride * phase_width;
                row.fill(self.bias[channel]);
                // Nine taps (a whole 3x3 kernel) per pass over the row, so that each output
                // is loaded and stored once per pass while the multiply-adds vectorise.
                for (offsets, weights) in offset_groups.iter().zip(weight_groups) {
                    let sources = offsets.map(|offset| &scratch[row_start + offset..row_start + offset + row.len()]);
                    accumulate_taps(row, sources, *weights);
                }
            }
        }
    }

    /// Copies one input plane into the scratch planes: padded, and with column `x` of the
    /// padded plane at column `x / stride` of phase `x % stride`.
    fn fill_scratch(&self, source: &[f32], scratch: &mut [f32], phase_len: usize, phase_width: usize) {
        let rows = source.chunks_exact(self.input_width);
        for (iy, row) in rows.enumerate().take(self.padded_height().saturating_sub(self.pad_top)) {
            let y = iy + self.pad_top;
            let place = |x: usize| (x % self.stride) * phase_len + y * phase_width + x / self.stride;
            let room = |x: usize| phase_width - x / self.stride;
            if self.stride == 1 {
                let (start, count) = (place(self.pad_left), room(self.pad_left).min(row.len()));
                scratch[start..start + count].copy_from_slice(&row[..count]);
            } else {
                // Stride 2: even and odd input columns go to the two phases, each only as
                // far as its rows reach.
                let (even, odd) = (place(self.pad_left), place(self.pad_left + 1));
                let even_count = room(self.pad_left).min(row.len().div_ceil(2));
                let odd_count = room(self.pad_left + 1).min(row.len() / 2);
                let (low, high) = scratch.split_at_mut(even.max(odd));
                let (even_cells, odd_cells) = if even < odd {
                    (&mut low[even..even + even_count], &mut high[..odd_count])
                } else {
                    (&mut high[..even_count], &mut low[odd..odd + odd_count])
                };
                // Both counts are at most one apart and the odd one is never the larger.
                let cells = even_cells.iter_mut().zip(odd_cells.iter_mut());
                for (pair, (even_cell, odd_cell)) in row.chunks_exact(2).zip(cells) {
                    *even_cell = pair[0];
                    *odd_cell = pair[1];
                }
                if even_count > odd_count {
                    even_cells[odd_count] = row[2 * odd_count];
                }
            }
        }
    }
}

/// `row[x] += weights[0] * sources[0][x] + weights[1] * sources[1][x] + ...` for every `x`,
/// added in that order.
// Not inlined: as a function of its own, `row` is known not to overlap the sources, and
// the loop vectorises without run-time overlap checks on every call.
#[inline(never)]
fn accumulate_taps(row: &mut [f32], sources: [&[f32]; TAPS_PER_PASS], weights: [f32; TAPS_PER_PASS]) {
    // Zipped iterators rather than indexing: the compiler then proves every access in
    // bounds and vectorises the whole row without a scalar tail for each tap.
    let [s0, s1, s2, s3, s4, s5, s6, s7, s8] = sources;
    let [w0, w1, w2, w3, w4, w5, w6, w7, w8] = weights;
    let first = s0.iter().zip(s1).zip(s2);
    let second = s3.iter().zip(s4).zip(s5);
    let third = s6.iter().zip(s7).zip(s8);
    for (sum, ((((&a, &b), &c), ((&d, &e), &f)), ((&g, &h), &i))) in row.iter_mut().zip(first.zip(second).zip(third)) {
        let mut total = multiply_add(w0, a, *sum);
        total = multiply_add(w1, b, total);
        total = multiply_add(w2, c, total);
        total = multiply_add(w3, d, total);
        total = multiply_add(w4, e, total);
        total = multiply_add(w5, f, total);
        total = multiply_add(w6, g, total);
        total = multiply_add(w7, h, total);
        *sum = multiply_add(w8, i, total);
    }
}

/// The shape of the output, given the input's: the last two axes replaced.
fn planar_output_shape(input: &[usize], height: usize, width: usize) -> TVec<usize> {
    let mut shape: TVec<usize> = input.into();
    let rank = shape.len();
    shape[rank - 2] = height;
    shape[rank - 1] = width;
    shape
}

/// Planes of a concrete NCHW or CHW input shape.
fn planes_of(shape: &[usize], output_height: usize, output_width: usize) -> TractResult<Planes> {
    ensure!((3..=4).contains(&shape.len()), "planar ops take CHW or NCHW data, not {shape:?}");
    let rank = shape.len();
    Ok(Planes {
        count: shape[..rank - 2].iter().product(),
        input_height: shape[rank - 2],
        input_width: shape[rank - 1],
        output_height,
        output_width,
    })
}

/// Evaluates a planar op: checks the input, allocates the output, runs `compute` on them.
fn eval_planar(
    input: &TValue,
    height: usize,
    width: usize,
    compute: impl FnOnce(&[f32], &mut [f32], Planes) -> TractResult<()>,
) -> TractResult<TVec<TValue>> {
    let planes = planes_of(input.shape(), height, width)?;
    let data = input.try_as_plain_ram()?;
    let source = data.as_slice::<f32>()?;
    ensure!(source.len() == planes.count * planes.input_len(), "input holds {} values", source.len());
    let mut output = vec![0f32; planes.count * planes.output_len()];
    compute(source, &mut output, planes)?;
    let tensor = Tensor::from_shape(&planar_output_shape(input.shape(), height, width), &output)?;
    Ok(tvec!(tensor.into_tvalue()))
}

/// The output fact of a planar op: the input's with the last two axes replaced.
fn planar_output_fact(input: &TypedFact, height: usize, width: usize) -> TractResult<TypedFact> {
    ensure!(input.datum_type == f32::datum_type(), "planar ops take f32 data");
    let mut shape: TVec<TDim> = input.shape.iter().cloned().collect();
    let rank = shape.len();
    ensure!(rank >= 3, "planar ops take CHW or NCHW data");
    shape[rank - 2] = height.to_dim();
    shape[rank - 1] = width.to_dim();
    Ok(f32::fact(&*shape))
}

impl Op for PlanarDepthwise {
    fn name(&self) -> StaticName {
        "PlanarDepthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} channels, {}x{} kernel, stride {}, padding top {} left {}",
            self.channels, self.kernel, self.kernel, self.stride, self.pad_top, self.pad_left
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    tract_onnx::tract_core::op_as_typed_op!();
}

impl EvalOp for PlanarDepthwise {
    tract_onnx::tract_core::op_out_of_plan!();

    fn eval(&self, _context: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 1, "PlanarDepthwise takes one input");
        let shape = inputs[0].shape();
        ensure!(
            shape.len() >= 3 && shape[shape.len() - 3..] == [self.channels, self.input_height, self.input_width],
            "PlanarDepthwise expects {}x{}x{} planes, got {shape:?}",
            self.channels,
            self.input_height,
            self.input_width
        );
        eval_planar(&inputs[0], self.output_height(), self.output_width(), |source, target, planes| {
            self.run(source, target, planes);
            Ok(())
        })
    }
}

impl TypedOp for PlanarDepthwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1, "PlanarDepthwise takes one input");
        Ok(tvec!(planar_output_fact(inputs[0], self.output_height(), self.output_width())?))
    }

    tract_onnx::tract_core::as_op!();
}

/// Non-overlapping 2x2 max-pooling of NCHW or CHW float data; a last odd row or column is
/// dropped, as ONNX's `MaxPool` without padding does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanarMaxPool2x2 {
    input_height: usize,
    input_width: usize,
}

impl PlanarMaxPool2x2 {
    fn run(source: &[f32], target: &mut [f32], planes: Planes) {
        let in_planes = source.chunks_exact(planes.input_len());
        for (input, output) in in_planes.zip(target.chunks_exact_mut(planes.output_len())) {
            let row_pairs = input.chunks_exact(2 * planes.input_width);
            for (rows, out_row) in row_pairs.zip(output.chunks_exact_mut(planes.output_width)) {
                let (top, bottom) = rows.split_at(planes.input_width);
                let pairs = top.chunks_exact(2).zip(bottom.chunks_exact(2));
                for (out, (upper, lower)) in out_row.iter_mut().zip(pairs) {
                    *out = upper[0].max(upper[1]).max(lower[0].max(lower[1]));
                }
            }
        }
    }
}

impl Op for PlanarMaxPool2x2 {
    fn name(&self) -> StaticName {
        "PlanarMaxPool2x2".into()
    }

    tract_onnx::tract_core::op_as_typed_op!();
}

impl EvalOp for PlanarMaxPool2x2 {
    tract_onnx::tract_core::op_out_of_plan!();

    fn eval(&self, _context: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 1, "PlanarMaxPool2x2 takes one input");
        let shape = inputs[0].shape();
        ensure!(
            shape.len() >= 3 && shape[shape.len() - 2..] == [self.input_height, self.input_width],
            "PlanarMaxPool2x2 expects {}x{} planes, got {shape:?}",
            self.input_height,
            self.input_width
        );
        eval_planar(&inputs[0], self.input_height / 2, self.input_width / 2, |source, target, planes| {
            Self::run(source, target, planes);
            Ok(())
        })
    }
}

impl TypedOp for PlanarMaxPool2x2 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1, "PlanarMaxPool2x2 takes one input");
        Ok(tvec!(planar_output_fact(inputs[0], self.input_height / 2, self.input_width / 2)?))
    }

    tract_onnx::tract_core::as_op!();
}

/// Concrete height and width of a channels-first f32 input, if it is one.
fn planar_input(model: &TypedModel, node: &TypedNode, format: DataFormat) -> TractResult<Option<[usize; 3]>> {
    if !matches!(format, DataFormat::NCHW | DataFormat::CHW) {
        return Ok(None);
    }
    let fact = model.outlet_fact(node.inputs[0])?;
    let Some(shape) = fact.shape.as_concrete() else { return Ok(None) };
    let rank = shape.len();
    let expected_rank = if format == DataFormat::NCHW { 4 } else { 3 };
    if fact.datum_type != f32::datum_type() || rank != expected_rank {
        return Ok(None);
    }
    Ok(Some([shape[rank - 3], shape[rank - 2], shape[rank - 1]]))
}

/// Zero padding `[top, left, bottom, right]` if the padding is explicit (or none).
fn explicit_padding(pool: &PoolSpec) -> Option<[usize; 4]> {
    match &pool.padding {
        PaddingSpec::Valid => Some([0; 4]),
        PaddingSpec::Explicit(before, after) | PaddingSpec::ExplicitOnnxPool(before, after, false) => {
            match (before.as_slice(), after.as_slice()) {
                ([top, left], [bottom, right]) => Some([*top, *left, *bottom, *right]),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The planar depthwise op that computes `node`, if it is a float depthwise convolution
/// this module covers.
fn depthwise_for(model: &TypedModel, node: &TypedNode, conv: &Conv) -> TractResult<Option<PlanarDepthwise>> {
    let pool = &conv.pool_spec;
    let Some([channels, input_height, input_width]) = planar_input(model, node, pool.data_format)? else {
        return Ok(None);
    };
    let kernel = pool.kernel_shape.first().copied().unwrap_or(0);
    let strides = pool.strides();
    let square = pool.kernel_shape.len() == 2 && pool.kernel_shape[1] == kernel && kernel > 0;
    let undilated = pool.dilations().iter().all(|&d| d == 1);
    let even_stride = strides.len() == 2 && strides[0] == strides[1] && (1..=2).contains(&strides[0]);
    let depthwise = conv.group == channels && conv.input_channels() == channels && conv.output_channels() == channels;
    let Some([pad_top, pad_left, pad_bottom, pad_right]) = explicit_padding(pool) else { return Ok(None) };
    if !(square && undilated && even_stride && depthwise && conv.q_params.is_none())
        || conv.kernel_fmt != KernelFormat::OIHW
        || node.inputs.len() != 3
    {
        return Ok(None);
    }
    let (Some(weights), Some(bias)) =
        (model.outlet_fact(node.inputs[1])?.konst.clone(), model.outlet_fact(node.inputs[2])?.konst.clone())
    else {
        return Ok(None);
    };
    if weights.datum_type() != f32::datum_type()
        || weights.shape() != [channels, 1, kernel, kernel]
        || bias.datum_type() != f32::datum_type()
    {
        return Ok(None);
    }
    let bias: Vec<f32> = match bias.try_as_plain_ram()?.as_slice::<f32>()? {
        [one] => vec![*one; channels],
        all if all.len() == channels => all.to_vec(),
        _ => return Ok(None),
    };
    let op = PlanarDepthwise {
        channels,
        kernel,
        stride: strides[0],
        pad_top,
        pad_left,
        pad_bottom,
        pad_right,
        input_height,
        input_width,
        weight_groups: weights
            .try_as_plain_ram()?
            .as_slice::<f32>()?
            .chunks_exact(kernel * kernel)
            .flat_map(|taps| taps.chunks(TAPS_PER_PASS))
            .map(|group| std::array::from_fn(|tap| group.get(tap).copied().unwrap_or(0.0)))
            .collect(),
        bias,
    };
    // tract's own output shape must be the one this op computes.
    let input_facts = node.inputs.iter().map(|&outlet| model.outlet_fact(outlet)).collect::<TractResult<Vec<_>>>()?;
    let expected = conv.output_facts(&input_facts)?;
    let ours = op.output_facts(&input_facts[..1])?;
    let fits = pad_top + input_height + pad_bottom >= kernel && pad_left + input_width + pad_right >= kernel;
    Ok((fits && expected[0].shape == ours[0].shape).then_some(op))
}

/// The planar max-pool that computes `node`, if it is a 2x2, stride-2 float max-pool
/// without padding or index outputs.
fn max_pool_for(model: &TypedModel, node: &TypedNode, pool: &MaxPool) -> TractResult<Option<PlanarMaxPool2x2>> {
    let spec = &pool.pool_spec;
    let Some([_, input_height, input_width]) = planar_input(model, node, spec.data_format)? else {
        return Ok(None);
    };
    let two_by_two = spec.kernel_shape.as_slice() == [2, 2] && spec.strides().as_ref() == [2, 2];
    let unpadded = explicit_padding(spec) == Some([0; 4]);
    let undilated = spec.dilations().iter().all(|&d| d == 1);
    Ok((two_by_two
        && unpadded
        && undilated
        && pool.with_index_outputs.is_none()
        && input_height >= 2
        && input_width >= 2)
        .then_some(PlanarMaxPool2x2 { input_height, input_width }))
}

/// Replaces the depthwise convolutions and 2x2 max-pools of a decluttered model that this
/// module covers with its planar ops; returns how many were replaced.
pub fn use_planar_ops(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let patch = if let Some(conv) = node.op_as::<Conv>() {
            match depthwise_for(model, node, conv)? {
                Some(op) => TypedModelPatch::replace_single_op(model, node, &node.inputs[..1], op)?,
                None => continue,
            }
        } else if let Some(pool) = node.op_as::<MaxPool>() {
            match max_pool_for(model, node, pool)? {
                Some(op) => TypedModelPatch::replace_single_op(model, node, &node.inputs, op)?,
                None => continue,
            }
        } else {
            continue;
        };
        patch.apply(model)?;
        replaced += 1;
    }
    Ok(replaced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::tract_ndarray::ArrayD;

    /// Reproducible values in -1..1 without any structure a kernel could line up with.
    fn values(count: usize, seed: usize) -> Vec<f32> {
        (0..count).map(|i| ((i * 7_919 + seed * 104_729) % 2_003) as f32 / 1_001.5 - 1.0).collect()
    }

    fn pool_spec(channels: usize, kernel: usize, stride: usize, padding: PaddingSpec) -> PoolSpec {
        PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![kernel, kernel],
            padding,
            dilations: None,
            strides: Some(tvec![stride, stride]),
            input_channels: channels,
            output_channels: channels,
        }
    }

    /// A model of one tract depthwise convolution of a `[1, channels, height, width]` input.
    fn depthwise_model(
        channels: usize,
        (height, width): (usize, usize),
        kernel: usize,
        stride: usize,
        padding: PaddingSpec,
    ) -> TypedModel {
        let mut model = TypedModel::default();
        let input = model.add_source("input", f32::fact([1, channels, height, width])).unwrap();
        let weights =
            Tensor::from_shape(&[channels, 1, kernel, kernel], &values(channels * kernel * kernel, 1)).unwrap();
        let bias = Tensor::from_shape(&[channels], &values(channels, 2)).unwrap();
        let weights = model.add_const("weights", weights).unwrap();
        let bias = model.add_const("bias", bias).unwrap();
        let conv = Conv {
            pool_spec: pool_spec(channels, kernel, stride, padding),
            kernel_fmt: KernelFormat::OIHW,
            group: channels,
            q_params: None,
        };
        let output = model.wire_node("conv", conv, &[input, weights, bias]).unwrap();
        model.select_output_outlets(&output).unwrap();
        model
    }

    fn run(model: TypedModel, input: &Tensor) -> ArrayD<f32> {
        let outputs = model.into_runnable().unwrap().run(tvec!(input.clone().into_tvalue())).unwrap();
        outputs[0].to_plain_array_view::<f32>().unwrap().to_owned()
    }

    /// The planar op replaces tract's and computes the same values, up to float rounding.
    fn assert_same_as_tract(model: TypedModel, input_shape: &[usize]) {
        let input = Tensor::from_shape(input_shape, &values(input_shape.iter().product(), 3)).unwrap();
        let expected = run(model.clone(), &input);
        let mut planar = model;
        assert_eq!(use_planar_ops(&mut planar).unwrap(), 1);
        let replaced =
            planar.nodes.iter().any(|node| node.op_is::<PlanarDepthwise>() || node.op_is::<PlanarMaxPool2x2>());
        assert!(replaced, "no planar op in {planar}");
        let got = run(planar, &input);
        assert_eq!(got.shape(), expected.shape());
        for (index, (g, e)) in got.iter().zip(expected.iter()).enumerate() {
            assert!((g - e).abs() <= 1e-5 * (1.0 + e.abs()), "value {index}: {g} != tract's {e}");
        }
    }

    #[test]
    fn depthwise_sums_the_neighbourhood_inside_the_zero_padding() {
        // One channel, a 3x3 kernel of ones, bias 0.5 and padding 1: each output is 0.5 plus
        // the sum of the input's cells around it.
        let mut model = TypedModel::default();
        let input = model.add_source("input", f32::fact([1, 1, 3, 4])).unwrap();
        let weights = model.add_const("weights", Tensor::from_shape(&[1, 1, 3, 3], &[1f32; 9]).unwrap()).unwrap();
        let bias = model.add_const("bias", Tensor::from_shape(&[1], &[0.5f32]).unwrap()).unwrap();
        let conv = Conv {
            pool_spec: pool_spec(1, 3, 1, PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1])),
            kernel_fmt: KernelFormat::OIHW,
            group: 1,
            q_params: None,
        };
        let output = model.wire_node("conv", conv, &[input, weights, bias]).unwrap();
        model.select_output_outlets(&output).unwrap();
        assert_eq!(use_planar_ops(&mut model).unwrap(), 1);
        #[rustfmt::skip]
        let input = Tensor::from_shape(&[1, 1, 3, 4], &[
            1f32, 2.0, 3.0, 4.0,
            5.0, 6.0, 7.0, 8.0,
            9.0, 10.0, 11.0, 12.0,
        ]).unwrap();
        let got = run(model, &input);
        #[rustfmt::skip]
        let expected = [
            1.0 + 2.0 + 5.0 + 6.0, 1.0 + 2.0 + 3.0 + 5.0 + 6.0 + 7.0, 2.0 + 3.0 + 4.0 + 6.0 + 7.0 + 8.0, 3.0 + 4.0 + 7.0 + 8.0,
            1.0 + 2.0 + 5.0 + 6.0 + 9.0 + 10.0, 54.0, 63.0, 3.0 + 4.0 + 7.0 + 8.0 + 11.0 + 12.0,
            5.0 + 6.0 + 9.0 + 10.0, 5.0 + 6.0 + 7.0 + 9.0 + 10.0 + 11.0, 6.0 + 7.0 + 8.0 + 10.0 + 11.0 + 12.0, 7.0 + 8.0 + 11.0 + 12.0,
        ];
        assert_eq!(got.shape(), [1, 1, 3, 4]);
        for (g, e) in got.iter().zip(expected) {
            assert_eq!(*g, e + 0.5);
        }
    }

    #[test]
    fn depthwise_stride_one_matches_tract_on_rows_of_any_width() {
        let same = || PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1]);
        for (height, width) in [(16, 16), (7, 13), (5, 3), (2, 1)] {
            assert_same_as_tract(depthwise_model(5, (height, width), 3, 1, same()), &[1, 5, height, width]);
        }
        assert_same_as_tract(depthwise_model(3, (9, 9), 3, 1, PaddingSpec::Valid), &[1, 3, 9, 9]);
    }

    #[test]
    fn depthwise_stride_two_matches_tract_with_padding_on_either_side() {
        // BlazeFace pads only after (TensorFlow's SAME for even sizes); ONNX models often both.
        for (before, after) in [(0, 1), (1, 1), (1, 0), (0, 0)] {
            for (height, width) in [(16, 16), (9, 11), (4, 7)] {
                let padding = PaddingSpec::Explicit(tvec![before, before], tvec![after, after]);
                assert_same_as_tract(depthwise_model(4, (height, width), 3, 2, padding), &[1, 4, height, width]);
            }
        }
    }

    #[test]
    fn depthwise_kernels_of_more_than_nine_taps_match_tract() {
        let padding = PaddingSpec::Explicit(tvec![2, 2], tvec![2, 2]);
        assert_same_as_tract(depthwise_model(3, (11, 10), 5, 1, padding.clone()), &[1, 3, 11, 10]);
        assert_same_as_tract(depthwise_model(3, (11, 10), 5, 2, padding), &[1, 3, 11, 10]);
    }

    #[test]
    fn max_pool_matches_tract_and_drops_an_odd_last_row_and_column() {
        for (height, width) in [(64, 64), (7, 9), (2, 2)] {
            let mut model = TypedModel::default();
            let input = model.add_source("input", f32::fact([1, 3, height, width])).unwrap();
            let spec = PoolSpec { output_channels: 3, ..pool_spec(3, 2, 2, PaddingSpec::Valid) };
            let output =
                model.wire_node("pool", MaxPool { pool_spec: spec, with_index_outputs: None }, &[input]).unwrap();
            model.select_output_outlets(&output).unwrap();
            assert_same_as_tract(model, &[1, 3, height, width]);
        }
        // By hand: the maximum of each 2x2 block.
        let op = PlanarMaxPool2x2 { input_height: 3, input_width: 5 };
        let input = Tensor::from_shape(
            &[1, 3, 5],
            &[1f32, 9.0, -2.0, -1.0, 7.0, 3.0, 4.0, -5.0, -3.0, 8.0, 50.0, 50.0, 50.0, 50.0, 50.0],
        )
        .unwrap();
        let output = op.eval(&EvalContext::out_of_plan(), tvec!(input.into_tvalue())).unwrap();
        assert_eq!(output[0].shape(), [1, 1, 2]);
        assert_eq!(output[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap(), [9.0, -1.0]);
    }

    #[test]
    fn what_the_planar_ops_do_not_cover_stays_with_tract() {
        let same = PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1]);
        // Channels last.
        let mut model = depthwise_model(4, (8, 8), 3, 1, same.clone());
        let conv = model.nodes.iter().find(|n| n.op_is::<Conv>()).unwrap().id;
        let mut nhwc = model.node(conv).op_as::<Conv>().unwrap().clone();
        nhwc.pool_spec.data_format = DataFormat::NHWC;
        let mut channels_last = TypedModel::default();
        let input = channels_last.add_source("input", f32::fact([1, 8, 8, 4])).unwrap();
        let weights = model.outlet_fact(model.node(conv).inputs[1]).unwrap().konst.clone().unwrap();
        let bias = model.outlet_fact(model.node(conv).inputs[2]).unwrap().konst.clone().unwrap();
        let weights = channels_last.add_const("weights", weights).unwrap();
        let bias = channels_last.add_const("bias", bias).unwrap();
        let output = channels_last.wire_node("conv", nhwc, &[input, weights, bias]).unwrap();
        channels_last.select_output_outlets(&output).unwrap();
        assert_eq!(use_planar_ops(&mut channels_last).unwrap(), 0);
        // Stride three.
        model = depthwise_model(4, (9, 9), 3, 3, same.clone());
        assert_eq!(use_planar_ops(&mut model).unwrap(), 0);
        // Dilated.
        model = depthwise_model(4, (9, 9), 3, 1, same);
        let conv = model.nodes.iter().find(|n| n.op_is::<Conv>()).unwrap().id;
        let mut dilated = model.node(conv).op_as::<Conv>().unwrap().clone();
        dilated.pool_spec.dilations = Some(tvec![2, 2]);
        dilated.pool_spec.padding = PaddingSpec::Explicit(tvec![2, 2], tvec![2, 2]);
        model.node_mut(conv).op = Box::new(dilated);
        assert_eq!(use_planar_ops(&mut model).unwrap(), 0);
    }
}
