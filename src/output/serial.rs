//! Opening the emotion log's target: a serial port (8N1), standard output or a file.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

use crate::config::SerialTarget;
use crate::output::line_sink::{EndsWithItsReader, WriterOpener};

/// A write that takes longer than this fails, so a port nobody drains is retried later
/// instead of holding the writer forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// The opener for `target`, or `None` for [`SerialTarget::None`].
pub fn writer_opener(target: &SerialTarget, baud: u32) -> Option<WriterOpener> {
    match target.clone() {
        SerialTarget::None => None,
        SerialTarget::Stdout => {
            Some(Box::new(|| Ok(Box::new(EndsWithItsReader(std::io::stdout())) as Box<dyn Write + Send>)))
        }
        SerialTarget::Port(path) => Some(Box::new(move || {
            let port = serialport::new(path.to_string_lossy(), baud)
                .data_bits(serialport::DataBits::Eight)
                .parity(serialport::Parity::None)
                .stop_bits(serialport::StopBits::One)
                .flow_control(serialport::FlowControl::None)
                .timeout(WRITE_TIMEOUT)
                .open_native()
                .map_err(|err| std::io::Error::other(format!("serial port {}: {err}", path.display())))?;
            Ok(Box::new(port) as Box<dyn Write + Send>)
        })),
        SerialTarget::File(path) => Some(Box::new(move || {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|err| std::io::Error::new(err.kind(), format!("log file {}: {err}", path.display())))?;
            Ok(Box::new(file) as Box<dyn Write + Send>)
        })),
    }
}

/// Human-readable name of the target for log messages.
pub fn target_name(target: &SerialTarget) -> String {
    match target {
        SerialTarget::None => "no log".to_owned(),
        SerialTarget::Stdout => "stdout".to_owned(),
        SerialTarget::Port(path) | SerialTarget::File(path) => path.display().to_string(),
    }
}
