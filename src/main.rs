//! The `herald` binary: parse, set up logging, dispatch, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use herald::cli::Cli;
use herald::commands::{self, ExitStatus, InputError};

fn main() -> ExitCode {
    let cli = Cli::parse();
    herald::telemetry::init(cli.log_format, cli.verbose);
    let rt = match runtime().build() {
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

/// One runtime thread unless `TOKIO_WORKER_THREADS` says otherwise. Herald's work is waiting on
/// sockets and on SQLite (whose connections run on threads of their own); per message or post
/// there is little CPU. On one thread a wake-up is a queue push, where between two it is often
/// a futex wake and a context switch. bench/email, same machine and run: 20,000 messages in
/// 3.4–3.6 s on one thread against 4.0 s on two, with less CPU; the idle daemon also keeps one
/// thread (and its allocator arena) fewer.
fn runtime() -> tokio::runtime::Builder {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        b.worker_threads(1);
    }
    b
}

