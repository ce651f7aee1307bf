//! clap types only: no logic lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Herald renders one finished newsletter issue for every channel, delivers each exactly once,
/// and keeps a log of what went where.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, propagate_version = true)]
pub struct Cli {
    /// The config file (default: $HERALD_CONFIG, then ./herald.toml).
    #[arg(long, short = 'c', global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Log format for stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// More logging (-v info, -vv debug).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print exactly what each channel would receive.
    Render(RenderArgs),
    /// Write (or serve) one HTML page showing every channel as its reader will see it.
    Preview(PreviewArgs),
    /// Validate the config and templates; with an issue, preflight every channel.
    Check(CheckArgs),
    /// Publish an issue to its channels.
    Publish(PublishArgs),
    /// The issue × channel matrix: state, attempts, remote URL, last error, next attempt.
    Status(StatusArgs),
    /// The attempt history.
    Log(LogArgs),
    /// Send a channel again as a new revision (a new post), with one manual attempt.
    Republish(RepublishArgs),
    /// Redrive failed and unconfirmed deliveries, once.
    Retry(RetryArgs),
    /// Cancel deliveries that have not been sent.
    Cancel(CancelArgs),
    /// Run the workers, the scheduler and the HTTP endpoints.
    Daemon(DaemonArgs),
    /// Manage the email subscriber list.
    #[command(subcommand)]
    Subscribers(SubscribersCommand),
    /// Bounce and complaint reports: import DSN/ARF `.eml` files or a Postmark bounce export.
    #[command(subcommand)]
    Bounces(BouncesCommand),
    /// Run the networks' contract fakes on their own.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// Connect a channel's account once (OAuth, app password or cookie); Herald keeps the
    /// credential, sealed, in the store and renews it.
    Connect(ConnectArgs),
    /// Each channel's credential: source, account, scopes, expiry (never a secret).
    Credentials(CredentialsArgs),
}

/// `herald connect`
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The channel's name in the config.
    pub channel: String,
    /// Print the authorize URL and read the redirect URL (or the code, or the secret) pasted on
    /// standard input, instead of catching the redirect on a loopback listener.
    #[arg(long)]
    pub manual: bool,
    /// The loopback callback port: the app's registered callback must be
    /// `http://127.0.0.1:PORT/callback`.
    #[arg(long, default_value_t = 8723)]
    pub port: u16,
    /// The callback URL registered with the app, when it is not the loopback default (Threads
    /// wants https): the browser is sent there and the address it lands on is pasted back.
    #[arg(long, value_name = "URL")]
    pub redirect_uri: Option<String>,
    /// Give up waiting for the browser after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `herald credentials`
#[derive(Debug, Args)]
pub struct CredentialsArgs {
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `herald render`
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The issue file.
    pub issue: PathBuf,
    /// Only these channels (repeatable).
    #[arg(long = "channel", value_name = "NAME")]
    pub channels: Vec<String>,
    /// Print a JSON array of {channel, type, rendering}.
    #[arg(long)]
    pub json: bool,
}

/// `herald preview`
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The issue file.
    pub issue: PathBuf,
    /// Only these channels (repeatable).
    #[arg(long = "channel", value_name = "NAME")]
    pub channels: Vec<String>,
    /// Write the page here (default: stdout, unless --serve).
    #[arg(long, value_name = "FILE.html")]
    pub out: Option<PathBuf>,
    /// Serve the page on loopback and reload it when the issue or a template changes.
    #[arg(long)]
    pub serve: bool,
    /// Where --serve listens (loopback only).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8044", requires = "serve")]
    pub listen: std::net::SocketAddr,
    /// Warn when a thread is longer than this many posts.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_thread: usize,
    /// Print the warnings as JSON instead of writing the page.
    #[arg(long)]
    pub json: bool,
}

/// `herald check`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// An issue to preflight.
    pub issue: Option<PathBuf>,
    /// Only these channels (repeatable).
    #[arg(long = "channel", value_name = "NAME")]
    pub channels: Vec<String>,
    /// Also resolve every credential.
    #[arg(long)]
    pub credentials: bool,
}

/// `herald publish`
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The issue file.
    pub issue: PathBuf,
    /// Only these channels (repeatable).
    #[arg(long = "channel", value_name = "NAME")]
    pub channels: Vec<String>,
    /// Run an embedded worker until every delivery settles, then print the status.
    #[arg(long)]
    pub wait: bool,
    /// Rehearse end to end against local fakes of every network and a loopback SMTP server
    /// (implies --wait). Nothing leaves the machine; the author's store is not touched.
    #[arg(long)]
    pub sandbox: bool,
    /// With --sandbox: where to keep the run (store, accepted payloads). Default: ./.sandbox/run-<time>.
    #[arg(long, value_name = "DIR", requires = "sandbox")]
    pub sandbox_dir: Option<std::path::PathBuf>,
    /// With --sandbox: use this store URL instead of a fresh SQLite file in the run folder.
    #[arg(long, value_name = "URL", requires = "sandbox")]
    pub store: Option<String>,
    /// With --wait: give up after this many seconds (exit 1 if deliveries are still open).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Print the status as JSON at the end.
    #[arg(long)]
    pub json: bool,
}

/// `herald status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// An issue file or slug (default: every issue).
    pub issue: Option<String>,
    /// Only these channels (repeatable).
    #[arg(long = "channel", value_name = "NAME")]
    pub channels: Vec<String>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `herald log`
#[derive(Debug, Args)]
pub struct LogArgs {
    /// An issue file or slug (default: every issue).
    pub issue: Option<String>,
    /// Only these channels (repeatable).
    #[arg(long = "channel", value_name = "NAME")]
    pub channels: Vec<String>,
    /// Keep printing new attempts as they happen.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// `herald republish`
#[derive(Debug, Args)]
pub struct RepublishArgs {
    /// The issue file or slug.
    pub issue: String,
    /// The channels to republish (required, repeatable).
    #[arg(long = "channel", value_name = "NAME", required = true)]
    pub channels: Vec<String>,
    /// Wait for the attempt to finish.
    #[arg(long)]
    pub wait: bool,
}

/// `herald retry`
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The issue file or slug (default: every issue).
    pub issue: Option<String>,
    /// Only these channels (repeatable).
    #[arg(long = "channel", value_name = "NAME")]
    pub channels: Vec<String>,
    /// Wait for the attempts to finish.
    #[arg(long)]
    pub wait: bool,
}

/// `herald cancel`
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The issue file or slug.
    pub issue: String,
    /// Only these channels (repeatable).
    #[arg(long = "channel", value_name = "NAME")]
    pub channels: Vec<String>,
}

/// `herald daemon`
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Worker concurrency for deliveries.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

/// `herald subscribers …`
#[derive(Debug, Subcommand)]
pub enum SubscribersCommand {
    /// Import a CSV with an `email` column (and `name`, and any extra columns).
    Import {
        /// The CSV file.
        file: PathBuf,
        /// The list to import into.
        #[arg(long, default_value = "all")]
        list: String,
    },
    /// List subscribers (or, with `--suppressed`, every suppressed address with its reason and source).
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// List the suppression list instead: address, kind, source, reason, when.
        #[arg(long)]
        suppressed: bool,
    },
    /// Count subscribers (and suppressions).
    Count,
    /// Remove a subscriber.
    Remove {
        /// The address.
        email: String,
    },
}

/// `herald bounces …`
#[derive(Debug, Subcommand)]
pub enum BouncesCommand {
    /// Apply DSN/ARF `.eml` files, `mailto:` unsubscribe requests, or a Postmark bounce export
    /// (JSON) to the suppression list.
    Import {
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// `herald sandbox …`
#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Run a contract fake for every channel of the config (each network, the SMTP server,
    /// the Postmark fake) until stopped; each keeps what it accepted in DIR/journal, on disk
    /// before it answers. Prints the `[channels.*]` config that points every channel at them.
    Serve(ServeArgs),
}

/// `herald sandbox serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to keep the journals, the fakes' secrets and the config fragment.
    /// Default: ./.sandbox/serve-<time>.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The first fake listens here, the next on the following port, and so on
    /// (port 0: any free port). Default: 127.0.0.1:0.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Faults at a rate on every HTTP fake: a file, or the text itself, e.g.
    /// `500=6%,503=6%,429=6%,hang=6%,reset=6%,retry_after=2,hang_secs=5` (or `all=30%`).
    #[arg(long, value_name = "FILE|SPEC")]
    pub fault_plan: Option<String>,
    /// Print the fakes and the fragment as one JSON object instead of TOML.
    #[arg(long)]
    pub json: bool,
}
