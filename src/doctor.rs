//! `emotion-pi doctor`: what the device can see and use, each problem with its fix.
//!
//! Everything is read from a [`Host`] (the `/dev` folder, the group database, the
//! process's credentials), so the checks run against a made-up machine in tests.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::analyze::{Analyzer, AnalyzerSettings, ModelPaths};
use crate::capture::convert::PixelFormat;
use crate::capture::source::SourceSpec;
use crate::capture::v4l2::choose_format;
use crate::config::{RunSettings, SerialTarget};

/// The groups a device's user needs, and what for.
const DEVICE_GROUPS: [(&str, &str); 4] =
    [("video", "camera"), ("spi", "SPI display"), ("gpio", "GPIO LEDs"), ("dialout", "serial log")];

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Not needed for the configured setup, or likely to cause trouble later.
    Warning,
    /// The configured setup will not work.
    Problem,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub verdict: Verdict,
    /// What was looked at: `camera /dev/video0`, `group spi`, `models`.
    pub subject: String,
    pub detail: String,
    /// What to do about it, for warnings and problems.
    pub fix: Option<String>,
}

impl Finding {
    fn ok(subject: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { verdict: Verdict::Ok, subject: subject.into(), detail: detail.into(), fix: None }
    }

    fn bad(verdict: Verdict, subject: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { verdict, subject: subject.into(), detail: detail.into(), fix: Some(fix.into()) }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match self.verdict {
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Problem => "PROBLEM",
        };
        write!(f, "[{mark:^7}] {}: {}", self.subject, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n          fix: {fix}")?;
        }
        Ok(())
    }
}

/// The machine as the checks see it.
#[derive(Debug, Clone)]
pub struct Host {
    /// The device folder, `/dev`.
    pub dev: PathBuf,
    /// The group database, `/etc/group`.
    pub group_file: PathBuf,
    /// This process's user id and groups.
    pub uid: u32,
    pub gids: Vec<u32>,
    /// The user name for fix hints.
    pub user: String,
}

impl Host {
    /// This machine and this process (credentials from `/proc/self/status`).
    pub fn this_machine() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let (uid, gids) = parse_credentials(&status);
        let user = std::env::var("USER").unwrap_or_else(|_| "emotion-pi".to_owned());
        Self { dev: PathBuf::from("/dev"), group_file: PathBuf::from("/etc/group"), uid, gids, user }
    }

    /// Device nodes in the device folder whose names start with `prefix`, sorted.
    fn devices(&self, prefix: &str) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&self.dev)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
            .map(|entry| entry.path())
            .collect();
        found.sort();
        found
    }

    fn groups(&self) -> Vec<Group> {
        std::fs::read_to_string(&self.group_file).map(|text| parse_groups(&text)).unwrap_or_default()
    }

    /// A finding on whether this process can read and write the device `path`.
    fn access(&self, subject: String, path: &Path, groups: &[Group], denied: Verdict) -> Finding {
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(err) => {
                return Finding::bad(denied, subject, format!("cannot inspect: {err}"), "check the device node")
            }
        };
        let mode = meta.mode();
        let allowed = self.uid == 0
            || if meta.uid() == self.uid {
                mode & 0o600 == 0o600
            } else if self.gids.contains(&meta.gid()) {
                mode & 0o060 == 0o060
            } else {
                mode & 0o006 == 0o006
            };
        let linked = std::fs::canonicalize(path).ok().filter(|target| target != path);
        let shown = linked.map_or_else(String::new, |target| format!(" (→ {})", target.display()));
        if allowed {
            return Finding::ok(subject, format!("readable and writable{shown}"));
        }
        let group =
            groups.iter().find(|g| g.gid == meta.gid()).map_or_else(|| meta.gid().to_string(), |g| g.name.clone());
        Finding::bad(
            denied,
            subject,
            format!("no read/write access{shown}: group {group}, mode {:o}", mode & 0o777),
            format!("sudo adduser {} {group}, then log in again", self.user),
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Group {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// `name:password:gid:member,member` lines.
fn parse_groups(text: &str) -> Vec<Group> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?.to_owned();
            let gid = fields.nth(1)?.trim().parse().ok()?;
            let members = fields.next().unwrap_or("").split(',').filter(|m| !m.is_empty()).map(str::to_owned).collect();
            Some(Group { name, gid, members })
        })
        .collect()
}

/// The real user id and the supplementary groups from `/proc/PID/status`.
fn parse_credentials(status: &str) -> (u32, Vec<u32>) {
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).unwrap_or("");
    let uid = field("Uid:").split_whitespace().next().and_then(|u| u.parse().ok()).unwrap_or(u32::MAX);
    let gids = field("Groups:").split_whitespace().filter_map(|g| g.parse().ok()).collect();
    (uid, gids)
}

/// Runs every check for `settings` (the config in effect) and `models`.
pub fn examine(host: &Host, settings: &RunSettings, models: &ModelPaths) -> Vec<Finding> {
    let groups = host.groups();
    let mut findings = Vec::new();
    findings.extend(check_cameras(host, &settings.source, &groups));
    findings.extend(check_nodes(host, "spidev", "SPI", "sudo raspi-config nonint do_spi 0, then reboot", &groups));
    findings.extend(check_nodes(
        host,
        "gpiochip",
        "GPIO",
        "a kernel with the GPIO character device (any Raspberry Pi OS)",
        &groups,
    ));
    findings.extend(check_serial(host, &settings.serial, &groups));
    findings.extend(check_groups(host, &groups));
    findings.push(check_models(models, settings));
    findings
}

fn check_cameras(host: &Host, source: &SourceSpec, groups: &[Group]) -> Vec<Finding> {
    let configured = match source {
        SourceSpec::V4l2 { device, .. } => Some(device.clone()),
        _ => None,
    };
    let cameras = host.devices("video");
    let mut findings = Vec::new();
    if cameras.is_empty() {
        let verdict = if configured.is_some() { Verdict::Problem } else { Verdict::Warning };
        findings.push(Finding::bad(
            verdict,
            "cameras",
            format!("no {}/video* device", host.dev.display()),
            "plug in a USB webcam; for a Pi Camera Module use rpicam-vid into --source stdin:yuv420:WxH (README \"Put it on a Pi\")",
        ));
    }
    for camera in &cameras {
        let subject = format!("camera {}", camera.display());
        let access = host.access(subject.clone(), camera, groups, Verdict::Problem);
        if access.verdict != Verdict::Ok {
            findings.push(access);
            continue;
        }
        findings.push(match camera_formats(camera) {
            Ok(offered) => {
                let names: Vec<&str> = offered.iter().map(|(name, _)| name.as_str()).collect();
                let usable: Vec<PixelFormat> = offered.iter().filter_map(|(_, f)| *f).collect();
                match choose_format(&usable, None) {
                    Some(chosen) => Finding::ok(subject, format!("offers {}; would use {chosen:?}", names.join(", "))),
                    None => Finding::bad(
                        Verdict::Warning,
                        subject,
                        if names.is_empty() {
                            "offers no capture formats".to_owned()
                        } else {
                            format!("offers {}, none of which emotion-pi reads", names.join(", "))
                        },
                        "not a camera node emotion-pi can use (a Pi Camera Module's raw or ISP node: use rpicam-vid, see README)",
                    ),
                }
            }
            Err(err) => Finding::bad(Verdict::Warning, subject, format!("cannot list formats: {err}"), "not a V4L2 capture device"),
        });
    }
    if let Some(device) = configured {
        findings.extend(missing_configured_device(
            "source",
            &device,
            "camera",
            "set source.uri in /etc/emotion-pi/config.toml to one of the cameras above",
        ));
    }
    findings
}

/// A problem if the device the config names does not exist; the program waits for it.
fn missing_configured_device(key: &str, device: &Path, what: &str, fix: &str) -> Option<Finding> {
    (!device.exists()).then(|| {
        Finding::bad(
            Verdict::Problem,
            format!("{key} {}", device.display()),
            format!("the configured {what} does not exist (the service waits and retries)"),
            fix,
        )
    })
}

/// The formats a V4L2 device offers, with the ones emotion-pi can convert.
fn camera_formats(device: &Path) -> std::io::Result<Vec<(String, Option<PixelFormat>)>> {
    use v4l::video::Capture;
    let dev = v4l::Device::with_path(device)?;
    Ok(dev
        .enum_formats()?
        .iter()
        .map(|d| (fourcc_name(d.fourcc.repr), PixelFormat::from_fourcc(&d.fourcc.repr)))
        .collect())
}

/// A pixel format code as text: its characters without the padding spaces (`Y10 ` is
/// `Y10`), `-BE` for the big-endian variants (the high bit of the last byte), and hex when
/// not printable. The `v4l` crate's own text is empty for the big-endian codes, which left
/// blanks in the list of a camera offering them (vivid does).
fn fourcc_name(repr: [u8; 4]) -> String {
    let mut code = repr;
    code[3] &= 0x7f;
    if !code.iter().all(|byte| byte.is_ascii_graphic() || *byte == b' ') {
        return format!("0x{:08x}", u32::from_le_bytes(repr));
    }
    let name = String::from_utf8_lossy(&code).trim_end().to_owned();
    if repr[3] & 0x80 != 0 {
        format!("{name}-BE")
    } else {
        name
    }
}

fn check_nodes(host: &Host, prefix: &str, what: &str, enable: &str, groups: &[Group]) -> Vec<Finding> {
    let nodes = host.devices(prefix);
    if nodes.is_empty() {
        return vec![Finding::bad(
            Verdict::Warning,
            what,
            format!("no {}/{prefix}* device", host.dev.display()),
            format!("needed only for the {what} outputs: {enable}"),
        )];
    }
    nodes.iter().map(|node| host.access(format!("{what} {}", node.display()), node, groups, Verdict::Warning)).collect()
}

fn check_serial(host: &Host, target: &SerialTarget, groups: &[Group]) -> Vec<Finding> {
    let mut findings = Vec::new();
    // ttyS* is left out: a PC has dozens without hardware, and the Pi's mini UART is reached as serial0.
    for prefix in ["serial", "ttyAMA", "ttyUSB", "ttyACM"] {
        for port in host.devices(prefix) {
            findings.push(host.access(format!("serial {}", port.display()), &port, groups, Verdict::Warning));
        }
    }
    if let SerialTarget::Port(port) = target {
        findings.extend(missing_configured_device(
            "log port",
            port,
            "serial port",
            "enable the UART (sudo raspi-config nonint do_serial_hw 0; do_serial_cons 1; reboot) or set serial.port",
        ));
    }
    findings
}

fn check_groups(host: &Host, groups: &[Group]) -> Vec<Finding> {
    DEVICE_GROUPS
        .iter()
        .map(|(name, purpose)| {
            let subject = format!("group {name}");
            match groups.iter().find(|g| g.name == *name) {
                None => Finding::bad(
                    Verdict::Warning,
                    subject,
                    format!("does not exist on this system ({purpose})"),
                    "fine off a Raspberry Pi; on Raspberry Pi OS it exists",
                ),
                Some(group)
                    if host.uid == 0 || host.gids.contains(&group.gid) || group.members.contains(&host.user) =>
                {
                    Finding::ok(subject, format!("member ({purpose})"))
                }
                Some(_) => Finding::bad(
                    Verdict::Warning,
                    subject,
                    format!("{} is not a member ({purpose})", host.user),
                    format!("sudo adduser {} {name}, then log in again", host.user),
                ),
            }
        })
        .collect()
}

fn check_models(models: &ModelPaths, settings: &RunSettings) -> Finding {
    let started = Instant::now();
    let analyzer_settings =
        AnalyzerSettings { crop: settings.crop, classifier: settings.classifier, ..AnalyzerSettings::default() };
    match Analyzer::load(models, analyzer_settings) {
        Ok(analyzer) => Finding::ok(
            "models",
            format!(
                "{} and {} loaded and optimised in {} ms ({} classes)",
                models.detector.display(),
                models.classifier.display(),
                started.elapsed().as_millis(),
                analyzer.classifier().metadata().class_names.len()
            ),
        ),
        Err(err) => Finding::bad(
            Verdict::Problem,
            "models",
            err.to_string(),
            "reinstall the package (/usr/share/emotion-pi/models) or pass --models DIR",
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::config::Config;
    use crate::detect::DetectorRange;

    /// A made-up Pi: files stand in for device nodes (they are owned by the user running
    /// the tests, whose group the fake group file calls `video`).
    struct FakePi {
        dir: tempfile::TempDir,
        host: Host,
    }

    impl FakePi {
        fn new(nodes: &[(&str, u32)], gids: Vec<u32>) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let dev = dir.path().join("dev");
            std::fs::create_dir(&dev).unwrap();
            for (name, mode) in nodes {
                let path = dev.join(name);
                std::fs::write(&path, b"").unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
            }
            let owner = std::fs::metadata(&dev).unwrap();
            let group_file = dir.path().join("group");
            let groups = format!("video:x:{}:\nspi:x:999:\ndialout:x:20:pi\n", owner.gid());
            std::fs::write(&group_file, groups).unwrap();
            // Not the owner of the files, so access goes by group and mode.
            let uid = owner.uid().wrapping_add(1).max(1);
            let host = Host { dev, group_file, uid, gids, user: "pi".into() };
            Self { dir, host }
        }

        fn settings(&self, source: &str, serial: &str) -> RunSettings {
            let mut config = Config::default();
            config.source.uri = format!("v4l2:{}", self.host.dev.join(source).display());
            let mut settings = config.settings(&self.dir.path().join("config.toml")).unwrap();
            // A port outside /dev would be read as a log file.
            settings.serial = SerialTarget::Port(self.host.dev.join(serial));
            settings
        }

        fn examine(&self, settings: &RunSettings) -> Vec<Finding> {
            examine(
                &self.host,
                settings,
                &ModelPaths::in_dir(&self.dir.path().join("no-models"), DetectorRange::default()),
            )
        }
    }

    /// The finding whose subject starts with `kind` and ends with `name`.
    fn find<'a>(findings: &'a [Finding], kind: &str, name: &str) -> &'a Finding {
        findings
            .iter()
            .find(|f| f.subject.starts_with(kind) && f.subject.ends_with(name))
            .unwrap_or_else(|| panic!("no finding for {kind} {name}: {findings:#?}"))
    }

    #[test]
    fn a_device_outside_the_users_groups_gets_the_adduser_fix() {
        let pi = FakePi::new(&[("video0", 0o660), ("ttyAMA0", 0o660)], vec![]);
        let findings = pi.examine(&pi.settings("video0", "ttyAMA0"));
        let camera = find(&findings, "camera", "video0");
        assert_eq!(camera.verdict, Verdict::Problem);
        assert!(camera.detail.contains("group video, mode 660"), "{camera}");
        assert_eq!(camera.fix.as_deref(), Some("sudo adduser pi video, then log in again"));
        assert_eq!(find(&findings, "serial", "ttyAMA0").verdict, Verdict::Warning);
    }

    #[test]
    fn a_node_that_is_not_a_camera_is_named_and_the_rest_reported() {
        let mut pi = FakePi::new(&[("video0", 0o660), ("spidev0.0", 0o660)], vec![]);
        pi.host.gids = vec![std::fs::metadata(&pi.host.dev).unwrap().gid()];
        let findings = pi.examine(&pi.settings("video0", "serial0"));
        let camera = find(&findings, "camera", "video0");
        assert_eq!(camera.verdict, Verdict::Warning);
        assert_eq!(camera.detail, "offers no capture formats");
        assert_eq!(find(&findings, "SPI", "spidev0.0").verdict, Verdict::Ok);
        let gpio = find(&findings, "GPIO", "GPIO");
        assert_eq!(gpio.verdict, Verdict::Warning);
        let port = find(&findings, "log port", "serial0");
        assert_eq!(port.verdict, Verdict::Problem);
        assert!(port.fix.as_deref().unwrap_or("").contains("do_serial_hw 0"));
        let models = find(&findings, "models", "models");
        assert_eq!(models.verdict, Verdict::Problem);
        assert!(models.detail.contains("no-models"), "{models}");
    }

    #[test]
    fn group_membership_by_gid_or_by_name_and_missing_groups() {
        let pi = FakePi::new(&[], vec![]);
        let findings = pi.examine(&pi.settings("video0", "serial0"));
        assert_eq!(find(&findings, "group", "video").verdict, Verdict::Warning);
        assert_eq!(find(&findings, "group", "spi").fix.as_deref(), Some("sudo adduser pi spi, then log in again"));
        assert_eq!(find(&findings, "group", "dialout").verdict, Verdict::Ok);
        assert!(find(&findings, "group", "gpio").detail.starts_with("does not exist"));
        let cameras = find(&findings, "cameras", "cameras");
        assert_eq!(cameras.verdict, Verdict::Problem);
    }

    #[test]
    fn group_lines_parse_with_and_without_members() {
        let groups = parse_groups("video:x:44:pi,emotion-pi\nspi:x:999:\nbroken line\n");
        assert_eq!(
            groups,
            vec![
                Group { name: "video".into(), gid: 44, members: vec!["pi".into(), "emotion-pi".into()] },
                Group { name: "spi".into(), gid: 999, members: vec![] },
            ]
        );
    }

    #[test]
    fn format_codes_read_without_padding_and_name_big_endian_variants() {
        assert_eq!(fourcc_name(*b"YUYV"), "YUYV");
        assert_eq!(fourcc_name(*b"Y10 "), "Y10");
        // V4L2_PIX_FMT_Y16_BE: 'Y' '1' '6' ' ' with bit 31 set.
        assert_eq!(fourcc_name([b'Y', b'1', b'6', b' ' | 0x80]), "Y16-BE");
        assert_eq!(fourcc_name([0, 1, 2, 3]), "0x03020100");
    }

    #[test]
    fn credentials_come_from_the_uid_and_groups_lines() {
        let status = "Name:\tx\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nGroups:\t20 44 1000 \n";
        assert_eq!(parse_credentials(status), (1000, vec![20, 44, 1000]));
    }
}
