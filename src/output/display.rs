//! The display output of the live loop: the UI rendered on its own thread, so drawing
//! and SPI transfers never slow the camera. The rendered screen goes to an SPI panel,
//! or to PNG files with `png:DIR` (the simulator).

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::RgbImage;

use crate::output::panel::driver::PanelGeometry;
use crate::output::panel::linux::{open_panel, OpenPanel, PanelWiring};
use crate::output::panel::PanelError;
use crate::output::ui::{draw_ui, Framebuffer, UiFace, UiState, UiStatus};
use crate::track::Track;
use crate::worker::{Counter, WorkerThread};

/// How long a panel that failed to open or write waits before the next attempt.
const PANEL_RETRY: Duration = Duration::from_secs(2);

/// Where screens go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisplayTarget {
    /// Headless.
    None,
    /// Every rendered screen as `DIR/screen_NNNNNN.png` (numbered by camera frame).
    Png(PathBuf),
    /// An SPI panel.
    Panel { wiring: PanelWiring, geometry: PanelGeometry },
}

/// One screen to draw: a copy of the frame and the tracked faces at that moment.
pub struct Screen {
    pub index: u64,
    pub frame: RgbImage,
    pub faces: Vec<UiFace>,
    pub fps: f64,
}

impl Screen {
    /// The screen for frame `index` with `tracks`.
    pub fn new(index: u64, frame: &RgbImage, tracks: &[Track], fps: f64) -> Self {
        let faces = tracks
            .iter()
            .map(|t| UiFace {
                bbox: t.bbox(),
                label: t.label(),
                confidence: t.confidence(),
                probabilities: t.probabilities().to_vec(),
            })
            .collect();
        Self { index, frame: frame.clone(), faces, fps }
    }
}

/// Counters of a [`Display`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct DisplayCounts {
    pub rendered: u64,
    /// Screens skipped: offered while the previous one was still being drawn, or while
    /// a failed panel waits to be reopened.
    pub skipped: u64,
    pub failures: u64,
}

#[derive(Default)]
struct Counters {
    rendered: Counter,
    skipped: Counter,
    failures: Counter,
}

/// Why a screen could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    /// The display folder cannot be created: the device does not start.
    #[error("display folder {dir}: {cause}")]
    Folder { dir: PathBuf, cause: std::io::Error },
    /// A screen could not be saved (disk full, folder removed); the next one is tried.
    #[error("cannot write {path}: {cause}")]
    Png { path: PathBuf, cause: std::io::Error },
    /// The panel failed to open or write; it is reopened after a pause.
    #[error("{name}: {cause}")]
    Panel { name: String, cause: PanelError },
    /// The display thread could not be started.
    #[error("starting the display thread: {0}")]
    Thread(std::io::Error),
}

/// The display thread.
pub struct Display {
    sender: Option<SyncSender<Screen>>,
    counters: Arc<Counters>,
    thread: Option<WorkerThread>,
}

impl Display {
    /// Starts rendering `width`×`height` screens for `target`; `None` for a headless device.
    pub fn start(
        target: &DisplayTarget,
        width: u32,
        height: u32,
        class_names: Vec<String>,
    ) -> Result<Option<Self>, DisplayError> {
        let sink: Box<dyn ScreenSink> = match target {
            DisplayTarget::None => return Ok(None),
            DisplayTarget::Png(dir) => {
                std::fs::create_dir_all(dir).map_err(|cause| DisplayError::Folder { dir: dir.clone(), cause })?;
                Box::new(PngSink::new(dir.clone(), PNG_SCREENS_KEPT))
            }
            DisplayTarget::Panel { wiring, geometry } => {
                let (wiring, geometry) = (wiring.clone(), *geometry);
                Box::new(PanelSink {
                    name: format!("{:?} on {}", geometry.controller, wiring.spi.display()),
                    open: Box::new(move || open_panel(&wiring, &geometry)),
                    panel: None,
                    next_attempt: None,
                    retry: PANEL_RETRY,
                })
            }
        };
        Self::spawn(sink, width, height, class_names).map(Some).map_err(DisplayError::Thread)
    }

    fn spawn(sink: Box<dyn ScreenSink>, width: u32, height: u32, class_names: Vec<String>) -> std::io::Result<Self> {
        // One screen in flight: a newer one is worth more than a queue of old ones.
        let (sender, receiver) = sync_channel(1);
        let counters = Arc::new(Counters::default());
        let renderer = Renderer { width, height, class_names, counters: counters.clone(), sink };
        let thread = WorkerThread::spawn("display", move || renderer.run(receiver))?;
        Ok(Self { sender: Some(sender), counters, thread: Some(thread) })
    }

    /// Hands `screen` to the display thread, or skips it if the thread is busy.
    pub fn offer(&self, screen: Screen) {
        let Some(sender) = &self.sender else { return };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = sender.try_send(screen) {
            self.counters.skipped.add();
        }
    }

    /// The counters so far.
    pub fn counts(&self) -> DisplayCounts {
        DisplayCounts {
            rendered: self.counters.rendered.get(),
            skipped: self.counters.skipped.get(),
            failures: self.counters.failures.get(),
        }
    }

    /// Lets the thread draw what it holds, waiting up to `grace`.
    pub fn close(mut self, grace: Duration) -> DisplayCounts {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            thread.join(grace);
        }
        self.counts()
    }
}

/// What became of a screen handed to a [`ScreenSink`].
enum Shown {
    Drawn,
    /// Not sent: the panel failed and waits to be reopened. Only the attempts count as
    /// failures, so the rate-limited warnings carry the panel's real error.
    Waiting,
}

/// Where a rendered screen goes.
trait ScreenSink: Send {
    /// Shows `screen`, the UI for camera frame `index`.
    fn show(&mut self, screen: &Framebuffer, index: u64) -> Result<Shown, DisplayError>;
}

/// Screens a `png:DIR` display keeps: the newest ones, so that a long run does not fill
/// the disk (at 30 frames per second and `display.every = 1`, about half a minute).
pub const PNG_SCREENS_KEPT: usize = 1_000;

/// Writes each screen as a PNG file and removes the oldest screen this run wrote once it
/// has written more than `keep`; files it did not write are never removed.
struct PngSink {
    dir: PathBuf,
    keep: usize,
    written: std::collections::VecDeque<PathBuf>,
}

impl PngSink {
    fn new(dir: PathBuf, keep: usize) -> Self {
        Self { dir, keep: keep.max(1), written: std::collections::VecDeque::new() }
    }
}

impl ScreenSink for PngSink {
    fn show(&mut self, screen: &Framebuffer, index: u64) -> Result<Shown, DisplayError> {
        let path = self.dir.join(format!("screen_{index:06}.png"));
        // Through a temporary file: a full disk leaves no empty or partial screens.
        let image = screen.to_rgb_image();
        crate::fs_safety::write_atomically(&path, |file| {
            image.write_to(file, image::ImageFormat::Png).map_err(std::io::Error::other)
        })
        .map_err(|cause| DisplayError::Png { path: path.clone(), cause })?;
        self.written.push_back(path);
        while self.written.len() > self.keep {
            let Some(oldest) = self.written.pop_front() else { break };
            match std::fs::remove_file(&oldest) {
                Err(cause) if cause.kind() != std::io::ErrorKind::NotFound => {
                    return Err(DisplayError::Png { path: oldest, cause })
                }
                _ => {}
            }
        }
        Ok(Shown::Drawn)
    }
}

/// A panel opened on first use and reopened (reset and initialised again) after an
/// error, at most every `retry`.
struct PanelSink {
    name: String,
    open: Box<dyn FnMut() -> Result<OpenPanel, PanelError> + Send>,
    panel: Option<OpenPanel>,
    next_attempt: Option<Instant>,
    retry: Duration,
}

impl ScreenSink for PanelSink {
    fn show(&mut self, screen: &Framebuffer, _index: u64) -> Result<Shown, DisplayError> {
        let panel = match &mut self.panel {
            Some(panel) => panel,
            None => {
                if self.next_attempt.is_some_and(|at| Instant::now() < at) {
                    return Ok(Shown::Waiting);
                }
                self.next_attempt = Some(Instant::now() + self.retry);
                let opened = (self.open)().map_err(|cause| DisplayError::Panel { name: self.name.clone(), cause })?;
                log::info!("display: {} ready", self.name);
                self.panel.insert(opened)
            }
        };
        if let Err(cause) = panel.writer.push(screen) {
            self.panel = None;
            return Err(DisplayError::Panel { name: self.name.clone(), cause });
        }
        Ok(Shown::Drawn)
    }
}

struct Renderer {
    width: u32,
    height: u32,
    class_names: Vec<String>,
    counters: Arc<Counters>,
    sink: Box<dyn ScreenSink>,
}

impl Renderer {
    fn run(mut self, receiver: Receiver<Screen>) {
        let mut framebuffer = Framebuffer::new(self.width, self.height);
        while let Ok(screen) = receiver.recv() {
            let status = if screen.faces.is_empty() { UiStatus::NoFace } else { UiStatus::Running };
            let state = UiState {
                frame: Some(&screen.frame),
                faces: &screen.faces,
                class_names: &self.class_names,
                fps: screen.fps,
                status,
            };
            // The framebuffer's drawing cannot fail (its error type is Infallible).
            let Ok(()) = draw_ui(&mut framebuffer, &state);
            match self.sink.show(&framebuffer, screen.index) {
                Ok(Shown::Drawn) => {
                    self.counters.rendered.add();
                }
                Ok(Shown::Waiting) => {
                    self.counters.skipped.add();
                }
                Err(err) => {
                    self.counters.failures.add_and_warn(|n| format!("display: {err} ({n} failures so far)"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::panel::bands::PanelWriter;
    use crate::output::panel::driver::{init_panel, Controller};
    use crate::output::panel::interface::SPIDEV_CHUNK;
    use emotion_pi_doubles::{FakeBus, FakePin, NoDelay};

    const SLPOUT: u8 = 0x11;
    const RAMWR: u8 = 0x2C;

    fn blank_screen(index: u64) -> Screen {
        Screen {
            index,
            frame: RgbImage::from_pixel(64, 48, image::Rgb([(index * 40 % 256) as u8, 90, 30])),
            faces: vec![],
            fps: 10.0,
        }
    }

    /// Offers screens until `done` holds for the counts, or panics after 10 s.
    fn offer_until(display: &Display, mut index: u64, done: impl Fn(DisplayCounts) -> bool) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(display.counts()) {
            assert!(Instant::now() < deadline, "display stuck at {:?}", display.counts());
            display.offer(blank_screen(index));
            index += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
        index
    }

    #[test]
    fn png_screens_keep_the_newest_ones_and_never_remove_other_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mine.png"), b"the user's").unwrap();
        std::fs::write(dir.path().join("screen_000001.png"), b"an earlier run's").unwrap();
        let mut sink = PngSink::new(dir.path().to_owned(), 3);
        let screen = Framebuffer::new(16, 16);
        for index in 10..15 {
            assert!(matches!(sink.show(&screen, index).unwrap(), Shown::Drawn));
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["mine.png", "screen_000001.png", "screen_000012.png", "screen_000013.png", "screen_000014.png"]
        );
        let kept = image::open(dir.path().join("screen_000014.png")).unwrap();
        assert_eq!((kept.width(), kept.height()), (16, 16));
    }

    #[test]
    fn a_panel_that_fails_is_reinitialised_and_screens_flow_again() {
        let bus = FakeBus::new(true);
        let wire = bus.clone();
        let geometry = PanelGeometry {
            controller: Controller::St7789,
            width: 240,
            height: 240,
            rotation: 0,
            invert: true,
            bgr: false,
            offset_x: 0,
            offset_y: 0,
        };
        let sink = PanelSink {
            name: "fake panel".into(),
            open: Box::new(move || {
                let driver =
                    init_panel(&geometry, wire.spi(), wire.dc_pin(), None::<FakePin>, SPIDEV_CHUNK, &mut NoDelay)?;
                Ok(OpenPanel::without_backlight(PanelWriter::new(driver)))
            }),
            panel: None,
            next_attempt: None,
            retry: Duration::from_millis(50),
        };
        let names = vec!["happy".to_owned()];
        let display = Display::spawn(Box::new(sink), 240, 240, names).unwrap();
        let index = offer_until(&display, 0, |c| c.rendered >= 1);
        assert!(bus.take_commands().iter().any(|c| c.code == SLPOUT));

        bus.set_failing(true);
        let index = offer_until(&display, index, |c| c.failures >= 3);
        let rendered = display.counts().rendered;

        bus.set_failing(false);
        bus.take_commands();
        offer_until(&display, index, |c| c.rendered > rendered);
        let codes: Vec<u8> = bus.take_commands().iter().map(|c| c.code).collect();
        let init = codes.iter().position(|&c| c == SLPOUT).expect("panel initialised again");
        assert!(codes[init..].contains(&RAMWR), "{codes:02x?}");
        let counts = display.close(Duration::from_secs(2));
        assert!(counts.failures >= 3 && counts.rendered > rendered, "{counts:?}");
    }
}
