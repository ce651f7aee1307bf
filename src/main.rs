//! The `herald` binary: parse, set up logging, dispatch, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use herald::cli::Cli;
use herald::commands::{self, ExitStatus, InputError};

fn main() -> ExitCode {
    let cli = Cli::parse();
    herald::telemetry::init(cli.log_format, cli.verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(commands::dispatch(cli)) {
        Ok(status) => ExitCode::from(status.code()),
        Err(err) => {
            eprintln!("error: {err:#}");
            let input = err.chain().any(|e| e.downcast_ref::<InputError>().is_some());
            ExitCode::from(if input { ExitStatus::Error } else { ExitStatus::Failure }.code())
        }
    }
}
