//! The `herald.toml` model. Unknown keys are rejected by the schema pass in `validate.rs`
//! (serde's `deny_unknown_fields` does not work beside `flatten`), which reports every problem at once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::secret::Secret;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the delivery store and queue live.
    #[serde(default)]
    pub store: StoreConfig,
    /// The folder of issue files (relative to the config file).
    #[serde(default = "default_issues_dir")]
    pub issues_dir: PathBuf,
    /// The default retry schedule.
    #[serde(default)]
    pub retry: RetryConfig,
    /// The daemon's HTTP listener (metrics, status, unsubscribe).
    #[serde(default)]
    pub http: HttpConfig,
    /// Scheduled publishing.
    #[serde(default)]
    pub schedule: Vec<ScheduleConfig>,
    /// An issue whose own `publish_at` passed less than this many seconds ago is published
    /// once; an older one (an archive, a new store) is recorded as skipped, never sent.
    #[serde(default = "default_catch_up")]
    pub publish_at_catch_up_secs: u64,
    /// The channels, by name.
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelConfig>,
    /// The credential store's key and renewal policy.
    #[serde(default)]
    pub credentials: CredentialsConfig,
    /// Asynchronous bounces, complaints and mailto unsubscribes (see `src/bounces/`).
    #[serde(default)]
    pub bounces: BouncesConfig,
}

/// `[bounces]`: the suppression policy, and where bounce reports come in (Postmark webhooks on
/// the daemon, an IMAP bounce mailbox the daemon polls).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BouncesConfig {
    /// Soft bounces of one address within `soft_bounce_days` that suppress it.
    #[serde(default = "default_soft_limit")]
    pub soft_bounce_limit: u32,
    /// The window soft bounces are counted in, in days.
    #[serde(default = "default_soft_days")]
    pub soft_bounce_days: u32,
    /// `POST /webhooks/postmark` basic-auth user (Postmark's webhook URL carries `user:password@`).
    #[serde(default = "default_webhook_user")]
    pub webhook_user: String,
    /// The basic-auth password; with neither it nor `webhook_path_secret`, the route is not mounted.
    #[serde(default)]
    pub webhook_password: Option<Secret>,
    /// The password from a file.
    #[serde(default)]
    pub webhook_password_file: Option<PathBuf>,
    /// A secret path segment: the route is also `POST /webhooks/postmark/<secret>`.
    #[serde(default)]
    pub webhook_path_secret: Option<Secret>,
    /// The path secret from a file.
    #[serde(default)]
    pub webhook_path_secret_file: Option<PathBuf>,
    /// The bounce mailbox: `imaps://host[:port]` (or `imap://` on loopback only).
    #[serde(default)]
    pub imap_url: Option<String>,
    /// The IMAP login.
    #[serde(default)]
    pub imap_user: Option<String>,
    /// The IMAP password.
    #[serde(default)]
    pub imap_password: Option<Secret>,
    /// The IMAP password from a file.
    #[serde(default)]
    pub imap_password_file: Option<PathBuf>,
    /// The folder reports arrive in.
    #[serde(default = "default_imap_mailbox")]
    pub imap_mailbox: String,
    /// Handled messages are moved here (created if missing); unset: flagged `$HeraldDone` and left.
    #[serde(default)]
    pub imap_done_mailbox: Option<String>,
    /// A PEM file of the CA certificate(s) that sign the mailbox's TLS certificate, trusted
    /// instead of the web PKI roots (a mailbox with its own CA). Relative to the config file.
    #[serde(default)]
    pub imap_ca_file: Option<PathBuf>,
    /// Seconds between polls of the mailbox.
    #[serde(default = "default_poll_secs")]
    pub poll_secs: u64,
}

impl Default for BouncesConfig {
    fn default() -> Self {
        Self {
            soft_bounce_limit: default_soft_limit(),
            soft_bounce_days: default_soft_days(),
            webhook_user: default_webhook_user(),
            webhook_password: None,
            webhook_password_file: None,
            webhook_path_secret: None,
            webhook_path_secret_file: None,
            imap_url: None,
            imap_user: None,
            imap_password: None,
            imap_password_file: None,
            imap_mailbox: default_imap_mailbox(),
            imap_done_mailbox: None,
            imap_ca_file: None,
            poll_secs: default_poll_secs(),
        }
    }
}

fn default_soft_limit() -> u32 {
    3
}
fn default_soft_days() -> u32 {
    30
}
fn default_webhook_user() -> String {
    "postmark".into()
}
fn default_imap_mailbox() -> String {
    "INBOX".into()
}
fn default_poll_secs() -> u64 {
    300
}

/// `[credentials]`: how tokens Herald obtains or rotates are kept (see `src/credentials/`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsConfig {
    /// The sealing key, 32 bytes as base64 or hex (default: `${HERALD_SECRET_KEY}`).
    #[serde(default)]
    pub key: Option<Secret>,
    /// The key from a file.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Renew a token that can be renewed (Threads) when it has fewer days left than this.
    #[serde(default = "default_renew_days")]
    pub renew_days: u32,
    /// Warn about a credential expiring within this many days (`check`, `status`).
    #[serde(default = "default_renew_days")]
    pub warn_days: u32,
}

impl Default for CredentialsConfig {
    fn default() -> Self {
        Self { key: None, key_file: None, renew_days: default_renew_days(), warn_days: default_renew_days() }
    }
}

fn default_renew_days() -> u32 {
    7
}

fn default_issues_dir() -> PathBuf {
    PathBuf::from("issues")
}

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://path/herald.db` (queue in a sibling `*.queue.db`) or `postgres://…`.
    #[serde(default = "default_store_url")]
    pub url: String,
    /// SQLite: the recipient ledger's commits reach the disk at most this many milliseconds
    /// after they are made (a power cut can re-send that much of a mailing, never skip
    /// anyone); 0 flushes every commit. See `store/walsync.rs`.
    #[serde(default = "default_ledger_flush_ms")]
    pub ledger_flush_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { url: default_store_url(), ledger_flush_ms: default_ledger_flush_ms() }
    }
}

fn default_ledger_flush_ms() -> u64 {
    crate::store::walsync::DEFAULT_LEDGER_FLUSH.as_millis() as u64
}

fn default_store_url() -> String {
    "sqlite://herald.db".into()
}

/// `[retry]`, also accepted per channel as `retry_schedule_secs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Delays before each retry, in seconds. Its length is the number of retries.
    #[serde(default = "default_schedule")]
    pub schedule_secs: Vec<u64>,
    /// Random spread applied to each delay, as a fraction (0.2 = ±20 %).
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// Floor for a timeout or a 429, in seconds.
    #[serde(default = "default_rate_floor")]
    pub rate_limit_floor_secs: u64,
    /// Ceiling for a `Retry-After` or reset hint, in seconds.
    #[serde(default = "default_rate_ceiling")]
    pub rate_limit_ceiling_secs: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            schedule_secs: default_schedule(),
            jitter: default_jitter(),
            rate_limit_floor_secs: default_rate_floor(),
            rate_limit_ceiling_secs: default_rate_ceiling(),
        }
    }
}

fn default_schedule() -> Vec<u64> {
    vec![0, 5, 300, 1800, 7200, 18000, 36000, 36000]
}
fn default_jitter() -> f64 {
    0.2
}
fn default_rate_floor() -> u64 {
    60
}
fn default_rate_ceiling() -> u64 {
    86_400
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Bearer token for `/metrics` and `/status` when listening beyond loopback.
    #[serde(default)]
    pub token: Option<Secret>,
    /// The token from a file.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { listen: default_listen(), token: None, token_file: None }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8025".into()
}

/// `[[schedule]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Unique name; fires are recorded under (name, fire time).
    pub name: String,
    /// Cron expression with a seconds field: `sec min hour dom mon dow [year]`.
    pub cron: String,
    /// IANA time zone the expression is read in.
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// `"next"`: the oldest ready, unpublished issue; or an issue slug or path.
    #[serde(default = "default_what")]
    pub what: String,
    /// The channels this entry publishes to (default: all).
    #[serde(default)]
    pub channels: Vec<String>,
    /// Fires missed by less than this are caught up once at start; older ones are skipped.
    #[serde(default = "default_catch_up")]
    pub catch_up_secs: u64,
}

fn default_tz() -> String {
    "UTC".into()
}
fn default_what() -> String {
    "next".into()
}
fn default_catch_up() -> u64 {
    3600
}

/// How a post network renders an issue.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PostFormat {
    /// One post for the whole issue: the hook, the link, the tags.
    #[default]
    Short,
    /// A first post, then one post per section.
    Thread,
}

/// Keys every channel accepts.
#[derive(Debug, Clone, Deserialize, Default)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct Common {
    /// A folder that overrides `channels/<type>/` templates.
    #[serde(default)]
    pub template: Option<PathBuf>,
    /// Set false to keep the channel configured but unused.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Per-channel retry schedule (seconds), replacing `[retry] schedule_secs`.
    #[serde(default)]
    pub retry_schedule_secs: Option<Vec<u64>>,
    /// Per-request timeout, in seconds.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Add `utm_source=<channel>` to links to the issue's own site.
    #[serde(default = "yes")]
    pub utm: bool,
}

fn yes() -> bool {
    true
}

/// Keys the post networks share.
#[derive(Debug, Clone, Deserialize, Default)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct PostOptions {
    /// `short` or `thread`.
    #[serde(default)]
    pub format: PostFormat,
    /// Number split posts `i/n`, counted inside the limit.
    #[serde(default = "yes")]
    pub counter: bool,
}

pub use crate::channel::registry::{CHANNEL_TYPES, ChannelConfig};
// Each type's config struct lives in its folder, `src/channel/<type>/kind.rs`.
pub use crate::channel::bluesky::kind::BlueskyConfig;
pub use crate::channel::email::kind::EmailConfig;
pub use crate::channel::email_api::kind::EmailApiConfig;
pub use crate::channel::exec::kind::ExecConfig;
pub use crate::channel::linkedin::kind::LinkedinConfig;
pub use crate::channel::mastodon::kind::MastodonConfig;
pub use crate::channel::substack::kind::{SUBSTACK_DEFAULT_MAX_BODY, SUBSTACK_DEFAULT_UA, SubstackConfig, SubstackMode};
pub use crate::channel::threads::kind::ThreadsConfig;
pub use crate::channel::webhook::kind::WebhookConfig;
pub use crate::channel::x::kind::{ThreadFallback, XAuth, XConfig};

/// Resolve a secret given either as `key = "${ENV}"` or `key_file = "path"`.
pub fn pick_secret(inline: &Option<Secret>, file: &Option<PathBuf>) -> Option<Secret> {
    inline.clone().or_else(|| file.clone().map(Secret::File))
}
