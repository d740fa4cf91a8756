//! SSD anchor centres as MediaPipe's `SsdAnchorsCalculator` lays them out.

/// Layout options of an SSD anchor grid (the subset BlazeFace uses: square anchors of fixed size).
#[derive(Debug, Clone, PartialEq)]
pub struct AnchorOptions {
    pub input_width: u32,
    pub input_height: u32,
    pub strides: Vec<u32>,
    /// Aspect ratios per layer; with `interpolated_scale_aspect_ratio` one more anchor per cell.
    pub aspect_ratios: usize,
    pub interpolated_scale_aspect_ratio: bool,
    pub offset: f32,
}

impl AnchorOptions {
    /// BlazeFace short range (front camera, 128×128): 896 anchors.
    pub fn blazeface_short_range() -> Self {
        Self {
            input_width: 128,
            input_height: 128,
            strides: vec![8, 16, 16, 16],
            aspect_ratios: 1,
            interpolated_scale_aspect_ratio: true,
            offset: 0.5,
        }
    }

    /// BlazeFace long range (back camera, 256×256): 896 anchors. MediaPipe's
    /// `graphs/face_detection/face_detection_back_desktop_live.pbtxt` leaves
    /// `interpolated_scale_aspect_ratio` at its proto default of 1.0, which adds the anchor.
    pub fn blazeface_long_range() -> Self {
        Self {
            input_width: 256,
            input_height: 256,
            strides: vec![16, 32, 32, 32],
            aspect_ratios: 1,
            interpolated_scale_aspect_ratio: true,
            offset: 0.5,
        }
    }
}

/// Anchor centres `(x, y)` normalised to 0..1, in the order the model's outputs list them.
///
/// Consecutive layers with the same stride share one feature map, whose cells
/// carry the anchors of all those layers (row-major, then anchor).
pub fn anchor_centers(options: &AnchorOptions) -> Vec<(f32, f32)> {
    let per_layer = options.aspect_ratios + usize::from(options.interpolated_scale_aspect_ratio);
    let mut centers = Vec::new();
    let mut layer = 0;
    while layer < options.strides.len() {
        let stride = options.strides[layer];
        let mut same_stride = 0;
        while layer < options.strides.len() && options.strides[layer] == stride {
            same_stride += 1;
            layer += 1;
        }
        let rows = options.input_height.div_ceil(stride);
        let cols = options.input_width.div_ceil(stride);
        for y in 0..rows {
            for x in 0..cols {
                let cx = (x as f32 + options.offset) / cols as f32;
                let cy = (y as f32 + options.offset) / rows as f32;
                centers.extend(std::iter::repeat_n((cx, cy), same_stride * per_layer));
            }
        }
    }
    centers
}
