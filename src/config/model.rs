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
pub struct PostOptions {
    /// `short` or `thread`.
    #[serde(default)]
    pub format: PostFormat,
    /// Number split posts `i/n`, counted inside the limit.
    #[serde(default = "yes")]
    pub counter: bool,
}

/// One `[channels.<name>]` table, tagged by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelConfig {
    /// Email to the author's own list over SMTP.
    Email(EmailConfig),
    /// Email through Postmark's batch API.
    EmailApi(EmailApiConfig),
    /// A Substack post.
    Substack(SubstackConfig),
    /// A LinkedIn post.
    Linkedin(LinkedinConfig),
    /// X posts.
    X(XConfig),
    /// Bluesky posts.
    Bluesky(BlueskyConfig),
    /// Mastodon statuses.
    Mastodon(MastodonConfig),
    /// Threads (Meta) posts.
    Threads(ThreadsConfig),
    /// A generic webhook.
    Webhook(WebhookConfig),
    /// An external plugin program.
    Exec(ExecConfig),
}

/// The type names, as written in `type = "…"`.
pub const CHANNEL_TYPES: &[&str] =
    &["email", "email_api", "substack", "linkedin", "x", "bluesky", "mastodon", "threads", "webhook", "exec"];

impl ChannelConfig {
    /// The `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            ChannelConfig::Email(_) => "email",
            ChannelConfig::EmailApi(_) => "email_api",
            ChannelConfig::Substack(_) => "substack",
            ChannelConfig::Linkedin(_) => "linkedin",
            ChannelConfig::X(_) => "x",
            ChannelConfig::Bluesky(_) => "bluesky",
            ChannelConfig::Mastodon(_) => "mastodon",
            ChannelConfig::Threads(_) => "threads",
            ChannelConfig::Webhook(_) => "webhook",
            ChannelConfig::Exec(_) => "exec",
        }
    }
    /// The keys every channel shares.
    pub fn common(&self) -> &Common {
        match self {
            ChannelConfig::Email(c) => &c.common,
            ChannelConfig::EmailApi(c) => &c.common,
            ChannelConfig::Substack(c) => &c.common,
            ChannelConfig::Linkedin(c) => &c.common,
            ChannelConfig::X(c) => &c.common,
            ChannelConfig::Bluesky(c) => &c.common,
            ChannelConfig::Mastodon(c) => &c.common,
            ChannelConfig::Threads(c) => &c.common,
            ChannelConfig::Webhook(c) => &c.common,
            ChannelConfig::Exec(c) => &c.common,
        }
    }
    /// The network's rules as this channel applies them: Mastodon's `max_characters` (the
    /// instance's limit) and Threads' `max_links` override the network's defaults.
    pub fn rules(&self, network: crate::render::count::Network) -> crate::render::count::Rules {
        let mut r = crate::render::count::Rules::from(network);
        match self {
            ChannelConfig::Mastodon(c) => r.limit = c.max_characters.unwrap_or(r.limit),
            ChannelConfig::Threads(c) => r.max_links = c.max_links,
            _ => {}
        }
        r
    }
    /// Post options for the post networks (LinkedIn is always a short).
    pub fn post_options(&self) -> Option<&PostOptions> {
        match self {
            ChannelConfig::X(c) => Some(&c.post),
            ChannelConfig::Bluesky(c) => Some(&c.post),
            ChannelConfig::Mastodon(c) => Some(&c.post),
            ChannelConfig::Threads(c) => Some(&c.post),
            _ => None,
        }
    }
}

/// Resolve a secret given either as `key = "${ENV}"` or `key_file = "path"`.
pub fn pick_secret(inline: &Option<Secret>, file: &Option<PathBuf>) -> Option<Secret> {
    inline.clone().or_else(|| file.clone().map(Secret::File))
}

/// `type = "email"`
#[derive(Debug, Clone, Deserialize)]
pub struct EmailConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// lettre URL: `smtp://host:25`, `smtp://host:587?tls=required`, `smtps://user:pass@host`.
    /// May be a secret (`${SMTP_URL}`) when it carries a password.
    pub smtp_url: String,
    /// Sender, e.g. `"Ana <ana@example.com>"`.
    pub from: String,
    /// Optional Reply-To.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Which subscriber list (default: all).
    #[serde(default = "default_list")]
    pub subscribers: String,
    /// Base of one-click unsubscribe links, e.g. `https://news.example.com/unsubscribe`.
    pub unsubscribe_base_url: String,
    /// `mailto:` address for List-Unsubscribe, optional.
    #[serde(default)]
    pub unsubscribe_mailto: Option<String>,
    /// VERP: each message's Return-Path is `bounces+<token>@<bounce_domain>`, so a bounce names
    /// its message; unset, the Return-Path is `from`.
    #[serde(default)]
    pub bounce_domain: Option<String>,
    /// HMAC key for unsubscribe tokens.
    #[serde(default)]
    pub unsubscribe_secret: Option<Secret>,
    /// The key from a file.
    #[serde(default)]
    pub unsubscribe_secret_file: Option<PathBuf>,
    /// Messages in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Optional cap, messages per second.
    #[serde(default)]
    pub max_per_second: Option<u32>,
    /// Recipients per ledger transaction.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Allow plain SMTP to a non-loopback host.
    #[serde(default)]
    pub allow_insecure: bool,
}

fn default_list() -> String {
    "all".into()
}
fn default_concurrency() -> usize {
    8
}
fn default_batch() -> usize {
    500
}

/// `type = "email_api"` (Postmark batch).
#[derive(Debug, Clone, Deserialize)]
pub struct EmailApiConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// API host.
    #[serde(default = "default_postmark")]
    pub api_base: String,
    /// `X-Postmark-Server-Token`.
    #[serde(default)]
    pub server_token: Option<Secret>,
    /// The token from a file.
    #[serde(default)]
    pub server_token_file: Option<PathBuf>,
    /// Sender.
    pub from: String,
    /// Optional Reply-To.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Postmark message stream (broadcast stream for newsletters).
    #[serde(default = "default_stream")]
    pub message_stream: String,
    /// Which subscriber list.
    #[serde(default = "default_list")]
    pub subscribers: String,
    /// Base of one-click unsubscribe links.
    pub unsubscribe_base_url: String,
    /// HMAC key for unsubscribe tokens.
    #[serde(default)]
    pub unsubscribe_secret: Option<Secret>,
    /// The key from a file.
    #[serde(default)]
    pub unsubscribe_secret_file: Option<PathBuf>,
    /// Batch calls in flight.
    #[serde(default = "default_api_concurrency")]
    pub concurrency: usize,
}

fn default_postmark() -> String {
    "https://api.postmarkapp.com".into()
}
fn default_stream() -> String {
    "broadcast".into()
}
fn default_api_concurrency() -> usize {
    2
}

/// Substack publishing mode.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SubstackMode {
    /// Create the draft and publish it.
    #[default]
    Publish,
    /// Create the draft only; the author publishes by hand.
    Draft,
}

/// `type = "substack"`
#[derive(Debug, Clone, Deserialize)]
pub struct SubstackConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// The publication's root, e.g. `https://yourpub.substack.com`.
    pub api_base: String,
    /// The session cookie: its value (sent as `cookie_name`, or as both `connect.sid` and
    /// `substack.sid`), or a whole `name=value; …` cookie string.
    #[serde(default)]
    pub cookie: Option<Secret>,
    /// The cookie's name: `connect.sid` (current sessions) or `substack.sid` (older accounts).
    #[serde(default)]
    pub cookie_name: Option<String>,
    /// The `User-Agent` sent; Substack is reported to refuse non-browser ones.
    #[serde(default = "default_substack_ua")]
    pub user_agent: String,
    /// Where the author's user id is read when `user_id` is not set.
    #[serde(default = "default_substack_profile")]
    pub profile_url: String,
    /// The cookie from a file.
    #[serde(default)]
    pub cookie_file: Option<PathBuf>,
    /// `publish` or `draft`.
    #[serde(default)]
    pub mode: SubstackMode,
    /// `everyone`, `only_paid`, `founding`, `only_free`.
    #[serde(default = "default_audience")]
    pub audience: String,
    /// Email Substack's own subscribers on publish.
    #[serde(default)]
    pub send_email: bool,
    /// The author's Substack user id, for the byline (read from `profile_url` when unset).
    #[serde(default)]
    pub user_id: Option<u64>,
    /// The largest draft request body (bytes) the preflight lets through. Substack documents no
    /// limit, so this is a setting: the default is an assumption, not a published figure.
    #[serde(default = "default_substack_max_body")]
    pub max_body_bytes: usize,
}

/// The default for `max_body_bytes`: 5 MB (unverified; Substack publishes no figure).
pub const SUBSTACK_DEFAULT_MAX_BODY: usize = 5_000_000;

fn default_substack_max_body() -> usize {
    SUBSTACK_DEFAULT_MAX_BODY
}

/// A current desktop browser's User-Agent: Substack is reported to 403 non-browser ones.
pub const SUBSTACK_DEFAULT_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36";

fn default_substack_ua() -> String {
    SUBSTACK_DEFAULT_UA.into()
}
fn default_substack_profile() -> String {
    "https://substack.com/api/v1/user/profile/self".into()
}

fn default_audience() -> String {
    "everyone".into()
}

/// `type = "linkedin"`
#[derive(Debug, Clone, Deserialize)]
pub struct LinkedinConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// API host.
    #[serde(default = "default_linkedin")]
    pub api_base: String,
    /// OAuth access token (60 days).
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// The token from a file.
    #[serde(default)]
    pub access_token_file: Option<PathBuf>,
    /// When the token expires (RFC 3339); `check` and `status` warn 7 days ahead.
    #[serde(default)]
    pub token_expires_at: Option<String>,
    /// The LinkedIn app's client id, for `herald connect` and refreshing.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The app's client secret.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// The client secret from a file.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// `urn:li:person:…` or `urn:li:organization:…`.
    pub author: String,
    /// `LinkedIn-Version` header, YYYYMM.
    #[serde(default = "default_li_version")]
    pub linkedin_version: String,
}

fn default_linkedin() -> String {
    "https://api.linkedin.com".into()
}
fn default_li_version() -> String {
    "202610".into()
}

/// X authentication flavour.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum XAuth {
    /// OAuth 2.0 user token, refreshed with the refresh token.
    #[default]
    Oauth2,
    /// OAuth 1.0a user context, HMAC-SHA1 signed.
    Oauth1,
}

/// `type = "x"`
#[derive(Debug, Clone, Deserialize)]
pub struct XConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// Post options.
    #[serde(flatten)]
    pub post: PostOptions,
    /// API host.
    #[serde(default = "default_x")]
    pub api_base: String,
    /// `oauth2` or `oauth1`.
    #[serde(default)]
    pub auth: XAuth,
    /// The account's numeric user id (for reconciliation reads).
    #[serde(default)]
    pub user_id: Option<String>,
    /// OAuth 2.0 client id (refresh).
    #[serde(default)]
    pub client_id: Option<String>,
    /// OAuth 2.0 client secret, for a confidential client ("Web App, Automated App or bot"):
    /// sent as HTTP Basic auth to the token endpoint.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// The client secret from a file.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// OAuth 2.0 access token.
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// The token from a file.
    #[serde(default)]
    pub access_token_file: Option<PathBuf>,
    /// OAuth 2.0 refresh token.
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    /// The refresh token from a file.
    #[serde(default)]
    pub refresh_token_file: Option<PathBuf>,
    /// OAuth 1.0a consumer key.
    #[serde(default)]
    pub consumer_key: Option<Secret>,
    /// OAuth 1.0a consumer secret.
    #[serde(default)]
    pub consumer_secret: Option<Secret>,
    /// OAuth 1.0a access token secret.
    #[serde(default)]
    pub access_token_secret: Option<Secret>,
    /// What a thread does when X refuses a reply (the 2026 "summon" rule): `stop` or `link`.
    #[serde(default)]
    pub thread_fallback: ThreadFallback,
}

/// What an X thread does when X refuses to post a part as a reply.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ThreadFallback {
    /// Stop: the parts already up stay, the delivery ends `forbidden` naming them.
    #[default]
    Stop,
    /// Post the rest as one standalone post carrying the issue's link.
    Link,
}

fn default_x() -> String {
    "https://api.x.com".into()
}

/// `type = "bluesky"`
#[derive(Debug, Clone, Deserialize)]
pub struct BlueskyConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// Post options.
    #[serde(flatten)]
    pub post: PostOptions,
    /// The PDS host.
    #[serde(default = "default_bsky")]
    pub api_base: String,
    /// Handle, email or DID.
    pub identifier: String,
    /// App password.
    #[serde(default)]
    pub app_password: Option<Secret>,
    /// The app password from a file.
    #[serde(default)]
    pub app_password_file: Option<PathBuf>,
}

fn default_bsky() -> String {
    "https://bsky.social".into()
}

/// `type = "mastodon"`
#[derive(Debug, Clone, Deserialize)]
pub struct MastodonConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// Post options.
    #[serde(flatten)]
    pub post: PostOptions,
    /// The instance, e.g. `https://mastodon.social`.
    #[serde(default = "default_mastodon")]
    pub api_base: String,
    /// Access token with `write:statuses`.
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// The token from a file.
    #[serde(default)]
    pub access_token_file: Option<PathBuf>,
    /// `public`, `unlisted`, `private`, `direct`.
    #[serde(default = "default_visibility")]
    pub visibility: String,
    /// The instance's limit, if it differs from 500 (`configuration.statuses.max_characters`
    /// of `GET /api/v2/instance`; `check --credentials` compares the two).
    #[serde(default)]
    pub max_characters: Option<usize>,
}

fn default_mastodon() -> String {
    "https://mastodon.social".into()
}
fn default_visibility() -> String {
    "public".into()
}

/// `type = "threads"`
#[derive(Debug, Clone, Deserialize)]
pub struct ThreadsConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// Post options.
    #[serde(flatten)]
    pub post: PostOptions,
    /// Graph host.
    #[serde(default = "default_threads")]
    pub api_base: String,
    /// Threads user id (or `me`).
    #[serde(default = "default_me")]
    pub user_id: String,
    /// Long-lived access token (60 days).
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// The token from a file.
    #[serde(default)]
    pub access_token_file: Option<PathBuf>,
    /// The Threads app id (Meta developer portal), for `herald connect`.
    #[serde(default)]
    pub app_id: Option<String>,
    /// The Threads app secret, for `herald connect`.
    #[serde(default)]
    pub app_secret: Option<Secret>,
    /// The app secret from a file.
    #[serde(default)]
    pub app_secret_file: Option<PathBuf>,
    /// Unique links allowed in one post (Meta documents 5; failures from 4 are reported).
    #[serde(default = "default_threads_links")]
    pub max_links: usize,
}

fn default_threads_links() -> usize {
    crate::render::count::THREADS_MAX_LINKS
}

fn default_threads() -> String {
    "https://graph.threads.net".into()
}
fn default_me() -> String {
    "me".into()
}

/// `type = "webhook"`
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// Target URL.
    pub url: String,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// HMAC-SHA256 key; the signature goes in `X-Herald-Signature: sha256=<hex>`.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// The key from a file.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

/// `type = "exec"`
#[derive(Debug, Clone, Deserialize)]
pub struct ExecConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// Program and arguments.
    pub command: Vec<String>,
    /// Environment variables passed on to the plugin, by name. Its environment is otherwise
    /// cleared to `PATH`, `HOME`, `LANG` and the `HERALD_*` delivery variables.
    #[serde(default)]
    pub env: Vec<String>,
    /// Run the plugin for real under `publish --sandbox`; without it the channel is skipped there.
    #[serde(default)]
    pub run_in_sandbox: bool,
    /// Optional reconciliation program: it gets the delivery's variables, like `command`, and
    /// prints the earlier post's JSON receipt, or `absent`.
    #[serde(default)]
    pub check_command: Option<Vec<String>>,
}
