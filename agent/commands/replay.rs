//! Offline runs over recorded files: the tables behind `vigil vectors` and `vigil replay`.
//!
//! Two input formats, told apart by their header:
//!
//! - a recording of `VIGIL_RECORD`: `unix_ms` and one column per [`CHANNELS`] entry, empty
//!   where a channel had no reading;
//! - a univariate series in the Numenta Anomaly Benchmark's format: `timestamp,value`, with
//!   timestamps `YYYY-MM-DD HH:MM:SS`. The value goes into the first channel, `memory_ratio`;
//!   the other channels have no reading, as on a tick where their sources are missing.
//!
//! Both go through the agent's own path: [`crate::judge::vector::Vectoriser`], the model, and the
//! [`crate::judge::anomaly::Detector`]'s calibration. Parsing is pure (text in, rows out); `main` reads
//! and writes the files.

use std::io::Write;

use crate::judge::anomaly::{Calibration, Scorer, Scoring};
use crate::judge::vector::{CHANNELS, INPUT_WIDTH, Raw, Vectoriser, WINDOW};

/// NAB's probationary period: the first 15 % of a file, at most 750 records.
pub const PROBATION_SHARE: f64 = 0.15;
pub const PROBATION_MAX: usize = 750;

/// Which kind of file a table came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `unix_ms` and the raw channels, as `VIGIL_RECORD` writes them.
    Recording,
    /// `timestamp,value`, as in the Numenta Anomaly Benchmark.
    Nab,
}

/// One row of an input file.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The first column as written.
    pub timestamp: String,
    /// The timestamp in microseconds since the Unix epoch (UTC).
    pub at_us: i64,
    /// The first channel's column as written (the value of a NAB file); may be empty.
    pub value: String,
    pub raw: Raw,
}

/// A parsed input file.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub format: Format,
    pub rows: Vec<Row>,
}

/// Why an input file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("{0}")]
    File(String),
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the model failed to run: {0}")]
    Model(String),
    #[error("cannot write the output: {0}")]
    Write(#[from] std::io::Error),
}

fn at_line(line: usize, reason: impl Into<String>) -> DataError {
    DataError::Line { line, reason: reason.into() }
}

/// Parses a recording or a NAB file.
pub fn parse(text: &str) -> Result<Table, DataError> {
    let mut lines = text.lines().enumerate().map(|(i, line)| (i + 1, line.trim_end_matches('\r')));
    let Some((_, header)) = lines.find(|(_, line)| !line.trim().is_empty()) else {
        return Err(DataError::File("the file is empty".into()));
    };
    let recording_header = format!("unix_ms,{}", CHANNELS.join(","));
    let format = match header.trim() {
        "timestamp,value" => Format::Nab,
        h if h == recording_header => Format::Recording,
        other => {
            return Err(at_line(
                1,
                format!(
                    "expected the header {recording_header} (VIGIL_RECORD) or timestamp,value (NAB), found {:?}",
                    truncate(other)
                ),
            ));
        }
    };
    let mut rows = Vec::new();
    for (number, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let row = match format {
            Format::Recording => recording_row(line),
            Format::Nab => nab_row(line),
        };
        rows.push(row.map_err(|reason| at_line(number, reason))?);
    }
    if rows.is_empty() {
        return Err(DataError::File("the file has a header but no rows".into()));
    }
    Ok(Table { format, rows })
}

fn truncate(text: &str) -> String {
    text.chars().take(120).collect()
}

fn recording_row(line: &str) -> Result<Row, String> {
    let fields: Vec<&str> = line.split(',').collect();
    if fields.len() != 1 + CHANNELS.len() {
        return Err(format!("expected {} columns, found {}", 1 + CHANNELS.len(), fields.len()));
    }
    let unix_ms: i64 = fields[0]
        .trim()
        .parse()
        .map_err(|_| format!("unix_ms {:?} is not a whole number", truncate(fields[0])))?;
    let mut raw: Raw = [None; CHANNELS.len()];
    for (c, field) in fields[1..].iter().enumerate() {
        let field = field.trim();
        if !field.is_empty() {
            let value = field
                .parse()
                .map_err(|_| format!("{} {:?} is not a number", CHANNELS[c], truncate(field)))?;
            raw[c] = Some(value);
        }
    }
    Ok(Row {
        timestamp: fields[0].trim().to_string(),
        at_us: unix_ms.saturating_mul(1000),
        value: fields[1].trim().to_string(),
        raw,
    })
}

fn nab_row(line: &str) -> Result<Row, String> {
    let Some((timestamp, value)) = line.split_once(',') else {
        return Err("expected 2 columns, found 1".into());
    };
    if value.contains(',') {
        return Err(format!("expected 2 columns, found {}", line.split(',').count()));
    }
    let at_us = parse_timestamp(timestamp.trim())
        .ok_or_else(|| format!("timestamp {:?} is not YYYY-MM-DD HH:MM:SS", truncate(timestamp)))?;
    let number: f64 =
        value.trim().parse().map_err(|_| format!("value {:?} is not a number", truncate(value)))?;
    let mut raw: Raw = [None; CHANNELS.len()];
    raw[0] = Some(number);
    Ok(Row { timestamp: timestamp.trim().to_string(), at_us, value: value.trim().to_string(), raw })
}

/// `YYYY-MM-DD HH:MM:SS`, optionally with a fraction of a second, as microseconds since the
/// Unix epoch (read as UTC). The metadata service's RFC 3339 parser reads it once the zone is
/// spelled out; like that parser, it refuses instants before the epoch.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    let mut stamp = String::with_capacity(text.len() + 1);
    stamp.push_str(text);
    stamp.push('Z');
    crate::time::parse_rfc3339_nanos(&stamp).map(|nanos| nanos / 1000)
}

/// The labelled windows of one file in NAB's `combined_windows.json` (`{"<category>/<file>":
/// [[start, end], ...]}`), as microsecond ranges, both ends included.
pub fn windows(json: &str, key: &str) -> Result<Vec<(i64, i64)>, DataError> {
    let document: serde_json::Value =
        serde_json::from_str(json).map_err(|error| DataError::File(format!("not JSON: {error}")))?;
    let entry = document
        .get(key)
        .ok_or_else(|| DataError::File(format!("no windows for {key:?} in the windows file")))?;
    let list =
        entry.as_array().ok_or_else(|| DataError::File(format!("the windows of {key:?} are not a list")))?;
    list.iter()
        .map(|window| {
            let bad = || DataError::File(format!("a window of {key:?} is not [start, end]: {window}"));
            let pair = window.as_array().filter(|pair| pair.len() == 2).ok_or_else(bad)?;
            let start = pair[0].as_str().and_then(parse_timestamp).ok_or_else(bad)?;
            let end = pair[1].as_str().and_then(parse_timestamp).ok_or_else(bad)?;
            Ok((start, end))
        })
        .collect()
}

/// The calibration for replaying `table`: a NAB file is calibrated within its probationary
/// period (the first 15 % of its rows, at most 750), a recording like the agent. `ticks`
/// overrides the number of calibration scores.
pub fn calibration_for(table: &Table, ticks: Option<u32>) -> Calibration {
    let agent = Calibration::default();
    match (table.format, ticks) {
        (_, Some(ticks)) => Calibration { ticks: ticks.max(1), ..agent },
        (Format::Recording, None) => agent,
        (Format::Nab, None) => {
            let probation = ((table.rows.len() as f64 * PROBATION_SHARE) as usize).min(PROBATION_MAX);
            // Scores start once the window is full.
            let scores = probation.saturating_sub(WINDOW - 1) as u32;
            let settle = agent.settle.min(scores / 3);
            Calibration { settle, ticks: scores.saturating_sub(settle).max(1), ..agent }
        }
    }
}

/// `vigil vectors`: writes a header, then `<timestamp>,v0,...,v63` for every row once the
/// window is full. Returns the number of vectors written.
pub fn write_vectors(table: &Table, out: &mut impl Write) -> std::io::Result<usize> {
    let first = match table.format {
        Format::Recording => "unix_ms",
        Format::Nab => "timestamp",
    };
    write!(out, "{first}")?;
    for i in 0..INPUT_WIDTH {
        write!(out, ",v{i}")?;
    }
    writeln!(out)?;
    let mut vectoriser = Vectoriser::default();
    let mut written = 0;
    for row in &table.rows {
        let Some(vector) = vectoriser.push(&row.raw) else { continue };
        write!(out, "{}", row.timestamp)?;
        for value in vector {
            write!(out, ",{value}")?;
        }
        writeln!(out)?;
        written += 1;
    }
    Ok(written)
}

/// What a replay found.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub rows: usize,
    pub scored: usize,
    pub calibration: Calibration,
    pub threshold: Option<f64>,
    /// Rows on which the detector counted the series as anomalous.
    pub anomalous: usize,
}

/// `vigil replay`: writes `timestamp,value,anomaly_score,label` for every row. `anomaly_score`
/// is [`crate::judge::anomaly::Reading::unit_score`] (0 until calibrated); `label` is 1 inside one of
/// `windows`, else 0.
pub fn replay<S: Scorer>(
    table: &Table,
    scorer: S,
    calibration: Calibration,
    windows: &[(i64, i64)],
    out: &mut impl Write,
) -> Result<Summary, ReplayError>
where
    S::Error: std::fmt::Display,
{
    let mut scoring = Scoring::new(scorer, calibration);
    let mut summary = Summary { rows: 0, scored: 0, calibration, threshold: None, anomalous: 0 };
    writeln!(out, "timestamp,value,anomaly_score,label")?;
    for row in &table.rows {
        let reading = scoring.push(&row.raw).map_err(|error| ReplayError::Model(error.to_string()))?;
        let unit = reading.map_or(0.0, |r| r.unit_score());
        let label = windows.iter().any(|(start, end)| (*start..=*end).contains(&row.at_us));
        writeln!(out, "{},{},{unit},{}", row.timestamp, row.value, u8::from(label))?;
        summary.rows += 1;
        if let Some(reading) = reading {
            summary.scored += 1;
            summary.anomalous += usize::from(reading.anomalous);
        }
    }
    summary.threshold = scoring.detector().threshold();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(rows: &[&str]) -> String {
        format!("unix_ms,{}\n{}\n", CHANNELS.join(","), rows.join("\n"))
    }

    #[test]
    fn recordings_parse_with_empty_channels() {
        let table = parse(&recording(&["1700000000000,0.5,0.1,,0.2,,,0.693,0", ""])).unwrap();
        assert_eq!(table.format, Format::Recording);
        let row = &table.rows[0];
        assert_eq!(row.timestamp, "1700000000000");
        assert_eq!(row.at_us, 1_700_000_000_000_000);
        assert_eq!(row.value, "0.5");
        assert_eq!(row.raw, [Some(0.5), Some(0.1), None, Some(0.2), None, None, Some(0.693), Some(0.0)]);
    }

    #[test]
    fn nab_files_parse_into_the_first_channel() {
        let table =
            parse("timestamp,value\r\n2014-04-01 00:00:00,20.5\r\n2014-04-01 00:05:00,8\r\n").unwrap();
        assert_eq!(table.format, Format::Nab);
        assert_eq!(table.rows.len(), 2);
        assert_eq!(table.rows[1].raw, [Some(8.0), None, None, None, None, None, None, None]);
        assert_eq!(table.rows[1].value, "8");
        assert_eq!(table.rows[1].at_us - table.rows[0].at_us, 300_000_000);
    }

    #[test]
    fn bad_input_names_the_line_and_the_cause() {
        let cases = [
            ("", "the file is empty"),
            ("timestamp,value\n", "no rows"),
            ("time,value\n1,2\n", "line 1: expected the header unix_ms,memory_ratio"),
            ("timestamp,value\n2014-04-01 00:00:00,abc\n", "line 2: value \"abc\" is not a number"),
            ("timestamp,value\n2014-04-01 00:00:00\n", "line 2: expected 2 columns, found 1"),
            ("timestamp,value\n\n2014-04-01,3\n", "line 3: timestamp \"2014-04-01\" is not"),
            ("timestamp,value\n2014-13-01 00:00:00,3\n", "line 2: timestamp"),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        let error = parse(&recording(&["1,2,3"])).unwrap_err().to_string();
        assert_eq!(error, "line 2: expected 9 columns, found 3");
        let error = parse(&recording(&["1.5,,,,,,,,"])).unwrap_err().to_string();
        assert_eq!(error, "line 2: unix_ms \"1.5\" is not a whole number");
        let error = parse(&recording(&["1,,,x,,,,,"])).unwrap_err().to_string();
        assert_eq!(error, "line 2: threads_ratio \"x\" is not a number");
    }

    #[test]
    fn timestamps() {
        let cases = [
            ("1970-01-01 00:00:00", Some(0)),
            ("1970-01-02 00:00:01", Some(86_401_000_000)),
            ("2014-04-10 07:15:00.000000", Some(1_397_114_100_000_000)),
            ("2014-04-10 07:15:00", Some(1_397_114_100_000_000)),
            ("2000-02-29 12:00:00.5", Some(951_825_600_500_000)),
            ("1969-12-31 23:59:59", None),
            ("2014-04-10", None),
            ("2014-04-10 25:00:00", None),
            ("2014-04-10 07:15:00.x", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_timestamp(text), expected, "{text}");
        }
    }

    #[test]
    fn windows_are_read_by_key() {
        let json =
            r#"{"a/b.csv": [["2014-04-10 07:15:00.000000", "2014-04-11 16:45:00.000000"]], "a/c.csv": []}"#;
        let found = windows(json, "a/b.csv").unwrap();
        assert_eq!(found, vec![(1_397_114_100_000_000, 1_397_234_700_000_000)]);
        assert_eq!(windows(json, "a/c.csv").unwrap(), vec![]);
        assert!(windows(json, "a/d.csv").unwrap_err().to_string().contains("no windows for \"a/d.csv\""));
        assert!(windows("[", "a").is_err());
        assert!(windows(r#"{"a": [["x", "y"]]}"#, "a").is_err());
    }

    fn nab(rows: usize) -> Table {
        let text: String = std::iter::once("timestamp,value".to_string())
            .chain((0..rows).map(|i| {
                format!("2014-04-{:02} {:02}:{:02}:00,{}", 1 + i / 1440, i / 60 % 24, i % 60, i % 7)
            }))
            .collect::<Vec<_>>()
            .join("\n");
        parse(&text).unwrap()
    }

    #[test]
    fn nab_files_calibrate_within_the_probationary_period() {
        let table = nab(1000);
        let calibration = calibration_for(&table, None);
        // 150 probationary rows; the first score comes with row 8; a third of the 143 scores
        // settle, the rest calibrate.
        assert_eq!((calibration.settle, calibration.ticks), (47, 96));
        let small = calibration_for(&nab(100), None);
        assert_eq!(small.settle + small.ticks + WINDOW as u32 - 1, 15);
        assert_eq!(calibration_for(&table, Some(42)).ticks, 42);
        let long = calibration_for(&nab(10_000), None);
        assert_eq!((long.settle, long.ticks), (60, 750 - 7 - 60));
    }

    /// Scores the newest value of channel 0, shifted so it is positive.
    struct Newest;

    impl Scorer for Newest {
        type Error = std::convert::Infallible;

        fn score(&mut self, input: &[f32; INPUT_WIDTH]) -> Result<f32, Self::Error> {
            Ok(input[INPUT_WIDTH - 8].abs() + 0.1)
        }
    }

    #[test]
    fn replay_writes_one_row_per_input_row_with_scores_in_unit_range() {
        let table = nab(400);
        let windows = [(
            parse_timestamp("2014-04-01 02:00:00").unwrap(),
            parse_timestamp("2014-04-01 02:10:00").unwrap(),
        )];
        let mut out = Vec::new();
        let calibration = calibration_for(&table, None);
        let summary = replay(&table, Newest, calibration, &windows, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "timestamp,value,anomaly_score,label");
        assert_eq!(lines.len(), 401);
        assert_eq!((summary.rows, summary.scored), (400, 400 - (WINDOW - 1)));
        assert!(summary.threshold.is_some());
        let mut labelled = 0;
        for (i, line) in lines[1..].iter().enumerate() {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 4, "{line}");
            assert_eq!(fields[1], (i % 7).to_string());
            let score: f64 = fields[2].parse().unwrap();
            assert!((0.0..=1.0).contains(&score), "{line}");
            if i < 60 {
                assert_eq!(score, 0.0, "calibrating: {line}");
            }
            labelled += usize::from(fields[3] == "1");
        }
        assert_eq!(labelled, 11, "02:00 to 02:10, both ends included");
        assert!(lines[400].starts_with("2014-04-01 06:39:00,"));
    }

    #[test]
    fn vectors_are_64_wide_once_the_window_is_full() {
        let rows: Vec<String> =
            (0..20).map(|i| format!("{},0.{},0.1,,,,,,", 1_700_000_000_000i64 + i * 1000, i % 10)).collect();
        let table = parse(&recording(&rows.iter().map(String::as_str).collect::<Vec<_>>())).unwrap();
        let mut out = Vec::new();
        assert_eq!(write_vectors(&table, &mut out).unwrap(), 20 - (WINDOW - 1));
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("unix_ms,v0,v1,"));
        assert!(lines[0].ends_with(",v63"));
        assert_eq!(lines.len(), 1 + 13);
        assert!(lines[1].starts_with("1700000007000,"));
        for line in &lines[1..] {
            assert_eq!(line.split(',').count(), 1 + INPUT_WIDTH);
        }
    }
}
