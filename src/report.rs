//! Printing a command's report: one JSON object for programs, or a table for people.

use std::io::Write;

use serde::Serialize;

/// A command's result that prints both ways.
pub trait Report: Serialize {
    /// The report as text for a terminal.
    fn to_text(&self) -> String;
}

/// Writes `report` to `out`: one line of JSON with `json`, else its text.
pub fn write_report(out: &mut impl Write, report: &impl Report, json: bool) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, report)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", report.to_text())?;
    }
    out.flush()?;
    Ok(())
}

/// [`write_report`] to standard output.
pub fn print_report(report: &impl Report, json: bool) -> anyhow::Result<()> {
    write_report(&mut std::io::stdout().lock(), report, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Tally {
        faces: u32,
    }

    impl Report for Tally {
        fn to_text(&self) -> String {
            format!("{} faces\n", self.faces)
        }
    }

    #[test]
    fn json_is_one_line_and_text_is_the_reports_own() {
        let mut json = Vec::new();
        write_report(&mut json, &Tally { faces: 3 }, true).unwrap();
        assert_eq!(String::from_utf8(json).unwrap(), "{\"faces\":3}\n");
        let mut text = Vec::new();
        write_report(&mut text, &Tally { faces: 3 }, false).unwrap();
        assert_eq!(String::from_utf8(text).unwrap(), "3 faces\n");
    }
}
