//! `emotion-pi run` end to end: an image folder in, the emotion log out through a real pty
//! pair (the same kernel serial path a USB-serial adapter uses), read back and parsed here.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use serialport::{SerialPort, TTYPort};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn emotion_pi() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_emotion-pi"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

/// Reads JSON lines from the pty master until `done` accepts one or `timeout` passes.
fn read_lines(master: &mut TTYPort, timeout: Duration, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    let mut pending = Vec::new();
    let mut lines = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match master.read(&mut buf) {
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(err) => panic!("reading the pty: {err}"),
        }
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = String::from_utf8(line).expect("log lines are UTF-8");
            let value: Value = serde_json::from_str(text.trim_end()).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            let finished = done(&value);
            lines.push(value);
            if finished {
                return lines;
            }
        }
    }
    panic!("no final line within {timeout:?}; got {lines:?}");
}

/// The child's piped stderr, read on a thread line by line as it comes, so the child never
/// blocks on a full pipe and a test can wait for a message.
struct StderrWatch {
    lines: std::sync::mpsc::Receiver<String>,
    seen: String,
}

impl StderrWatch {
    fn start(child: &mut std::process::Child) -> Self {
        let stderr = child.stderr.take().expect("stderr is piped");
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { lines, seen: String::new() }
    }

    /// Waits until a line containing `needle` has been written, failing the test after `timeout`.
    fn wait_for(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push_str(&(line + "\n")),
                Err(_) => panic!("no {needle:?} on stderr within {timeout:?}: {}", self.seen),
            }
        }
    }

    /// Everything written to stderr; call once the child has exited.
    fn finish(mut self) -> String {
        self.seen.extend(self.lines.iter().map(|line| line + "\n"));
        self.seen
    }
}

#[test]
fn folder_run_writes_the_emotion_log_to_a_serial_port() {
    let frames = tempfile::tempdir().unwrap();
    for i in 0..4 {
        std::fs::copy(fixture("astronaut.png"), frames.path().join(format!("frame{i}.png"))).unwrap();
    }
    // Sorted between the good frames: it must be skipped and counted, not end the run.
    std::fs::write(frames.path().join("frame1_corrupt.jpg"), b"\xff\xd8 truncated").unwrap();
    let config = frames.path().join("config.toml");
    std::fs::write(&config, "[source]\nfps = 0\n\n[serial]\nheartbeat_secs = 0\n").unwrap();

    let (mut master, slave) = TTYPort::pair().expect("a pty pair");
    master.set_timeout(Duration::from_millis(200)).unwrap();
    let port = slave.name().expect("the pty has a name");
    let mut child = emotion_pi()
        .args(["run", "--display", "none", "--config"])
        .arg(&config)
        .arg("--source")
        .arg(frames.path())
        .args(["--serial", &port])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let lines = read_lines(&mut master, Duration::from_secs(120), |v| v["status"] == "stopped");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    drop(slave);

    for line in &lines {
        assert_eq!(line["v"], 1, "{line}");
        assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");
    }
    let faces: Vec<&Value> = lines.iter().filter(|v| v["event"] != "status").collect();
    // The same picture four times: one track, started once, never relabelled or lost.
    assert_eq!(faces.len(), 1, "{lines:?}");
    let new = faces[0];
    assert_eq!(new["event"], "new");
    assert_eq!(new["track"], 0);
    assert_eq!(new["emotion"], "happy");
    assert_eq!(new["frame"], serde_json::json!([512, 512]));
    let probs = new["probs"].as_object().unwrap();
    assert_eq!(probs.len(), 7);
    let sum: f64 = probs.values().map(|p| p.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-3, "{sum}");
    assert_eq!(new["confidence"], new["probs"]["happy"]);
    // The face box lies inside the frame and covers her face (x, y, w, h).
    let b: Vec<i64> = new["box"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert!(b[0] > 100 && b[1] > 0 && b[2] > 80 && b[0] + b[2] < 400 && b[1] + b[3] < 350, "{b:?}");

    let last = lines.last().unwrap();
    assert_eq!((last["frames"].as_u64(), last["corrupt"].as_u64()), (Some(4), Some(1)), "{last}");
    assert_eq!(last["faces"], 1);
}

#[test]
fn bad_config_is_reported_before_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[detect]\nevery = 2\nmin_scor = 0.4\n").unwrap();
    let output = emotion_pi().args(["run", "--config"]).arg(&config).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml") && stderr.contains("min_scor") && stderr.contains("line 3"), "{stderr}");

    std::fs::write(&config, "[detect]\nevery = 0\n").unwrap();
    let output = emotion_pi().args(["run", "--config"]).arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("detect.every"), "{stderr}");
}

#[test]
fn an_led_for_an_emotion_the_model_lacks_is_an_error_before_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("leds.toml");
    std::fs::write(&config, "[leds]\nkind = \"gpio\"\n[leds.pins]\nhapy = 19\n").unwrap();
    let output = emotion_pi()
        .args(["run", "--serial", "none", "--source", "tests/fixtures", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("leds.pins.hapy") && stderr.contains("happy"), "{stderr}");
}

#[test]
fn leds_that_cannot_be_claimed_leave_the_device_running() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("leds.toml");
    // This machine has no Raspberry Pi GPIO.
    std::fs::write(&config, "[leds]\nkind = \"gpio\"\n[leds.pins]\nhappy = 19\n").unwrap();
    let output = emotion_pi()
        .args(["run", "--serial", "stdout", "--source", "tests/fixtures", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("leds: GPIO") && stderr.contains("running without them"), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("\"event\":\"new\""));
}

#[test]
fn missing_folder_source_is_an_error_not_a_wait() {
    let output = emotion_pi()
        .args(["run", "--serial", "none", "--source", "/nonexistent/frames", "--config", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/frames"));
}

#[test]
fn sigterm_stops_a_looping_run_with_a_final_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("astronaut.png"), dir.path().join("a.png")).unwrap();
    let log = dir.path().join("emotions.jsonl");
    let mut child = emotion_pi()
        .args(["run", "--loop", "--fps", "20", "--config", "/dev/null", "--source"])
        .arg(dir.path())
        .arg("--serial")
        .arg(&log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&log).is_ok_and(|t| t.contains("\"new\"")) {
        assert!(Instant::now() < deadline, "no face line in time");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["status"], "stopped", "{text}");
}

/// BT.601 limited-range I420 of an RGB image (chroma averaged over 2x2 blocks), computed
/// from the standard's equations independently of the converter under test.
fn rgb_to_i420(image: &image::RgbImage) -> Vec<u8> {
    let (w, h) = image.dimensions();
    let px = |x: u32, y: u32| image.get_pixel(x, y).0.map(f64::from);
    let mut out: Vec<u8> = Vec::with_capacity((w * h * 3 / 2) as usize);
    for y in 0..h {
        for x in 0..w {
            let [r, g, b] = px(x, y);
            out.push((16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0).round() as u8);
        }
    }
    let chroma = |weights: [f64; 3]| -> Vec<u8> {
        let mut plane = Vec::new();
        for y in (0..h).step_by(2) {
            for x in (0..w).step_by(2) {
                let mut sum = 0.0;
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let [r, g, b] = px(x + dx, y + dy);
                    sum += weights[0] * r + weights[1] * g + weights[2] * b;
                }
                plane.push((128.0 + sum / 4.0 / 255.0).round() as u8);
            }
        }
        plane
    };
    out.extend(chroma([-37.797, -74.203, 112.0]));
    out.extend(chroma([112.0, -93.786, -18.214]));
    out
}

#[test]
fn raw_yuv420_frames_on_stdin_are_classified() {
    let rgb = image::open(fixture("astronaut.png")).unwrap().to_rgb8();
    let frame = rgb_to_i420(&rgb);
    let mut child = emotion_pi()
        .args(["run", "--config", "/dev/null", "--serial", "stdout", "--source", "stdin:yuv420:512x512"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for _ in 0..3 {
            stdin.write_all(&frame).unwrap();
        }
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    let lines: Vec<Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let new = lines.iter().find(|v| v["event"] == "new").unwrap_or_else(|| panic!("no face line: {lines:?}"));
    assert_eq!(new["emotion"], "happy");
    assert_eq!(new["frame"], serde_json::json!([512, 512]));
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "stopped");
    // stdin is a live source: frames the loop had no time for are dropped, never lost silently.
    assert_eq!(last["frames"].as_u64().unwrap() + last["dropped"].as_u64().unwrap(), 3, "{last}");
}

#[test]
fn png_display_draws_the_screens_with_the_happy_bar() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    for i in 0..3 {
        std::fs::copy(fixture("astronaut.png"), frames.join(format!("{i}.png"))).unwrap();
    }
    let screens = dir.path().join("screens");
    let status = emotion_pi()
        .args(["run", "--config", "/dev/null", "--serial", "none", "--fps", "0", "--source"])
        .arg(&frames)
        .arg("--display")
        .arg(format!("png:{}", screens.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let mut written: Vec<PathBuf> = std::fs::read_dir(&screens).unwrap().map(|e| e.unwrap().path()).collect();
    written.sort();
    // One screen may be skipped while the previous one is still being drawn, never more than there were frames.
    assert!((1..=3).contains(&written.len()), "{written:?}");
    let last = image::open(written.last().unwrap()).unwrap().to_rgb8();
    assert_eq!(last.dimensions(), (320, 240));
    // Happy's colour (250, 210, 0) after the display's RGB565 round trip.
    let happy = last.pixels().filter(|p| p.0 == [255, 211, 0]).count();
    assert!(happy > 200, "{happy} happy-coloured pixels");
}

/// The notification socket systemd would own, and the messages it receives.
struct Systemd {
    socket: std::os::unix::net::UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Systemd {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        Self { socket, path, _dir: dir }
    }

    /// `emotion-pi run` as systemd starts it with `WatchdogSec=0.8s`: pings due every 200 ms.
    fn service(&self) -> Command {
        let mut command = emotion_pi();
        command.env("NOTIFY_SOCKET", &self.path).env("WATCHDOG_USEC", "800000").env_remove("WATCHDOG_PID");
        command
    }

    /// The next message with its arrival time, or `None` after `timeout`.
    fn receive(&self, timeout: Duration) -> Option<(Instant, String)> {
        self.socket.set_read_timeout(Some(timeout)).unwrap();
        let mut buffer = [0u8; 512];
        match self.socket.recv(&mut buffer) {
            Ok(n) => Some((Instant::now(), String::from_utf8_lossy(&buffer[..n]).into_owned())),
            Err(err) if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => None,
            Err(err) => panic!("notify socket: {err}"),
        }
    }

    /// The arrival time of the next watchdog ping within `timeout`, passing over status
    /// texts (they come whenever the log's status changes).
    fn next_ping(&self, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let (at, message) = self.receive(deadline.saturating_duration_since(Instant::now()))?;
            if !message.starts_with("STATUS=") {
                assert_eq!(message, "WATCHDOG=1\n");
                return Some(at);
            }
        }
    }

    /// Waits (model loading included) for READY=1; no ping may come before it.
    fn expect_ready(&self) {
        let (_, message) = self.receive(Duration::from_secs(120)).expect("no READY=1");
        assert!(message.lines().any(|l| l == "READY=1"), "first message: {message:?}");
    }
}

#[test]
fn service_reports_ready_then_pings_the_watchdog_while_frames_flow() {
    let systemd = Systemd::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("astronaut.png"), dir.path().join("a.png")).unwrap();
    let mut child = systemd
        .service()
        .args(["run", "--loop", "--fps", "20", "--config", "/dev/null", "--serial", "none", "--source"])
        .arg(dir.path())
        .spawn()
        .unwrap();
    systemd.expect_ready();
    let mut pings = Vec::new();
    while pings.len() < 6 {
        pings.push(systemd.next_ping(Duration::from_secs(5)).expect("watchdog pings stopped"));
    }
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|&g| g >= Duration::from_millis(180)), "pings closer than a quarter timeout: {gaps:?}");
    assert!(gaps.iter().all(|&g| g < Duration::from_millis(800)), "pings later than the timeout: {gaps:?}");

    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let stopping = std::iter::from_fn(|| systemd.receive(Duration::from_secs(10)))
        .find(|(_, m)| m.lines().any(|l| l == "STOPPING=1"));
    assert!(stopping.is_some(), "no STOPPING=1 on SIGTERM");
    assert!(child.wait().unwrap().success());
}

#[test]
fn watchdog_pings_stop_while_the_source_blocks_and_resume_with_frames() {
    let systemd = Systemd::new();
    let frame = rgb_to_i420(&image::RgbImage::from_pixel(64, 48, image::Rgb([90, 120, 150])));
    let mut child = systemd
        .service()
        .args(["run", "--config", "/dev/null", "--serial", "none", "--source", "stdin:yuv420:64x48"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut send_frames = |count: usize| {
        use std::io::Write;
        for _ in 0..count {
            stdin.write_all(&frame).unwrap();
        }
        stdin.flush().unwrap();
    };
    send_frames(5);
    systemd.expect_ready();
    systemd.next_ping(Duration::from_secs(5)).expect("no ping for the first frames");

    // Nothing more on stdin: the capture thread sits in read(), as with a hung camera.
    // At most one ping can still be in flight for a frame processed before the stall.
    std::thread::sleep(Duration::from_millis(500));
    while systemd.next_ping(Duration::from_millis(1)).is_some() {}
    assert_eq!(systemd.next_ping(Duration::from_millis(1600)), None, "pings went on while the source was blocked");

    send_frames(5);
    systemd.next_ping(Duration::from_secs(5)).expect("pings did not resume with frames");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_full_disk_for_the_log_file_loses_no_accepted_line_once_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("astronaut.png"), dir.path().join("a.png")).unwrap();
    let config = dir.path().join("fast_retry.toml");
    std::fs::write(&config, "[source]\nretry_initial_ms = 50\nretry_max_ms = 200\n").unwrap();
    let log = dir.path().join("emotions.jsonl");
    // Every write to /dev/full fails with ENOSPC, as on a full disk.
    std::os::unix::fs::symlink("/dev/full", &log).unwrap();
    let mut child = emotion_pi()
        .args(["run", "--loop", "--fps", "20", "--config"])
        .arg(&config)
        .arg("--source")
        .arg(dir.path().join("a.png"))
        .arg("--serial")
        .arg(&log)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut warned = StderrWatch::start(&mut child);
    // The face is in the first frame, so the first line the log takes is its `new` line:
    // the first failed write shows that line was accepted while the disk is full.
    warned.wait_for("No space left on device", Duration::from_secs(60));
    let fault_ended = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    std::fs::remove_file(&log).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log).is_ok_and(|t| t.contains("\"heartbeat\"")) {
        assert!(Instant::now() < deadline, "log never recovered");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // The face appeared once, during the fault: its line was queued, not dropped.
    let new: Vec<&Value> = lines.iter().filter(|v| v["event"] == "new").collect();
    assert_eq!(new.len(), 1, "{text}");
    assert!(new[0]["time"].as_str().unwrap() <= fault_ended.as_str(), "{text}");
    assert!(lines.iter().all(|v| v.get("log_dropped").is_none_or(|d| d == 0)), "{text}");
    assert_eq!(lines.last().unwrap()["status"], "stopped");
    let stderr = warned.finish();
    assert!(stderr.contains("No space left on device"), "{stderr}");
}

/// A pty pair standing in for a USB-serial adapter, reachable at `link` the way udev's
/// `/dev/serial/by-id/...` names reach the adapter: the link vanishes on unplug.
struct PluggedPort {
    master: TTYPort,
    _slave: std::os::fd::OwnedFd,
}

impl PluggedPort {
    fn plug(link: &Path) -> Self {
        use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
        let (master, slave) = TTYPort::pair().expect("a pty pair");
        let _ = std::fs::remove_file(link);
        std::os::unix::fs::symlink(slave.name().expect("the pty has a name"), link).unwrap();
        // `TTYPort::pair` opens both ends without O_CLOEXEC: a child spawned later would
        // inherit the master and keep the port alive after the unplug. Keep only
        // close-on-exec copies (`try_clone` duplicates with F_DUPFD_CLOEXEC).
        let cloexec = |fd: std::os::fd::RawFd| {
            // SAFETY: `fd` was just released by its TTYPort and is owned by nothing else.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            fd.try_clone().unwrap()
        };
        let master_fd = cloexec(master.into_raw_fd());
        // SAFETY: a fresh descriptor owned by nothing else.
        let mut master = unsafe { TTYPort::from_raw_fd(master_fd.into_raw_fd()) };
        master.set_timeout(Duration::from_millis(200)).unwrap();
        Self { master, _slave: cloexec(slave.into_raw_fd()) }
    }

    /// Closes the pty (writes to it now fail with EIO) and removes the link.
    fn unplug(self, link: &Path) {
        drop(self);
        std::fs::remove_file(link).unwrap();
    }
}

#[test]
fn a_serial_port_that_disappears_loses_no_accepted_line_once_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fast_retry.toml");
    // No heartbeats: the only lines are the status changes and face events asserted below.
    std::fs::write(&config, "[source]\nretry_initial_ms = 50\nretry_max_ms = 200\n[serial]\nheartbeat_secs = 0\n")
        .unwrap();
    let link = dir.path().join("ttyUSB-emotion");
    let mut port = PluggedPort::plug(&link);
    let face = rgb_to_i420(&image::open(fixture("astronaut.png")).unwrap().to_rgb8());
    // A flat grey picture of the same size: no face in it.
    let mut empty = vec![128u8; face.len()];
    empty[..512 * 512].fill(110);
    let mut child = emotion_pi()
        .args(["run", "--source", "stdin:yuv420:512x512", "--config"])
        .arg(&config)
        .arg("--serial")
        .arg(&link)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let warned = StderrWatch::start(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write;
    stdin.write_all(&empty).unwrap();
    let before = read_lines(&mut port.master, Duration::from_secs(120), |v| v["status"] == "no face");
    assert!(before.iter().all(|v| v["event"] == "status"), "{before:?}");

    port.unplug(&link);
    // The face appears while the port is gone: its lines are accepted and must wait.
    for _ in 0..3 {
        stdin.write_all(&face).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(2));
    let fault_ended = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let mut port = PluggedPort::plug(&link);
    // The end of the stream: what was queued during the fault comes out, then `stopped`.
    drop(stdin);
    let mut after = read_lines(&mut port.master, Duration::from_secs(60), |v| v["status"] == "stopped");
    assert!(child.wait().unwrap().success());

    // Delivery is at least once: the line whose flush the unplug interrupted is sent again.
    if after[0]["status"] == "no face" {
        assert_eq!(after[0], before[before.len() - 1], "only the interrupted line repeats: {after:?}");
        after.remove(0);
    }
    let new: Vec<&Value> = after.iter().filter(|v| v["event"] == "new").collect();
    assert_eq!(new.len(), 1, "{after:?}");
    assert_eq!(new[0]["emotion"], "happy");
    assert!(new[0]["time"].as_str().unwrap() < fault_ended.as_str(), "accepted during the fault: {after:?}");
    // Nothing queued during the fault is missing.
    let statuses: Vec<&str> = after.iter().filter_map(|v| v["status"].as_str()).collect();
    assert_eq!(statuses, ["running", "stopped"], "{after:?}");
    assert!(after.iter().all(|v| v.get("log_dropped").is_none_or(|d| d == 0)), "{after:?}");
    let stderr = warned.finish();
    assert!(stderr.contains("ttyUSB-emotion") && stderr.contains("retrying"), "{stderr}");
}

#[test]
fn check_config_refuses_what_run_refuses_before_touching_hardware() {
    let dir = tempfile::tempdir().unwrap();
    let leds = dir.path().join("leds.toml");
    std::fs::write(&leds, "[leds]\nkind = \"gpio\"\n[leds.pins]\nhapy = 19\n").unwrap();
    let missing_log = dir.path().join("no/such/folder/emotions.jsonl");
    // Each case: source, log target, extra flags, and what the error must name.
    let cases = [
        ("/nonexistent/frames", "none", vec![], "/nonexistent/frames"),
        ("tests/fixtures", "none", vec!["--config", leds.to_str().unwrap()], "leds.pins.hapy"),
        ("tests/fixtures", "none", vec!["--models", "/nonexistent/models"], "/nonexistent/models"),
        ("tests/fixtures", missing_log.to_str().unwrap(), vec![], "--serial"),
    ];
    for (source, serial, flags, named) in cases {
        let output = emotion_pi()
            .args(["run", "--check-config", "--source", source, "--serial", serial])
            .args(&flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(named), "{flags:?}: {stderr}");
    }
    // The same settings without the mistakes pass.
    let output =
        emotion_pi().args(["run", "--check-config", "--source", "tests/fixtures", "--serial", "none"]).output();
    assert!(output.unwrap().status.success());
}

#[test]
fn a_flag_error_names_the_flag_not_the_config_file() {
    let output = emotion_pi().args(["run", "--check-config", "--detect-every", "0"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("emotion-pi: --detect-every 0: must be at least 1"), "{stderr}");
    assert!(!stderr.contains("config.toml"), "{stderr}");
    let output = emotion_pi().args(["run", "--check-config", "--display", "ssd1306"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--display") && stderr.contains("ssd1306") && stderr.contains("st7789"), "{stderr}");
}

#[test]
fn a_log_file_in_a_missing_folder_is_an_error_at_start_not_a_silent_loss() {
    let output = emotion_pi()
        .args(["run", "--source", "tests/fixtures", "--serial", "/nonexistent/dir/emotions.jsonl"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--serial /nonexistent/dir/emotions.jsonl") && stderr.contains("does not exist"),
        "{stderr}"
    );
}

#[test]
fn log_lines_never_delivered_are_counted_and_make_the_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("emotions.jsonl");
    // Every write to /dev/full fails with ENOSPC, as on a disk that stays full.
    std::os::unix::fs::symlink("/dev/full", &log).unwrap();
    let output = emotion_pi().args(["run", "--source", "tests/fixtures", "--serial"]).arg(&log).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // Two faces in two pictures, then the final status: at least three lines were lost.
    let lost = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("emotion-pi: ")?.split(" log lines were not delivered").next()?.parse::<u64>().ok()
        })
        .unwrap_or_else(|| panic!("no count of lost lines: {stderr}"));
    assert!(lost >= 3, "{stderr}");
    assert!(stderr.contains(log.to_str().unwrap()), "{stderr}");
}

#[test]
fn stdout_closed_by_its_reader_ends_the_run_cleanly() {
    let mut child = emotion_pi()
        .args(["run", "--source", "tests/fixtures", "--loop", "--fps", "20", "--serial", "stdout"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Like `| head -1`: read one line, then close the pipe.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains("\"v\":1"), "{first}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("still running 60 s after its reader left");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_stream_that_sends_no_frames_is_reported_stalled_not_without_a_face() {
    let mut child = emotion_pi()
        .args(["run", "--source", "stdin:yuv420:64x48", "--serial", "stdout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The pipe stays open and silent, as when the camera program upstream hangs.
    let _silent = child.stdin.take().unwrap();
    let (sender, statuses) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let value: Value = serde_json::from_str(&line).unwrap();
            if let Some(status) = value["status"].as_str() {
                let _ = sender.send(status.to_owned());
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !seen.iter().any(|s| s == "stream stalled") {
        match statuses.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(status) => seen.push(status),
            Err(_) => {
                child.kill().unwrap();
                panic!("no stalled status: {seen:?}");
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn the_service_status_text_follows_the_log_status() {
    let systemd = Systemd::new();
    let mut child = systemd
        .service()
        .args(["run", "--source", "/dev/video-missing", "--serial", "none", "--config", "/dev/null"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    systemd.expect_ready();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut messages = Vec::new();
    while !messages.iter().any(|m: &String| m.contains("STATUS=no camera: ")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match systemd.receive(left) {
            Some((_, message)) => messages.push(message),
            None => {
                child.kill().unwrap();
                panic!("status text never said no camera: {messages:?}");
            }
        }
    }
    assert!(messages.iter().all(|m| !m.contains("STATUS=running")), "{messages:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}
