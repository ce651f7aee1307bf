//! The one credential preflight every trigger goes through: `herald publish` and `republish`
//! run it before storing anything (and refuse, exit 2), and the Deliver job runs it before any
//! call, so cron fires, `publish_at`, the sweeper and `herald retry` meet it too. A channel whose
//! credential is missing or expired ends `needs_auth` with the fix in its message; the other
//! channels go on.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Pipeline;
use crate::channel::{Adapter, DeliveryError};
use crate::config::ChannelConfig;
use crate::render::engine::RenderedChannel;

/// What Herald knows about a channel's credential without calling the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialStatus {
    /// Nothing known against it.
    Ok,
    /// There is none (a credential store without a row for it, say); `fix` says what to do.
    Missing {
        /// The command or setting that fixes it.
        fix: String,
    },
    /// It expired; `fix` says how to renew it.
    Expired {
        /// The command or setting that fixes it.
        fix: String,
    },
}

/// The expiry check for channel `name`, at `now`. Today this reads the expiry the config gives
/// (LinkedIn's `token_expires_at`); a credential store adds its own rows here.
pub fn credential_status(name: &str, cfg: &ChannelConfig, now: DateTime<Utc>) -> CredentialStatus {
    match cfg {
        ChannelConfig::Linkedin(li) => {
            let Some(at) = li.token_expires_at.as_deref().and_then(parse_instant) else {
                return CredentialStatus::Ok;
            };
            if at > now {
                return CredentialStatus::Ok;
            }
            let fix = crate::channel::linkedin::token_expiry_warning(li, now)
                .unwrap_or_else(|| "the LinkedIn access token expired: re-authorise the app and update the token and token_expires_at".into());
            CredentialStatus::Expired { fix: format!("channel {name}: {fix}") }
        }
        _ => CredentialStatus::Ok,
    }
}

/// An RFC 3339 instant, or a plain date (midnight UTC), as `token_expires_at` accepts.
fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.to_utc());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc())
}

/// The status as a `needs_auth` error, or `Ok`.
pub fn require(name: &str, cfg: &ChannelConfig, now: DateTime<Utc>) -> Result<(), DeliveryError> {
    match credential_status(name, cfg, now) {
        CredentialStatus::Ok => Ok(()),
        CredentialStatus::Missing { fix } => Err(DeliveryError::auth(format!("the credential is missing; nothing was sent: {fix}"))),
        CredentialStatus::Expired { fix } => Err(DeliveryError::auth(format!("the credential has expired; nothing was sent: {fix}"))),
    }
}

/// For the CLI triggers (`publish`, `republish`): the one preflight, run before anything about
/// the issue is stored. Each channel's adapter is built once, with the credential store (its
/// secrets resolve, named, never printed); its credential has not expired; a stored credential
/// opens with the key; and the rendering fits what the remote surely accepts (an SMTP server's
/// `SIZE`, Substack's body cap). One line per problem; the caller exits 2.
pub async fn check_renderings(p: &Pipeline, rendered: &[RenderedChannel], now: DateTime<Utc>) -> Vec<String> {
    let mut problems = Vec::new();
    for rc in rendered {
        let Some(c) = p.config.config.channels.get(&rc.channel) else { continue };
        match crate::channel::build_adapter(&rc.channel, c, &p.build_ctx(&rc.channel)) {
            Err(e) => problems.push(format!("{e:#}")),
            Ok(adapter) => {
                if let Err(e) = require(&rc.channel, c, now) {
                    problems.push(e.message().to_string());
                } else if let Err(e) = adapter.preflight(&rc.rendering).await {
                    problems.push(e.to_string());
                }
            }
        }
    }
    let names: Vec<String> = rendered.iter().map(|r| r.channel.clone()).collect();
    problems.extend(crate::credentials::preflight(&p.vault, &p.config, &names).await);
    problems
}

/// For the Deliver job: the channel's adapter, once its credential passed the preflight.
pub fn adapter_for(p: &Pipeline, channel: &str, now: DateTime<Utc>) -> Result<Arc<dyn Adapter>, DeliveryError> {
    if let Some(c) = p.config.config.channels.get(channel) {
        require(channel, c, now)?;
    }
    // Building the adapter resolves its secrets: one that is missing names what to set.
    p.adapter(channel).map_err(|e| match e.kind() {
        crate::channel::Kind::Auth => {
            DeliveryError::auth(format!("the credential is missing; nothing was sent: {}; then `herald retry` sends it", e.message()))
        }
        _ => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linkedin(expires: &str) -> ChannelConfig {
        toml::from_str(&format!(
            "type = \"linkedin\"\nauthor = \"urn:li:person:abc\"\naccess_token = \"${{LI}}\"\ntoken_expires_at = \"{expires}\"\n"
        ))
        .expect("config")
    }

    #[test]
    fn an_expired_token_names_the_fix_and_a_live_one_passes() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z").unwrap().to_utc();
        assert_eq!(credential_status("li", &linkedin("2027-01-01T00:00:00Z"), now), CredentialStatus::Ok);
        let CredentialStatus::Expired { fix } = credential_status("li", &linkedin("2026-12-01"), now) else { panic!("expired") };
        assert!(fix.starts_with("channel li: ") && fix.contains("re-authorise"), "{fix}");
        let e = require("li", &linkedin("2026-12-06T09:59:59Z"), now).unwrap_err();
        assert_eq!(e.kind(), crate::channel::Kind::Auth);
        assert!(e.message().contains("expired") && e.message().contains("token_expires_at"), "{e}");
        let hook: ChannelConfig = toml::from_str("type = \"webhook\"\nurl = \"http://127.0.0.1:9/\"").unwrap();
        assert_eq!(credential_status("hook", &hook, now), CredentialStatus::Ok);
    }
}
