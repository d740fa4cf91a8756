//! `emotion-pi-lab panel`: the bytes the SPI panel link sends per screen, counted through
//! the real panel driver and change tracking on a recording bus, for each supported
//! screen size.

use serde::Serialize;

use emotion_pi::analyze::{Analyzer, AnalyzerSettings, ModelPaths};
use emotion_pi::bench::{bench_picture, camera_frame};
use emotion_pi::output::panel::bands::PanelWriter;
use emotion_pi::output::panel::driver::{init_panel, Controller, PanelGeometry};
use emotion_pi::output::panel::interface::SPIDEV_CHUNK;
use emotion_pi::output::ui::{draw_ui, Framebuffer, UiFace, UiState, UiStatus};
use emotion_pi::report::Report;
use emotion_pi_doubles::{FakeBus, FakePin, NoDelay};

/// Screens rendered per panel; the first is sent whole, the rest as changes.
const SCREENS: usize = 60;
/// The SPI clock the report converts bytes to time at: the default of `display.spi_hz`.
const SPI_HZ: f64 = 40e6;

/// SPI traffic of one screen size.
#[derive(Debug, Clone, Serialize)]
pub struct PanelTraffic {
    pub screen: String,
    pub controller: String,
    /// The first screen, sent whole.
    pub full_frame_bytes: usize,
    /// Mean over screens whose camera picture changes every frame (bars and status do not).
    pub bytes_per_frame: f64,
    /// What `bytes_per_frame` takes at the default 40 MHz SPI clock (computed, 8 bits a byte).
    pub spi_ms_at_40mhz: f64,
}

/// The traffic of every supported panel size.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct PanelReport(pub Vec<PanelTraffic>);

impl Report for PanelReport {
    fn to_text(&self) -> String {
        let mut text = format!(
            "{:<10}{:<10}{:>14}{:>16}{:>14}\n",
            "screen", "panel", "first frame B", "per frame B", "SPI ms @40MHz"
        );
        for p in &self.0 {
            text += &format!(
                "{:<10}{:<10}{:>14}{:>16.0}{:>14.2}\n",
                p.screen, p.controller, p.full_frame_bytes, p.bytes_per_frame, p.spi_ms_at_40mhz
            );
        }
        text
    }
}

/// Renders the built-in portrait's faces on each panel size, alternating the frame with
/// its mirror image so the camera picture changes every screen.
pub fn panel_traffic(paths: &ModelPaths) -> anyhow::Result<PanelReport> {
    let analyzer = Analyzer::load(paths, AnalyzerSettings::default())?;
    let (picture, _) = bench_picture(None)?;
    let frame = camera_frame(&picture);
    let faces: Vec<UiFace> = analyzer.analyze(&frame)?.iter().map(UiFace::from).collect();
    let class_names = &analyzer.classifier().metadata().class_names;
    let mirrored = image::imageops::flip_horizontal(&frame.rgb);
    let frames = [&frame.rgb, &mirrored];
    let mut panels = Vec::new();
    for (controller, width, height, rotation) in
        [(Controller::St7789, 240, 240, 0), (Controller::Ili9341, 240, 320, 0), (Controller::Ili9341, 320, 240, 90)]
    {
        let geometry =
            PanelGeometry { controller, width, height, rotation, invert: false, bgr: false, offset_x: 0, offset_y: 0 };
        panels.push(traffic(&geometry, &frames, &faces, class_names)?);
    }
    Ok(PanelReport(panels))
}

fn traffic(
    geometry: &PanelGeometry,
    frames: &[&image::RgbImage],
    faces: &[UiFace],
    class_names: &[String],
) -> anyhow::Result<PanelTraffic> {
    let bus = FakeBus::new(false);
    let driver = init_panel(geometry, bus.spi(), bus.dc_pin(), None::<FakePin>, SPIDEV_CHUNK, &mut NoDelay)?;
    let mut writer = PanelWriter::new(driver);
    let mut screen = Framebuffer::new(u32::from(geometry.width), u32::from(geometry.height));
    let mut sent = Vec::with_capacity(SCREENS);
    for index in 0..SCREENS {
        let state = UiState {
            frame: Some(frames[index % frames.len()]),
            faces,
            class_names,
            fps: 30.0,
            status: UiStatus::Running,
        };
        draw_ui(&mut screen, &state)?;
        bus.take_byte_count();
        writer.push(&screen)?;
        sent.push(bus.take_byte_count());
    }
    let steady = &sent[1..];
    let bytes_per_frame = steady.iter().sum::<usize>() as f64 / steady.len() as f64;
    Ok(PanelTraffic {
        screen: format!("{}x{}", geometry.width, geometry.height),
        controller: format!("{:?}", geometry.controller),
        full_frame_bytes: sent[0],
        bytes_per_frame,
        spi_ms_at_40mhz: bytes_per_frame * 8.0 / SPI_HZ * 1e3,
    })
}
