//! tracing setup: human lines by default, JSON with `--log-format json`, always on stderr.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Span and event field names shared by every delivery log line.
pub mod fields {
    /// The issue slug.
    pub const ISSUE: &str = "issue";
    /// The channel name.
    pub const CHANNEL: &str = "channel";
    /// The delivery id.
    pub const DELIVERY: &str = "delivery_id";
    /// The attempt number.
    pub const ATTEMPT: &str = "attempt";
}

/// Install the global subscriber. `HERALD_LOG` (an EnvFilter) overrides the verbosity.
pub fn init(format: LogFormat, verbose: u8) {
    let default = match verbose {
        0 => "herald=warn",
        1 => "herald=info",
        _ => "herald=debug",
    };
    let filter = EnvFilter::try_from_env("HERALD_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.with_target(false).with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
    };
}
