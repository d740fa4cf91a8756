use std::path::PathBuf;

use super::*;

fn fer_names() -> Vec<String> {
    ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"].map(String::from).to_vec()
}

fn astronaut() -> RgbImage {
    image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/astronaut.png"))
        .expect("astronaut fixture")
        .to_rgb8()
}

/// Her face as BlazeFace finds it (tests/fixtures/blazeface_reference.json), plus a
/// second, smaller face in the top-right corner where its label has no room above and
/// must be pushed left.
fn astronaut_faces() -> Vec<UiFace> {
    vec![
        UiFace {
            bbox: BoundingBox { x: 179.08, y: 81.36, width: 92.57, height: 92.57 },
            label: 3,
            confidence: 0.81,
            probabilities: vec![0.01, 0.0, 0.02, 0.81, 0.03, 0.05, 0.08],
        },
        UiFace {
            bbox: BoundingBox { x: 450.0, y: 4.0, width: 56.0, height: 56.0 },
            label: 5,
            confidence: 0.55,
            probabilities: vec![0.05, 0.02, 0.2, 0.03, 0.05, 0.55, 0.1],
        },
    ]
}

fn render(width: u32, height: u32, state: &UiState) -> Framebuffer {
    let mut screen = Framebuffer::new(width, height);
    let Ok(()) = draw_ui(&mut screen, state);
    screen
}

fn count(screen: &Framebuffer, area: &Rectangle, color: Rgb565) -> usize {
    area.points().filter(|p| screen.pixel(p.x as u32, p.y as u32) == Some(color)).count()
}

fn check_golden(width: u32, height: u32) {
    let frame = astronaut();
    let faces = astronaut_faces();
    let names = fer_names();
    let state =
        UiState { frame: Some(&frame), faces: &faces, class_names: &names, fps: 12.5, status: UiStatus::Running };
    let actual = render(width, height, &state).to_rgb_image();

    let path =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden")).join(format!("ui_{width}x{height}.png"));
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") || !path.exists() {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("create tests/golden");
        actual.save(&path).expect("write golden");
        panic!("{} was (re)written; inspect it, then rerun without UPDATE_GOLDEN", path.display());
    }
    let expected = image::open(&path).expect("read golden").to_rgb8();
    if expected != actual {
        let differing = if expected.dimensions() == actual.dimensions() {
            expected.pixels().zip(actual.pixels()).filter(|(a, b)| a != b).count()
        } else {
            usize::MAX
        };
        let out = std::env::temp_dir().join(format!("ui_{width}x{height}.actual.png"));
        actual.save(&out).expect("write actual render");
        panic!("render differs from {} in {differing} pixels; actual saved to {}", path.display(), out.display());
    }
}

#[test]
fn golden_240x240() {
    check_golden(240, 240);
}

#[test]
fn golden_240x320() {
    check_golden(240, 320);
}

#[test]
fn golden_320x240() {
    check_golden(320, 240);
}

#[test]
fn bars_are_round_p_times_width_for_the_largest_face() {
    let names = fer_names();
    let small = UiFace {
        bbox: BoundingBox { x: 0.0, y: 0.0, width: 10.0, height: 10.0 },
        label: 0,
        confidence: 1.0,
        probabilities: vec![1.0; 7],
    };
    // Sums to more than 1 on purpose: bars are independent; 1.7 and -0.2 must clamp.
    let probabilities = vec![0.0, 0.333, 0.5, 1.7, -0.2, 0.05, 0.996];
    let large = UiFace {
        bbox: BoundingBox { x: 50.0, y: 50.0, width: 40.0, height: 40.0 },
        label: 3,
        confidence: 0.9,
        probabilities: probabilities.clone(),
    };
    let faces = [small, large];
    for (width, height) in [(240, 240), (240, 320), (320, 240)] {
        let state = UiState { frame: None, faces: &faces, class_names: &names, fps: 0.0, status: UiStatus::Running };
        let screen = render(width, height, &state);
        let area = Layout::for_screen(Size::new(width, height)).bars;
        let bars = BarLayout::for_area(&area, names.len(), "surprise".len());
        for (class, &p) in probabilities.iter().enumerate() {
            let track = bars.track(class);
            let middle = track.top_left.y + track.size.height as i32 / 2;
            let row = Rectangle::new(Point::new(area.top_left.x, middle), Size::new(area.size.width, 1));
            let expected = (p.clamp(0.0, 1.0) * track.size.width as f32).round() as usize;
            assert_eq!(count(&screen, &row, emotion_color(class)), expected, "{width}x{height} class {class}");
            assert_eq!(
                count(&screen, &row, TRACK),
                track.size.width as usize - expected,
                "{width}x{height} class {class}"
            );
        }
    }
}

#[test]
fn face_box_lands_on_the_hand_computed_screen_rectangle() {
    // 640x480 on 320x240: the 240x200 preview shows it at 0.375 scale, 10 rows down, so
    // the box (160, 120, 320, 240) becomes x 60..180, y 55..145 (see layout tests).
    let frame = RgbImage::new(640, 480);
    let faces = [UiFace {
        bbox: BoundingBox { x: 160.0, y: 120.0, width: 320.0, height: 240.0 },
        label: 4,
        confidence: 0.7,
        probabilities: vec![0.0; 7],
    }];
    let names = fer_names();
    let state =
        UiState { frame: Some(&frame), faces: &faces, class_names: &names, fps: 30.0, status: UiStatus::Running };
    let screen = render(320, 240, &state);
    let color = emotion_color(4);
    let at = |x, y| screen.pixel(x, y);
    for y in [60, 100, 141] {
        assert_eq!(
            (at(59, y), at(60, y), at(61, y), at(62, y)),
            (Some(Rgb565::BLACK), Some(color), Some(color), Some(Rgb565::BLACK)),
            "left edge, row {y}"
        );
        assert_eq!(
            (at(177, y), at(178, y), at(179, y), at(180, y)),
            (Some(Rgb565::BLACK), Some(color), Some(color), Some(Rgb565::BLACK)),
            "right edge, row {y}"
        );
    }
    for x in [62, 120, 177] {
        assert_eq!(
            (at(x, 55), at(x, 56), at(x, 57)),
            (Some(color), Some(color), Some(Rgb565::BLACK)),
            "top edge, column {x}"
        );
        assert_eq!(
            (at(x, 142), at(x, 143), at(x, 144), at(x, 145)),
            (Some(Rgb565::BLACK), Some(color), Some(color), Some(Rgb565::BLACK)),
            "bottom edge, column {x}"
        );
    }
    // The label's backdrop (one text line plus a row either side) sits right above the
    // box, starting at its left edge.
    let label_top = 55 - (LABEL_FONT.character_size.height + 2);
    assert_eq!((at(60, label_top - 1), at(60, label_top), at(60, 54)), (Some(Rgb565::BLACK), Some(color), Some(color)));
    assert_eq!(at(59, 54), Some(Rgb565::BLACK));
}

#[test]
fn missing_frame_leaves_the_preview_blank_and_status_goes_in_the_info_strip() {
    let names = fer_names();
    let faces = astronaut_faces();
    for (width, height) in [(240, 240), (240, 320), (320, 240)] {
        let layout = Layout::for_screen(Size::new(width, height));
        let with = |status| {
            render(width, height, &UiState { frame: None, faces: &faces, class_names: &names, fps: 9.0, status })
        };
        let no_camera = with(UiStatus::NoCamera);
        // Nothing can be mapped without a frame, so faces are not drawn either.
        let preview_pixels = (layout.preview.size.width * layout.preview.size.height) as usize;
        assert_eq!(count(&no_camera, &layout.preview, BACKGROUND), preview_pixels, "{width}x{height}");
        // The headline line (above the frame-rate text) carries the status.
        let headline = Rectangle::new(layout.info.top_left, Size::new(layout.info.size.width / 2, 20));
        assert!(count(&no_camera, &headline, TEXT) > 50, "{width}x{height}: no status text");
        let no_face = with(UiStatus::NoFace);
        let headline_of =
            |screen: &Framebuffer| headline.points().map(|p| screen.pixel(p.x as u32, p.y as u32)).collect::<Vec<_>>();
        assert_ne!(headline_of(&no_camera), headline_of(&no_face), "{width}x{height}: both statuses look the same");
        let running = with(UiStatus::Running);
        assert_eq!(count(&running, &headline, TEXT), 0, "{width}x{height}: running shows the emotion, in its colour");
        assert!(count(&running, &headline, emotion_color(3)) > 50, "{width}x{height}: main face's emotion missing");
    }
}
