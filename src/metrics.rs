//! Prometheus metrics: one process-wide registry, encoded as text for `/metrics`.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `{channel, outcome}` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// Channel name.
    pub channel: String,
    /// sent, retrying, failed, unconfirmed, …
    pub outcome: String,
}

/// `{channel}` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabel {
    /// Channel name.
    pub channel: String,
}

/// `{schedule, result}` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FireLabel {
    /// Schedule name.
    pub schedule: String,
    /// fired, caught_up, skipped, duplicate.
    pub result: String,
}

/// `{kind, source}` labels of a bounce report.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BounceLabel {
    /// hard_bounce, soft_bounce, complaint, unsubscribe, mailto_unsubscribe, delayed, info.
    pub kind: String,
    /// smtp, postmark_webhook, imap, import, link.
    pub source: String,
}

/// Every metric Herald exports.
pub struct Metrics {
    registry: Registry,
    /// Deliveries that reached a state, by channel and state.
    pub deliveries: Family<Outcome, Counter>,
    /// Attempts, by channel and outcome.
    pub attempts: Family<Outcome, Counter>,
    /// Retries scheduled, by channel.
    pub retries: Family<ChannelLabel, Counter>,
    /// Attempt duration in seconds, by channel.
    pub attempt_seconds: Family<ChannelLabel, Histogram>,
    /// Deliveries not yet settled (queued, sending, retrying).
    pub queue_depth: Gauge,
    /// Email messages accepted by the SMTP server or ESP.
    pub emails_sent: Counter,
    /// Schedule fires, by schedule and result.
    pub fires: Family<FireLabel, Counter>,
    /// When each channel's credential expires, unix seconds.
    pub credential_expiry: Family<ChannelLabel, Gauge>,
    /// Bounce, complaint and unsubscribe reports recorded, by kind and source.
    pub bounces: Family<BounceLabel, Counter>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("herald");
        let deliveries = Family::<Outcome, Counter>::default();
        let attempts = Family::<Outcome, Counter>::default();
        let retries = Family::<ChannelLabel, Counter>::default();
        let attempt_seconds = Family::<ChannelLabel, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.01, 2.5, 10)));
        let queue_depth = Gauge::default();
        let emails_sent = Counter::default();
        let fires = Family::<FireLabel, Counter>::default();
        registry.register("deliveries", "Deliveries that reached a state", deliveries.clone());
        registry.register("attempts", "Delivery attempts by outcome", attempts.clone());
        registry.register("retries", "Retries scheduled", retries.clone());
        registry.register("attempt_duration_seconds", "Duration of one delivery attempt", attempt_seconds.clone());
        registry.register("queue_depth", "Deliveries not yet settled", queue_depth.clone());
        registry.register("email_messages", "Email messages accepted by the server", emails_sent.clone());
        registry.register("schedule_fires", "Schedule fires by result", fires.clone());
        let credential_expiry = Family::<ChannelLabel, Gauge>::default();
        registry.register("credential_expiry_timestamp_seconds", "When the channel's credential expires (unix seconds)", credential_expiry.clone());
        let bounces = Family::<BounceLabel, Counter>::default();
        registry.register("bounce_reports", "Bounce, complaint and unsubscribe reports recorded, by kind and source", bounces.clone());
        Self { registry, deliveries, attempts, retries, attempt_seconds, queue_depth, emails_sent, fires, credential_expiry, bounces }
    }

    /// Record one finished attempt.
    pub fn attempt(&self, channel: &str, outcome: &str, seconds: f64) {
        let o = Outcome { channel: channel.into(), outcome: outcome.into() };
        self.attempts.get_or_create(&o).inc();
        self.attempt_seconds.get_or_create(&ChannelLabel { channel: channel.into() }).observe(seconds);
    }

    /// Set when a channel's credential expires.
    pub fn credential_expiry(&self, channel: &str, unix_secs: i64) {
        self.credential_expiry.get_or_create(&ChannelLabel { channel: channel.into() }).set(unix_secs);
    }

    /// Count one bounce report.
    pub fn bounce(&self, kind: &str, source: &str) {
        self.bounces.get_or_create(&BounceLabel { kind: kind.into(), source: source.into() }).inc();
    }

    /// Record a delivery reaching a state.
    pub fn delivery(&self, channel: &str, state: &str) {
        self.deliveries.get_or_create(&Outcome { channel: channel.into(), outcome: state.into() }).inc();
    }

    /// The text exposition (OpenMetrics text, which Prometheus scrapes).
    pub fn encode(&self) -> String {
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}
