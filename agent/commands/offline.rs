//! `vigil vectors` and `vigil replay`: their arguments, files and exit statuses around the
//! pure tables of [`super::replay`].

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use super::replay::{self, DataError, ReplayError, Table};
use super::{EXIT_CANNOT_CREATE, EXIT_DATA, EXIT_IO, EXIT_NO_INPUT, EXIT_SOFTWARE, EXIT_USAGE};
use crate::judge::model::Model;

/// An offline command's failure: the message and the exit status.
#[derive(Debug)]
struct Failure(String, u8);

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure(format!("{}; see vigil --help", message.into()), EXIT_USAGE)
    }
}

fn finish(command: &str, result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message, code)) => {
            eprintln!("vigil {command}: {message}");
            ExitCode::from(code)
        }
    }
}

/// Reads and parses an input file of `vigil vectors` or `vigil replay`.
fn read_table(path: &str) -> Result<Table, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| Failure(format!("cannot read {path}: {error}"), EXIT_NO_INPUT))?;
    replay::parse(&text).map_err(|error| data_failure(path, &error))
}

fn data_failure(path: &str, error: &DataError) -> Failure {
    Failure(format!("{path}: {error}"), EXIT_DATA)
}

fn write_failure(error: &std::io::Error) -> Result<(), Failure> {
    // A closed pipe (`vigil vectors file | head`) is the reader's choice, not a failure.
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        return Ok(());
    }
    Err(Failure(format!("cannot write the output: {error}"), EXIT_IO))
}

/// `vigil vectors <recording.csv>`: the model's input vectors of a recording, on stdout.
pub fn vectors(args: &[String]) -> ExitCode {
    let result = match args {
        [path] if !path.starts_with('-') => read_table(path).and_then(|table| {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match replay::write_vectors(&table, &mut out).and_then(|_| out.flush()) {
                Ok(()) => Ok(()),
                Err(error) => write_failure(&error),
            }
        }),
        _ => Err(Failure::usage("expected one argument: vigil vectors <recording.csv>")),
    };
    finish("vectors", result)
}

/// The arguments of `vigil replay`.
#[derive(Debug, Default, PartialEq)]
struct ReplayArgs {
    input: Option<String>,
    out: Option<String>,
    model: Option<String>,
    windows: Option<String>,
    key: Option<String>,
    calibration: Option<u32>,
}

fn replay_args(args: &[String]) -> Result<ReplayArgs, Failure> {
    let mut parsed = ReplayArgs::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if arg.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .ok_or_else(|| Failure::usage(format!("{flag} needs a value")))
        };
        match flag {
            "--out" => parsed.out = Some(value()?),
            "--model" => parsed.model = Some(value()?),
            "--windows" => parsed.windows = Some(value()?),
            "--key" => parsed.key = Some(value()?),
            "--calibration" => {
                let text = value()?;
                match text.parse::<u32>() {
                    Ok(n) if n >= 1 => parsed.calibration = Some(n),
                    _ => {
                        return Err(Failure::usage(format!(
                            "--calibration {text:?}: expected a whole number of scores, at least 1"
                        )));
                    }
                }
            }
            other if other.starts_with('-') => {
                return Err(Failure::usage(format!("unknown option {other:?}")));
            }
            _ if parsed.input.is_none() => parsed.input = Some(arg.clone()),
            _ => return Err(Failure::usage(format!("unexpected argument {arg:?}"))),
        }
    }
    if parsed.input.is_none() {
        return Err(Failure::usage("expected an input file: vigil replay <file.csv> [--out FILE]"));
    }
    if parsed.key.is_some() && parsed.windows.is_none() {
        return Err(Failure::usage("--key needs --windows"));
    }
    Ok(parsed)
}

/// `vigil replay <file.csv>`: NAB-format results for a recording or a NAB data file.
pub fn replay(args: &[String]) -> ExitCode {
    finish("replay", replay_result(args))
}

fn replay_result(args: &[String]) -> Result<(), Failure> {
    let args = replay_args(args)?;
    let input = args.input.as_deref().unwrap_or_default();
    let table = read_table(input)?;
    let model = match &args.model {
        None => Model::embedded(),
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|error| {
                Failure(format!("invalid --model {path:?}: cannot read: {error}"), EXIT_USAGE)
            })?;
            Model::load(&bytes)
        }
    }
    .map_err(|error| {
        Failure(
            format!("invalid --model {:?}: {error}", args.model.as_deref().unwrap_or("embedded")),
            EXIT_USAGE,
        )
    })?;
    let windows = match &args.windows {
        None => Vec::new(),
        Some(path) => {
            let json = std::fs::read_to_string(path)
                .map_err(|error| Failure(format!("cannot read {path}: {error}"), EXIT_NO_INPUT))?;
            let key = args.key.clone().unwrap_or_else(|| default_key(input));
            replay::windows(&json, &key).map_err(|error| data_failure(path, &error))?
        }
    };
    let calibration = replay::calibration_for(&table, args.calibration);
    let mut out: Box<dyn std::io::Write> = match &args.out {
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|error| Failure(format!("cannot create {path}: {error}"), EXIT_CANNOT_CREATE))?,
        )),
    };
    let summary = replay::replay(&table, model, calibration, &windows, &mut out).and_then(|summary| {
        out.flush()?;
        Ok(summary)
    });
    let summary = match summary {
        Ok(summary) => summary,
        Err(ReplayError::Write(error)) => return write_failure(&error),
        Err(ReplayError::Model(message)) => {
            return Err(Failure(format!("the model failed to run: {message}"), EXIT_SOFTWARE));
        }
    };
    let threshold =
        summary.threshold.map_or("none (too few rows to calibrate)".to_string(), |t| format!("{t}"));
    eprintln!(
        "vigil replay: {input}: {} rows, {} scored, threshold {threshold} after {} calibration scores, {} anomalous rows",
        summary.rows, summary.scored, summary.calibration.ticks, summary.anomalous
    );
    Ok(())
}

/// The key of a NAB data file in the windows file: its folder and name, `<category>/<file>`.
fn default_key(path: &str) -> String {
    let path = Path::new(path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match path.parent().and_then(Path::file_name) {
        Some(category) => format!("{}/{name}", category.to_string_lossy()),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Result<ReplayArgs, Failure> {
        replay_args(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn replay_takes_flags_with_a_space_or_an_equals_sign() {
        let parsed = args(&[
            "in.csv",
            "--out=o.csv",
            "--windows",
            "w.json",
            "--key",
            "k/f.csv",
            "--calibration",
            "40",
        ])
        .unwrap();
        assert_eq!(
            parsed,
            ReplayArgs {
                input: Some("in.csv".into()),
                out: Some("o.csv".into()),
                model: None,
                windows: Some("w.json".into()),
                key: Some("k/f.csv".into()),
                calibration: Some(40),
            }
        );
    }

    #[test]
    fn replay_rejects_what_it_cannot_use_as_usage_errors() {
        for (words, says) in [
            (&[][..], "expected an input file"),
            (&["in.csv", "--out"][..], "--out needs a value"),
            (&["in.csv", "--calibration", "0"][..], "at least 1"),
            (&["in.csv", "--calibration", "x"][..], "whole number"),
            (&["in.csv", "--frobnicate"][..], "unknown option"),
            (&["in.csv", "more.csv"][..], "unexpected argument"),
            (&["in.csv", "--key", "k"][..], "--key needs --windows"),
        ] {
            let Failure(message, code) = args(words).unwrap_err();
            assert_eq!(code, EXIT_USAGE, "{words:?}");
            assert!(message.contains(says), "{words:?}: {message}");
        }
    }

    #[test]
    fn the_default_key_is_folder_and_file() {
        assert_eq!(
            default_key("data/realKnownCause/machine_temperature.csv"),
            "realKnownCause/machine_temperature.csv"
        );
        assert_eq!(default_key("machine_temperature.csv"), "machine_temperature.csv");
    }
}
