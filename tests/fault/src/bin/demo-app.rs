//! The demo "transactions" service the fault suite runs inside each emulated task.
//!
//! Configuration is by environment (see `vigil_fault::demo`); a bad value exits with status 64.

use std::process::ExitCode;

use vigil_fault::demo::{Demo, DemoConfig};

fn main() -> ExitCode {
    let config = match DemoConfig::from_lookup(|key| std::env::var(key).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("demo-app: bad configuration: {e}");
            return ExitCode::from(64);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers)
        .max_blocking_threads(2)
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("demo-app: cannot start the runtime: {e}");
            return ExitCode::from(70);
        }
    };
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(&config.listen).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("demo-app: cannot listen on {}: {e}", config.listen);
                return ExitCode::from(71);
            }
        };
        eprintln!("demo-app: listening on {} with fault {}", config.listen, config.fault);
        vigil_fault::demo::run(Demo::new(config), listener).await;
        ExitCode::SUCCESS
    })
}
