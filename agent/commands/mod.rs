//! The `vigil` command line: which command the arguments name, the usage text, and the exit
//! statuses. One module per command; `main` only dispatches.
//!
//! Exit codes: 0 after a drain, 64 for invalid configuration or usage, 1 when the port cannot
//! be bound; `vigil probe` exits 0 if `/health` answers 200 within 2 s, else 1; `vigil check`
//! exits 0 for valid settings, 64 for an invalid or unknown one. The offline
//! commands exit 64 for bad arguments or an unusable `--model`, 65 for an input file they
//! cannot parse, 66 for one they cannot read, 70 if the model fails to run, 73 when the output
//! cannot be created and 74 when writing fails.

pub mod offline;
pub mod probe;
pub mod replay;
pub mod run;

use crate::config;

pub const EXIT_USAGE: u8 = 64;
pub const EXIT_DATA: u8 = 65;
pub const EXIT_NO_INPUT: u8 = 66;
pub const EXIT_SOFTWARE: u8 = 70;
pub const EXIT_CANNOT_CREATE: u8 = 73;
pub const EXIT_IO: u8 = 74;

/// What the arguments ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// No arguments: run the agent.
    Run,
    /// `vigil probe`.
    Probe,
    /// `vigil check`: validate the environment's settings and exit.
    Check,
    /// `vigil vectors ...` with the arguments after the command name.
    Vectors(Vec<String>),
    /// `vigil replay ...` with the arguments after the command name.
    Replay(Vec<String>),
    Help,
    Version,
    /// Anything else: the message to print before exiting with [`EXIT_USAGE`].
    Unknown(String),
}

impl Command {
    /// The command named by the arguments after the program name.
    pub fn parse(args: &[String]) -> Command {
        match args.first().map(String::as_str) {
            None => Command::Run,
            Some("-h" | "--help" | "help") => Command::Help,
            Some("-V" | "--version") => Command::Version,
            Some("probe") if args.len() == 1 => Command::Probe,
            Some("check") if args.len() == 1 => Command::Check,
            Some("vectors") => Command::Vectors(args[1..].to_vec()),
            Some("replay") => Command::Replay(args[1..].to_vec()),
            Some(other) => Command::Unknown(format!("unknown argument {other:?}; see vigil --help")),
        }
    }
}

/// The text of `vigil --help`, with the configuration table.
pub fn usage() -> String {
    let mut text = format!(
        "vigil {} — takes an ECS task out of its load balancer before it fails\n\n\
         Usage:\n  vigil            run the agent (configured by environment variables)\n  \
         vigil probe      exit 0 if /health answers 200 within 2 s, else 1\n  \
         vigil check      validate the settings in the environment: exit 0, or 64 naming an invalid\n                   \
         value or a VIGIL_ variable that is not a setting\n  \
         vigil vectors <recording.csv>\n                   \
         print the model's input vectors of a VIGIL_RECORD file (or a NAB file):\n                   \
         a header, then <unix_ms>,v0,...,v63 for each tick once 8 ticks are in the window\n  \
         vigil replay <file.csv> [--out FILE] [--model FILE] [--windows FILE [--key KEY]] [--calibration N]\n                   \
         score a VIGIL_RECORD file or a NAB timestamp,value file offline with the agent's model,\n                   \
         writing timestamp,value,anomaly_score,label (NAB's results format; anomaly_score in [0, 1]);\n                   \
         --model: an .nnef.tgz instead of the embedded model; --windows: NAB's combined_windows.json,\n                   \
         label 1 inside the windows of KEY (default: <folder>/<file> of the input); --calibration:\n                   \
         scores the threshold is calibrated from (default: NAB's probationary period, or 300)\n  \
         vigil --version  print the version\n\nEndpoints: /health /live /metrics /status\n\nEnvironment:\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, default, meaning) in config::VARIABLES {
        text.push_str(&format!("  {name:<32} {meaning} (default: {default})\n"));
    }
    text
}

/// `vigil check`: the configuration already parsed from the environment is valid; this also
/// refuses `VIGIL_` variables that are not settings, which the agent only warns about.
pub fn check(config: &config::Config) -> std::process::ExitCode {
    let names: Vec<String> = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()).collect();
    let unknown = config::unknown_variables(names.iter().map(String::as_str));
    if !unknown.is_empty() {
        eprintln!("vigil: not a vigil setting: {} (see vigil --help)", unknown.join(", "));
        return std::process::ExitCode::from(EXIT_USAGE);
    }
    println!(
        "vigil: settings ok ({} mode, listening on {}, drain horizon {} s)",
        config.mode().name(),
        config.listen,
        config.drain_horizon.as_secs()
    );
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Command {
        Command::parse(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn arguments_name_one_command() {
        assert_eq!(parse(&[]), Command::Run);
        assert_eq!(parse(&["--help"]), Command::Help);
        assert_eq!(parse(&["help"]), Command::Help);
        assert_eq!(parse(&["-V"]), Command::Version);
        assert_eq!(parse(&["probe"]), Command::Probe);
        assert_eq!(parse(&["check"]), Command::Check);
        assert_eq!(parse(&["vectors", "a.csv"]), Command::Vectors(vec!["a.csv".into()]));
        assert_eq!(
            parse(&["replay", "a.csv", "--out", "b"]),
            Command::Replay(vec!["a.csv".into(), "--out".into(), "b".into()])
        );
        assert!(matches!(parse(&["probe", "extra"]), Command::Unknown(m) if m.contains("\"probe\"")));
        assert!(matches!(parse(&["--verbose"]), Command::Unknown(_)));
    }

    #[test]
    fn usage_lists_every_variable() {
        let text = usage();
        for (name, _, _) in config::VARIABLES {
            assert!(text.contains(name), "{name} missing from --help");
        }
    }
}
