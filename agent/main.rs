//! The `vigil` command: reads the arguments and runs the command they name
//! ([`vigil::commands`]); the agent itself runs on a single-threaded tokio runtime.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use vigil::commands::{self, Command, EXIT_USAGE, offline, probe, run};
use vigil::config::Config;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = Command::parse(&args);
    match command {
        Command::Help => {
            print!("{}", commands::usage());
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("vigil {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Unknown(message) => {
            eprintln!("vigil: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
        Command::Vectors(args) => return offline::vectors(&args),
        Command::Replay(args) => return offline::replay(&args),
        Command::Run | Command::Probe | Command::Check => {}
    }

    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("vigil: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if command == Command::Check {
        return commands::check(&config);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("vigil: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    if command == Command::Probe {
        runtime.block_on(probe::probe(&config))
    } else {
        runtime.block_on(run::run(config))
    }
}
