//! The credential store: tokens Herald obtained (`herald connect`) or rotated (a refresh), kept
//! in the store's `credentials` table, sealed with XChaCha20-Poly1305.
//!
//! The key is 32 random bytes given like any other secret: `${HERALD_SECRET_KEY}` by default,
//! or `[credentials] key = "${…}"` / `key_file = "…"`, as base64 or hex. It is never printed.
//! Each row's secrets are one JSON object, sealed with a fresh random nonce and the channel's
//! name as associated data (a row copied onto another channel does not open).
//!
//! A stored credential wins over the config's secrets once it exists. A refresh runs under the
//! row's lease ([`Vault::refresh`]): the new secrets are committed before they are used, the
//! lease is taken and the "refresh started" marker set before the request leaves, so a run that
//! died between the network's answer and the commit is recognised by the next one, which then
//! says which command fixes it instead of looping.

pub mod view;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

use crate::channel::DeliveryError;
use crate::config::{ChannelConfig, LoadedConfig, Secret, SecretString, XAuth, pick_secret};
use crate::store::credentials::{CredentialRow, CredentialWrite};
use crate::store::lease::{ProcessId, owner_is_dead_here};
use crate::store::{Store, now_ms};

/// The environment variable read when the config names no key.
pub const KEY_ENV: &str = "HERALD_SECRET_KEY";

/// How to make a key, for messages.
pub const KEY_HINT: &str = "32 random bytes as base64 or hex, e.g. `openssl rand -base64 32`";

/// How long a refresh may hold a row's lease.
const REFRESH_LEASE: Duration = Duration::from_secs(60);

/// The sealing key. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Key(chacha20poly1305::Key);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key([redacted])")
    }
}

impl Key {
    /// Parse 32 bytes given as base64 (standard or URL-safe, padded or not) or 64 hex digits.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(t).ok()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(t)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(t))
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(t))
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t))
                .ok()
        };
        match bytes {
            Some(b) if b.len() == 32 => Ok(Key(*chacha20poly1305::Key::from_slice(&b))),
            Some(b) => Err(format!("the key decodes to {} bytes, not 32 ({KEY_HINT})", b.len())),
            None => Err(format!("the key is neither base64 nor hex ({KEY_HINT})")),
        }
    }

    fn aad(channel: &str) -> Vec<u8> {
        format!("herald-credential:v1:{channel}").into_bytes()
    }

    /// Seal `secrets` for `channel`: `v1:` + base64(nonce ‖ ciphertext).
    pub fn seal(&self, channel: &str, secrets: &Secrets) -> Result<String, String> {
        let plain = serde_json::to_vec(&secrets.0).map_err(|e| format!("cannot encode the credential: {e}"))?;
        let mut nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new(&self.0);
        let aad = Self::aad(channel);
        let ct = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: &plain, aad: &aad })
            .map_err(|_| "cannot seal the credential".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(format!("v1:{}", base64::engine::general_purpose::STANDARD.encode(out)))
    }

    /// Open what [`Key::seal`] made. `None`: not sealed with this key for this channel.
    pub fn open(&self, channel: &str, sealed: &str) -> Option<Secrets> {
        let raw = base64::engine::general_purpose::STANDARD.decode(sealed.strip_prefix("v1:")?).ok()?;
        if raw.len() < 24 {
            return None;
        }
        let (nonce, ct) = raw.split_at(24);
        let aad = Self::aad(channel);
        let plain = XChaCha20Poly1305::new(&self.0).decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad }).ok()?;
        serde_json::from_slice(&plain).ok().map(Secrets)
    }
}

/// A channel's secrets by name (`access_token`, `refresh_token`, `app_password`, `cookie`,
/// `client_secret`, …). `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secrets(pub BTreeMap<String, String>);

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({:?})", self.0.keys().collect::<Vec<_>>())
    }
}

impl Secrets {
    /// One secret.
    pub fn get(&self, name: &str) -> Option<SecretString> {
        self.0.get(name).filter(|v| !v.is_empty()).map(|v| SecretString::new(v.clone()))
    }
    /// Set one secret.
    pub fn set(&mut self, name: &str, value: &SecretString) {
        self.0.insert(name.to_string(), value.expose().to_string());
    }
    /// With one more secret.
    pub fn with(mut self, name: &str, value: &SecretString) -> Self {
        self.set(name, value);
        self
    }
}

/// A stored credential, opened.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The row (facts safe to print).
    pub row: CredentialRow,
    /// Its secrets.
    pub secrets: Secrets,
}

impl Loaded {
    /// A fact from the row's `meta`.
    pub fn meta(&self, key: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(self.row.meta.as_deref()?).ok()?;
        v.get(key)?.as_str().map(String::from)
    }
}

/// What a token request came to.
#[derive(Debug)]
pub enum Renewal {
    /// New secrets (the full set, rotated refresh token included), their expiry and scopes.
    Renewed {
        /// Every secret of the channel after the renewal.
        secrets: Secrets,
        /// Access token expiry, unix ms.
        expires_at: Option<i64>,
        /// Scopes granted, if the answer says.
        scopes: Option<String>,
    },
    /// The network refused the refresh credential: it is spent, revoked or expired.
    Refused(String),
    /// Anything else; `maybe_sent`: the request may have reached the network (no answer).
    Failed {
        /// The error to report.
        error: DeliveryError,
        /// The token may have been spent.
        maybe_sent: bool,
    },
}

/// The fix for a credential that no longer works.
pub fn connect_hint(channel: &str) -> String {
    format!("run `herald connect {channel}` then `herald retry`")
}

/// The credential store of one Herald store, with the key (or why there is none).
#[derive(Clone)]
pub struct Vault {
    store: Store,
    key: Result<Key, String>,
    renew_days: u32,
    /// The stored credentials as [`Vault::preload`] read them, for building adapters (which is
    /// synchronous): channel → opened credential, or why it does not open.
    snapshot: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Result<Loaded, String>>>>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault").field("store", &self.store.url().display()).field("key", &self.key.as_ref().map(|_| "[redacted]")).finish()
    }
}

/// Resolve the sealing key from the config (`[credentials] key`/`key_file`, else
/// `${HERALD_SECRET_KEY}`), with an environment lookup. The error names the source, never a value.
pub fn resolve_key(cfg: &LoadedConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Key, String> {
    let c = &cfg.config.credentials;
    let secret = match pick_secret(&c.key, &c.key_file) {
        Some(Secret::File(p)) => Secret::File(cfg.resolve_path(&p)),
        Some(s) => s,
        None => Secret::Env(KEY_ENV.into()),
    };
    let label = secret.label();
    let value = secret.resolve_with(env).map_err(|e| format!("the credential store's key ({label}): {e}"))?;
    Key::parse(value.expose()).map_err(|e| format!("the credential store's key ({label}): {e}"))
}

impl Vault {
    /// A vault on `store` with `key` (or the reason there is none, reported when a secret must
    /// be sealed or opened).
    pub fn new(store: Store, key: Result<Key, String>) -> Self {
        Self { store, key, renew_days: 7, snapshot: Default::default() }
    }

    /// A vault with the key the config names, read from the process environment.
    pub fn from_config(store: Store, cfg: &LoadedConfig) -> Self {
        let mut v = Self::new(store, resolve_key(cfg, &|k| std::env::var(k).ok()));
        v.renew_days = cfg.config.credentials.renew_days;
        v
    }

    /// Read and open every stored credential that is in use (not `needs_auth`), for
    /// [`Vault::stored`]. A credential that does not open is kept as its error.
    pub async fn preload(&self) -> anyhow::Result<()> {
        let rows = self.store.credentials().await?;
        let mut snap = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        snap.clear();
        for row in rows.into_iter().filter(|r| r.status == "ok") {
            let channel = row.channel.clone();
            snap.insert(channel, self.open(row));
        }
        Ok(())
    }

    /// The stored credential of `channel` as preloaded: `None` when there is none.
    pub fn stored(&self, channel: &str) -> Option<Result<Loaded, String>> {
        self.snapshot.lock().unwrap_or_else(|e| e.into_inner()).get(channel).cloned()
    }

    /// Renew a renewable token when it has fewer days left than this (`[credentials] renew_days`).
    pub fn renew_days(&self) -> u32 {
        self.renew_days
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The key, or a message naming how to give one.
    pub fn key(&self) -> Result<&Key, String> {
        self.key.as_ref().map_err(|e| format!("{e}; the credential store needs it ({KEY_HINT})"))
    }

    /// Open a row; the error says whether the key is missing or is not the one it was sealed with.
    pub fn open(&self, row: CredentialRow) -> Result<Loaded, String> {
        let key = self.key().map_err(|e| format!("channel {}: has a stored credential, but {e}", row.channel))?;
        let secrets = key.open(&row.channel, &row.sealed).ok_or_else(|| {
            format!(
                "channel {}: the stored credential does not open with this key: the credential store's key is not the one it was written with (give the original key, or {})",
                row.channel,
                connect_hint(&row.channel)
            )
        })?;
        Ok(Loaded { row, secrets })
    }

    /// Seal for `channel`.
    pub fn seal(&self, channel: &str, secrets: &Secrets) -> Result<String, String> {
        self.key()?.seal(channel, secrets)
    }

    /// The stored credential of `channel`, opened; `None` when there is none. A credential that
    /// needs re-authorisation is an auth error naming the command that fixes it.
    pub async fn load(&self, channel: &str) -> Result<Option<Loaded>, DeliveryError> {
        let row = self.store.credential(channel).await.map_err(|e| DeliveryError::retryable(format!("cannot read the credential store: {e:#}")))?;
        let Some(row) = row else { return Ok(None) };
        if row.status == "needs_auth" {
            return Err(needs_auth(channel, row.status_detail.as_deref().unwrap_or("the credential was refused")));
        }
        self.open(row).map(Some).map_err(DeliveryError::auth)
    }

    /// Check, without the network, that `channel`'s stored credential (if any) opens: for the
    /// preflight, which turns an error into exit 2.
    pub async fn check(&self, channel: &str) -> Result<(), String> {
        match self.store.credential(channel).await.map_err(|e| format!("cannot read the credential store: {e:#}"))? {
            None => Ok(()),
            Some(row) if row.status == "needs_auth" => Err(format!(
                "channel {channel}: the stored credential needs re-authorisation ({}); {}",
                row.status_detail.as_deref().unwrap_or("refused"),
                connect_hint(channel)
            )),
            Some(row) => self.open(row).map(|_| ()),
        }
    }

    /// Store a credential from `herald connect`, replacing any other.
    pub async fn put(&self, channel: &str, mut w: CredentialWrite, secrets: &Secrets) -> anyhow::Result<()> {
        w.sealed = self.seal(channel, secrets).map_err(|e| anyhow::anyhow!("{e}"))?;
        self.store.put_credential(channel, &w).await
    }

    /// Renew `channel`'s secrets under its lease.
    ///
    /// `seen`: the generation the caller used (`None` for the config's secrets). If the store
    /// already holds another generation, that one is returned without a request (another
    /// process renewed it, or the author connected again). With no row yet, `seed` (the
    /// config's secrets) is stored first as generation 0. Otherwise the lease is taken, the
    /// marker set, `renew` called with the current credential and, if an earlier refresh was
    /// interrupted, when it started; its answer is committed before it is returned.
    pub async fn refresh<F, Fut>(&self, channel: &str, seen: Option<i64>, seed: Option<(CredentialWrite, Secrets)>, renew: F) -> Result<Loaded, DeliveryError>
    where
        F: FnOnce(Loaded, Option<i64>) -> Fut,
        Fut: Future<Output = Renewal>,
    {
        let store_err = |e: anyhow::Error| DeliveryError::retryable(format!("cannot use the credential store: {e:#}"));
        let owner = ProcessId::current().owner();
        let give_up = now_ms() + 2 * REFRESH_LEASE.as_millis() as i64;
        let mut seed = seed;
        let mut renew = Some(renew);
        loop {
            let row = match self.store.credential(channel).await.map_err(store_err)? {
                Some(r) => r,
                None => {
                    let Some((mut w, secrets)) = seed.take() else {
                        return Err(needs_auth(channel, "there is no stored credential to renew"));
                    };
                    w.sealed = self.seal(channel, &secrets).map_err(DeliveryError::auth)?;
                    self.store.seed_credential(channel, &w).await.map_err(store_err)?;
                    continue;
                }
            };
            if row.status == "needs_auth" {
                return Err(needs_auth(channel, row.status_detail.as_deref().unwrap_or("the credential was refused")));
            }
            if row.generation != seen.unwrap_or(0) {
                tracing::info!(channel, generation = row.generation, "Using the credential another run stored.");
                return self.open(row).map_err(DeliveryError::auth);
            }
            let dead = row.lease_owner.clone().filter(|o| owner_is_dead_here(o));
            let until = now_ms() + REFRESH_LEASE.as_millis() as i64;
            if self.store.lease_credential(channel, row.generation, &owner, until, dead.as_deref()).await.map_err(store_err)? {
                let interrupted = row.refresh_started_at;
                let current = match self.open(row) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = self.store.release_credential(channel, &owner, interrupted.is_some()).await;
                        return Err(DeliveryError::auth(e));
                    }
                };
                let Some(renew) = renew.take() else { return Err(DeliveryError::retryable("refresh attempted twice")) };
                return self.finish(channel, &owner, interrupted, renew(current, interrupted).await).await;
            }
            if now_ms() > give_up {
                return Err(DeliveryError::retryable(format!("channel {channel}: another process has been renewing the credential for too long")));
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    async fn finish(&self, channel: &str, owner: &str, interrupted: Option<i64>, answer: Renewal) -> Result<Loaded, DeliveryError> {
        match answer {
            Renewal::Renewed { secrets, expires_at, scopes } => {
                let sealed = match self.seal(channel, &secrets) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = self.store.release_credential(channel, owner, true).await;
                        return Err(DeliveryError::auth(e));
                    }
                };
                let obtained = now_ms();
                match self.store.commit_credential_refresh(channel, &sealed, obtained, expires_at, scopes.as_deref()).await {
                    Ok(generation) => {
                        tracing::info!(channel, generation, "Credential renewed and stored.");
                        let row = self
                            .store
                            .credential(channel)
                            .await
                            .ok()
                            .flatten()
                            .ok_or_else(|| DeliveryError::retryable("the renewed credential vanished from the store"))?;
                        Ok(Loaded { row, secrets })
                    }
                    Err(e) => {
                        // The marker stays: the next run knows this refresh never committed.
                        let _ = self.store.release_credential(channel, owner, true).await;
                        Err(DeliveryError::retryable(format!("cannot store the renewed credential: {e:#}")))
                    }
                }
            }
            Renewal::Refused(why) => {
                let detail = match interrupted {
                    Some(at) => format!(
                        "an earlier refresh (started {}) ended before its answer was stored, so the stored refresh token was spent; the network now says: {why}",
                        crate::store::fmt_ms(at)
                    ),
                    None => why,
                };
                self.store.credential_needs_auth(channel, &detail).await.map_err(|e| DeliveryError::retryable(format!("{e:#}")))?;
                Err(needs_auth(channel, &detail))
            }
            Renewal::Failed { error, maybe_sent } => {
                let _ = self.store.release_credential(channel, owner, maybe_sent || interrupted.is_some()).await;
                Err(error)
            }
        }
    }
}

/// The secret a channel type can get from `herald connect`, and whether the config gives it.
/// `None`: the type has no stored credential (email, webhook, exec, X with OAuth 1.0a).
pub fn connectable(cfg: &ChannelConfig) -> Option<(&'static str, bool)> {
    Some(match cfg {
        ChannelConfig::X(c) if c.auth == XAuth::Oauth2 => ("access_token", pick_secret(&c.access_token, &c.access_token_file).is_some()),
        ChannelConfig::Linkedin(c) => ("access_token", pick_secret(&c.access_token, &c.access_token_file).is_some()),
        ChannelConfig::Threads(c) => ("access_token", pick_secret(&c.access_token, &c.access_token_file).is_some()),
        ChannelConfig::Mastodon(c) => ("access_token", pick_secret(&c.access_token, &c.access_token_file).is_some()),
        ChannelConfig::Bluesky(c) => ("app_password", pick_secret(&c.app_password, &c.app_password_file).is_some()),
        ChannelConfig::Substack(c) => ("cookie", pick_secret(&c.cookie, &c.cookie_file).is_some()),
        _ => return None,
    })
}

/// Before anything is stored or sent: every channel in `channels` that can hold a stored
/// credential has one that opens with the key, or a config secret; and an X channel that
/// rotates its refresh token has a key to keep it with. Returns one line per problem (the
/// caller exits 2).
pub async fn preflight(vault: &Vault, cfg: &LoadedConfig, channels: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for name in channels {
        let Some(c) = cfg.config.channels.get(name) else { continue };
        let Some((secret, in_config)) = connectable(c) else { continue };
        let row = match vault.store.credential(name).await {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("channel {name}: cannot read the credential store: {e:#}"));
                continue;
            }
        };
        let has_refresh = match row {
            Some(row) if row.status == "needs_auth" => {
                problems.push(format!(
                    "channel {name}: the stored credential needs re-authorisation ({}); {}",
                    row.status_detail.as_deref().unwrap_or("refused"),
                    connect_hint(name)
                ));
                continue;
            }
            Some(row) => match vault.open(row) {
                Ok(l) => l.secrets.get("refresh_token").is_some(),
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            },
            None if !in_config => {
                problems.push(format!(
                    "channel {name}: no credential: run `herald connect {name}`, or give `{secret} = \"${{ENV_VAR}}\"` (or `{secret}_file`) in the config"
                ));
                continue;
            }
            None => matches!(c, ChannelConfig::X(x) if pick_secret(&x.refresh_token, &x.refresh_token_file).is_some()),
        };
        if has_refresh
            && matches!(c, ChannelConfig::X(_))
            && let Err(e) = vault.key()
        {
            problems.push(format!(
                "channel {name}: X replaces the refresh token at every renewal and Herald must keep the new one, sealed: {e}"
            ));
        }
    }
    problems
}

/// The `needs_auth` error for `channel`, naming the command that fixes it.
pub fn needs_auth(channel: &str, detail: &str) -> DeliveryError {
    DeliveryError::auth(format!("{}: channel {channel}'s credential needs re-authorisation: {detail}", connect_hint(channel)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::parse(&base64::engine::general_purpose::STANDARD.encode([7u8; 32])).expect("key")
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_channel() {
        let s = Secrets::default().with("access_token", &SecretString::new("tok-123"));
        let sealed = key().seal("x", &s).expect("seal");
        assert!(!sealed.contains("tok-123"));
        assert_eq!(key().open("x", &sealed), Some(s.clone()));
        assert_eq!(key().open("other", &sealed), None, "the channel is bound in");
        let other = Key::parse(&"ab".repeat(32)).expect("hex key");
        assert_eq!(other.open("x", &sealed), None);
        // Two seals of one value differ (fresh nonce).
        assert_ne!(key().seal("x", &s).expect("seal"), sealed);
        assert!(!format!("{s:?}").contains("tok-123"));
    }

    #[test]
    fn keys_must_be_32_bytes() {
        assert!(Key::parse("short").is_err());
        assert!(Key::parse(&base64::engine::general_purpose::STANDARD.encode([1u8; 16])).unwrap_err().contains("16 bytes"));
        assert!(Key::parse(&"0f".repeat(32)).is_ok());
    }
}
