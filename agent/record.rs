//! `VIGIL_RECORD`: each tick's raw model channels appended to a CSV file, the input of
//! `vigil vectors`, `vigil replay` and the model's training data.

use crate::judge::vector;

/// Appends each tick's raw model channels to a CSV file: `unix_ms` and one column per channel,
/// empty when a channel had no reading. A write that fails is logged and recording stops.
pub struct Recorder {
    file: std::io::BufWriter<std::fs::File>,
    line: String,
}

impl Recorder {
    /// Opens `path` for appending and writes the header if the file is empty.
    pub fn open(path: &std::path::Path) -> std::io::Result<Recorder> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let empty = file.metadata()?.len() == 0;
        let mut recorder = Recorder { file: std::io::BufWriter::new(file), line: String::with_capacity(256) };
        if empty {
            let header = format!("unix_ms,{}\n", vector::CHANNELS.join(","));
            recorder.append(&header)?;
        }
        Ok(recorder)
    }

    fn append(&mut self, text: &str) -> std::io::Result<()> {
        use std::io::Write as _;
        self.file.write_all(text.as_bytes())?;
        self.file.flush()
    }

    /// Appends one tick.
    pub fn write(&mut self, unix_ms: i64, raw: &vector::Raw) -> std::io::Result<()> {
        use std::fmt::Write as _;
        self.line.clear();
        let _ = write!(self.line, "{unix_ms}");
        for value in raw {
            self.line.push(',');
            if let Some(value) = value {
                let _ = write!(self.line, "{value}");
            }
        }
        self.line.push('\n');
        let line = std::mem::take(&mut self.line);
        let written = self.append(&line);
        self.line = line;
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_has_one_header_and_empty_cells_for_missing_channels() {
        let path = std::env::temp_dir().join(format!("vigil-record-test-{}.csv", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut raw: vector::Raw = [None; vector::CHANNELS.len()];
        raw[0] = Some(0.5);
        raw[2] = Some(2.0);
        Recorder::open(&path).unwrap().write(1_000, &raw).unwrap();
        // Reopening appends, without a second header.
        Recorder::open(&path).unwrap().write(2_000, &raw).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let header = format!("unix_ms,{}", vector::CHANNELS.join(","));
        assert_eq!(text, format!("{header}\n1000,0.5,,2,,,,,\n2000,0.5,,2,,,,,\n"));
    }
}
