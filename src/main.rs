//! The `herald` binary: parse, set up logging, dispatch, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use herald::cli::Cli;
use herald::commands::{self, ExitStatus, InputError};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, herald::cli::Command::Daemon(_)) {
        limit_malloc_arenas();
    }
    herald::telemetry::init(cli.log_format, cli.verbose);
    let rt = match runtime().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(commands::dispatch(cli));
    // Dropping the runtime would wait for every blocking task: a render past its budget (left
    // running on its thread) must not hold the exit after SIGTERM.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(status) => ExitCode::from(status.code()),
        Err(err) => {
            eprintln!("error: {err:#}");
            let input = err.chain().any(|e| e.downcast_ref::<InputError>().is_some());
            ExitCode::from(if input { ExitStatus::Error } else { ExitStatus::Failure }.code())
        }
    }
}

/// The daemon runs for days: start it again, at once and in place (`exec`, same pid), with
/// `MALLOC_ARENA_MAX=2` unless the environment already sets it. glibc otherwise gives each
/// thread that allocates its own arena (up to 8 per core), and each keeps the memory it once
/// touched; SQLite's connection threads and the runtime's together left the idle daemon about
/// 0.7 MB larger (bench/daemon). glibc reads the variable only at start, hence the `exec`; if it
/// fails (the binary was replaced on disk, say), the daemon carries on as it is.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt as _;
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else { return };
        let err = std::process::Command::new(exe).args(std::env::args_os().skip(1)).env("MALLOC_ARENA_MAX", "2").exec();
        eprintln!("note: running without MALLOC_ARENA_MAX=2 ({err})");
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

