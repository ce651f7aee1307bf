//! What `herald credentials`, `status`, `check --credentials` and `/metrics` show of each
//! channel's credential: where it comes from, the account, the scopes and the expiry, never a
//! secret.

use serde::Serialize;

use super::connectable;
use crate::config::{ChannelConfig, LoadedConfig};
use crate::store::{Store, fmt_ms};

/// One channel's credential, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialView {
    /// Channel name.
    pub channel: String,
    /// Channel type.
    #[serde(rename = "type")]
    pub channel_type: String,
    /// `store (connect)`, `store (refresh)`, `store (config)`, `config` or `none`.
    pub source: String,
    /// User id, person URN, DID, handle.
    pub account: Option<String>,
    /// Granted scopes.
    pub scopes: Option<String>,
    /// Access token expiry (RFC 3339), when known.
    pub expires_at: Option<String>,
    /// Unix seconds of the same.
    #[serde(skip)]
    pub expires_ts: Option<i64>,
    /// Whole days left (negative once expired).
    pub days_left: Option<i64>,
    /// `ok`, `needs_auth`, `expiring`, `expired` or `missing`.
    pub status: String,
    /// What to do, when something needs doing.
    pub note: Option<String>,
}

fn account_in_config(c: &ChannelConfig) -> Option<String> {
    match c {
        ChannelConfig::X(x) => x.user_id.clone(),
        ChannelConfig::Linkedin(l) => Some(l.author.clone()),
        ChannelConfig::Threads(t) => Some(t.user_id.clone()),
        ChannelConfig::Bluesky(b) => Some(b.identifier.clone()),
        ChannelConfig::Substack(s) => s.user_id.map(|u| u.to_string()),
        _ => None,
    }
}

/// Does Herald renew this type's token by itself (given a stored credential)?
fn renews_itself(ty: &str, has_refresh: bool) -> bool {
    ty == "threads" || has_refresh
}

/// The credential of every enabled channel that has one to show, at `now_ms`.
pub async fn views(cfg: &LoadedConfig, store: &Store, now_ms: i64) -> anyhow::Result<Vec<CredentialView>> {
    let rows = store.credentials().await?;
    let warn_ms = i64::from(cfg.config.credentials.warn_days) * 86_400_000;
    let mut out = Vec::new();
    for (name, c) in cfg.config.channels.iter().filter(|(_, c)| c.common().enabled) {
        let Some((_, in_config)) = connectable(c) else { continue };
        let row = rows.iter().find(|r| &r.channel == name);
        let (source, account, scopes, expires, mut status, mut note, refreshable) = match row {
            Some(r) => (
                format!("store ({})", r.source),
                r.account.clone().or_else(|| account_in_config(c)),
                r.scopes.clone(),
                r.expires_at,
                r.status.clone(),
                r.status_detail.clone().map(|d| format!("{d}; {}", super::connect_hint(name))),
                renews_itself(c.type_name(), r.scopes.as_deref().is_some_and(|s| s.contains("offline.access")) || r.source == "refresh"),
            ),
            None => {
                let expires = match c {
                    ChannelConfig::Linkedin(l) => l
                        .token_expires_at
                        .as_deref()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t.trim()).ok())
                        .map(|t| t.timestamp_millis()),
                    _ => None,
                };
                let (status, note) = if in_config {
                    ("ok".to_string(), None)
                } else {
                    ("missing".to_string(), Some(format!("no credential: run `herald connect {name}`")))
                };
                (if in_config { "config".into() } else { "none".into() }, account_in_config(c), None, expires, status, note, false)
            }
        };
        let days_left = expires.map(|e| (e - now_ms).div_euclid(86_400_000));
        if status == "ok"
            && let Some(e) = expires
        {
            // X access tokens last two hours and are renewed with the refresh token: their
            // expiry is no warning. Others are, unless Herald renews them by itself.
            let short_lived = c.type_name() == "x" && refreshable;
            if e <= now_ms && !short_lived {
                status = "expired".into();
                note = Some(format!("expired on {}: run `herald connect {name}`", fmt_ms(e)));
            } else if e - now_ms <= warn_ms && !short_lived {
                status = "expiring".into();
                note = Some(if renews_itself(c.type_name(), refreshable) && row.is_some() {
                    format!("expires on {}; Herald renews it before then", fmt_ms(e))
                } else {
                    format!("expires on {}: run `herald connect {name}` before then", fmt_ms(e))
                });
            }
        }
        out.push(CredentialView {
            channel: name.clone(),
            channel_type: c.type_name().to_string(),
            source,
            account,
            scopes,
            expires_at: expires.map(fmt_ms),
            expires_ts: expires.map(|e| e.div_euclid(1000)),
            days_left,
            status,
            note,
        });
    }
    Ok(out)
}

/// The views as an aligned table.
pub fn table(views: &[CredentialView]) -> String {
    let mut rows: Vec<[String; 7]> =
        vec![["CHANNEL".into(), "TYPE".into(), "SOURCE".into(), "ACCOUNT".into(), "EXPIRES".into(), "DAYS LEFT".into(), "STATUS".into()]];
    for v in views {
        rows.push([
            v.channel.clone(),
            v.channel_type.clone(),
            v.source.clone(),
            v.account.clone().unwrap_or_else(|| "-".into()),
            v.expires_at.clone().unwrap_or_else(|| "-".into()),
            v.days_left.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
            v.status.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..6).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in &rows {
        for (i, w) in widths.iter().enumerate() {
            out.push_str(&format!("{:<w$}  ", r[i], w = *w));
        }
        out.push_str(&r[6]);
        out.push('\n');
    }
    for v in views {
        if let Some(n) = &v.note {
            out.push_str(&format!("  {}: {n}\n", v.channel));
        }
    }
    out
}

/// Set `herald_credential_expiry_timestamp_seconds{channel}` for every credential with an expiry.
pub fn export(views: &[CredentialView]) {
    for v in views {
        if let Some(ts) = v.expires_ts {
            crate::metrics::global().credential_expiry(&v.channel, ts);
        }
    }
}
