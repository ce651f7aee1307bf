//! The sandbox's email side: a loopback SMTP server for `email` channels, the Postmark fake for
//! `email_api` channels, and a few sample subscribers so a rehearsal mails someone.

use std::path::{Path, PathBuf};

use super::postmark::{self, PostmarkFake};
use super::smtp::SmtpServer;
use crate::config::{EmailApiConfig, EmailConfig};
use crate::store::Store;
use crate::store::email::SubscriberUpsert;

/// Sample subscribers seeded into a sandbox store (name, address, a custom column).
pub const SAMPLE_SUBSCRIBERS: &[(&str, &str, &str)] =
    &[("Ana Lima", "ana@example.com", "Lisbon"), ("Ben Okafor", "ben@example.org", "Lagos"), ("Chen Wei", "chen@example.net", "Taipei")];

/// The unsubscribe key the sandbox gives email channels.
const UNSUB_SECRET: &str = "sandbox-unsubscribe-secret-0123456789abcdef";

/// A running email fake for one channel.
pub enum EmailFake {
    /// An SMTP server on loopback.
    Smtp(SmtpServer, String),
    /// The Postmark batch API fake.
    Postmark(PostmarkFake, String),
}

impl EmailFake {
    /// Start an SMTP server for `email` channel `name` and point the channel at it.
    pub async fn start_smtp(name: &str, e: &mut EmailConfig, dir: &Path) -> anyhow::Result<Self> {
        let ctx = super::wiring::SandboxCtx { name, dir };
        let s = SmtpServer::start().await?;
        e.smtp_url = s.url();
        e.unsubscribe_secret = ctx.secret("unsubscribe_secret", UNSUB_SECRET)?;
        e.unsubscribe_secret_file = None;
        Ok(Self::Smtp(s, e.subscribers.clone()))
    }

    /// Start the Postmark fake for `email_api` channel `name` and point the channel at it.
    pub async fn start_postmark(name: &str, e: &mut EmailApiConfig, dir: &Path) -> anyhow::Result<Self> {
        let ctx = super::wiring::SandboxCtx { name, dir };
        let f = PostmarkFake::start().await?;
        e.api_base = f.base_url.clone();
        e.server_token = ctx.secret("server_token", postmark::TOKEN)?;
        e.server_token_file = None;
        e.unsubscribe_secret = ctx.secret("unsubscribe_secret", UNSUB_SECRET)?;
        e.unsubscribe_secret_file = None;
        Ok(Self::Postmark(f, e.subscribers.clone()))
    }

    /// Seed the sample subscribers into the channel's list (only into an empty sandbox store).
    pub async fn seed(&self, _name: &str, store: &Store) -> anyhow::Result<()> {
        let list = match self {
            Self::Smtp(_, l) | Self::Postmark(_, l) => l,
        };
        let rows: Vec<SubscriberUpsert> = SAMPLE_SUBSCRIBERS
            .iter()
            .map(|(n, e, city)| SubscriberUpsert { email: e.to_string(), name: n.to_string(), extra_json: serde_json::json!({ "city": city }).to_string() })
            .collect();
        store.upsert_subscribers(list, &rows).await
    }

    /// Write what the fake received under `<dir>/<name>/`: one `.eml` per SMTP message, or a
    /// JSON file of Postmark messages. Returns (count, path).
    pub fn write_messages(&self, dir: &Path, name: &str) -> anyhow::Result<(usize, PathBuf)> {
        match self {
            Self::Smtp(s, _) => {
                let out = dir.join(name);
                std::fs::create_dir_all(&out)?;
                let msgs = s.messages();
                for m in &msgs {
                    let to = m.rcpt_to.first().map(String::as_str).unwrap_or("unknown").replace(['/', '\\'], "_");
                    std::fs::write(out.join(format!("{:03}-{to}.eml", m.id)), &m.data)?;
                }
                Ok((msgs.len(), out))
            }
            Self::Postmark(f, _) => {
                let out = dir.join(format!("{name}.json"));
                let msgs: Vec<serde_json::Value> = f
                    .accepted()
                    .iter()
                    .map(|a| serde_json::json!({"id": a.id, "to": a.message.to, "subject": a.message.subject, "text": a.message.text_body, "html": a.message.html_body}))
                    .collect();
                std::fs::write(&out, serde_json::to_string_pretty(&msgs)?)?;
                Ok((msgs.len(), out))
            }
        }
    }
}
