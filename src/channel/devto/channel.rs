//! `DevtoAdapter`: create the article once, remember its id, and after a lost answer find it
//! among the author's own articles before any retry.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ACCEPT_V1, DevtoConfig, article, preflight};
use crate::channel::{Adapter, DeliveryCtx, DeliveryError, Receipt, Reconciled, http};
use crate::config::SecretString;
use crate::render::Rendering;

/// Articles asked for per page when reconciling (Forem's default is 30, its cap 1000).
pub const LOOKUP_PER_PAGE: usize = 100;
/// Pages read at most: the newest 1,000 articles. An article Herald just posted is among the
/// newest (Forem lists by `published_at`, then `created_at`, newest first, drafts first).
pub const LOOKUP_PAGES: usize = 10;

/// What the checkpoint remembers between attempts.
#[derive(Debug, Default, Serialize, Deserialize)]
struct DevtoState {
    /// Forem's id of the article, once it answered 201 (or reconciliation found it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    /// Its URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// When the first POST went out; saved before it, so reconciliation knows one may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_post_at: Option<DateTime<Utc>>,
}

/// Delivers to one dev.to (Forem) account.
pub struct DevtoAdapter {
    name: String,
    base: String,
    cfg: DevtoConfig,
    key: SecretString,
    timeout: Duration,
}

impl DevtoAdapter {
    /// An adapter posting with `key` to `cfg.api_base`.
    pub fn new(name: &str, cfg: &DevtoConfig, key: SecretString, timeout: Duration) -> Self {
        Self { name: name.to_string(), base: cfg.api_base.trim_end_matches('/').to_string(), cfg: cfg.clone(), key, timeout }
    }

    /// The request body: `{"article": {...}}`, checked as Forem would check it.
    pub fn body(&self, rendering: &Rendering) -> Result<Value, DeliveryError> {
        let Rendering::Body(b) = rendering else {
            return Err(DeliveryError::permanent("devto: expected a body rendering (channels/devto/manifest.toml has kind = \"body\")"));
        };
        let a = article(&b.body, &self.cfg).map_err(|e| DeliveryError::permanent(format!("devto: {e}")))?;
        preflight(&a).map_err(|e| DeliveryError::permanent(format!("devto: {e}")))?;
        Ok(json!({ "article": a }))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        http::client()
            .request(method, format!("{}{path}", self.base))
            .timeout(self.timeout)
            .header("api-key", self.key.expose())
            .header(reqwest::header::ACCEPT, ACCEPT_V1)
    }

    /// `POST /api/articles`.
    async fn create(&self, body: &Value, ctx: &DeliveryCtx, state: &mut DevtoState) -> Result<Receipt, DeliveryError> {
        if state.first_post_at.is_none() {
            state.first_post_at = Some(Utc::now());
            ctx.save_state(state).await?;
        }
        let answer = http::send(self.request(reqwest::Method::POST, "/api/articles").json(body)).await?;
        if answer.status == 422 && answer.body.contains("Canonical url has already been taken") {
            // Forem keeps canonical URLs unique site-wide: an earlier attempt of ours landed
            // (its answer lost, the checkpoint not written), or someone else's article has it.
            return match self.lookup(&body["article"]).await? {
                Reconciled::Found(r) => {
                    state.id = r.remote_id.parse().ok();
                    state.url = r.url.clone();
                    ctx.save_state(state).await?;
                    Ok(r)
                }
                Reconciled::NotFound => Err(DeliveryError::permanent(format!(
                    "devto: another dev.to article (not this account's) already has the canonical URL {}; Forem allows one per URL",
                    body["article"]["canonical_url"].as_str().unwrap_or_default()
                ))
                .with_status(422)),
                Reconciled::CannotCheck(why) => Err(DeliveryError::permanent(format!("devto: Forem says the canonical URL is taken; {why}")).with_status(422)),
            };
        }
        if !answer.is_success() {
            return Err(classify(&answer));
        }
        let created: Created = answer
            .json()
            .map_err(|e| DeliveryError::unknown_outcome(format!("devto: {} with an unreadable body ({e})", answer.status)).with_status(answer.status))?;
        state.id = Some(created.id);
        state.url = created.url.clone();
        ctx.save_state(state).await?;
        tracing::info!(channel = %self.name, id = created.id, "dev.to article is up.");
        Ok(self.receipt(created.id, created.url, None))
    }

    fn receipt(&self, id: u64, url: Option<String>, note: Option<String>) -> Receipt {
        let draft = !self.cfg.published;
        let note = match (note, draft) {
            (n, false) => n,
            (Some(n), true) => Some(format!("{n}; a draft: publish it from the dev.to dashboard")),
            (None, true) => Some("a draft: publish it from the dev.to dashboard".into()),
        };
        Receipt { remote_id: id.to_string(), url, awaiting_confirmation: draft, note, warning: None }
    }

    /// Look for the article among the author's own (`GET /api/articles/me/all`, drafts
    /// included), matching the canonical URL and the title.
    async fn lookup(&self, wanted: &Value) -> Result<Reconciled, DeliveryError> {
        let canonical = wanted["canonical_url"].as_str().unwrap_or_default();
        let title = wanted["title"].as_str().unwrap_or_default();
        for page in 1..=LOOKUP_PAGES {
            let path = format!("/api/articles/me/all?per_page={LOOKUP_PER_PAGE}&page={page}");
            let answer = http::send(self.request(reqwest::Method::GET, &path)).await?;
            if !answer.is_success() {
                return Err(classify(&answer));
            }
            let list: Vec<Listed> = answer.json().map_err(|e| DeliveryError::retryable(format!("devto: unreadable article list ({e})")))?;
            for a in &list {
                if a.canonical_url.as_deref() != Some(canonical) {
                    continue;
                }
                if a.title.as_deref() != Some(title) {
                    return Ok(Reconciled::CannotCheck(format!(
                        "dev.to article {} has this issue's canonical URL but the title {:?}, not {title:?}: check it by hand before posting again",
                        a.id,
                        a.title.as_deref().unwrap_or_default()
                    )));
                }
                return Ok(Reconciled::Found(self.receipt(a.id, a.url.clone(), Some("found among the account's articles by canonical URL".into()))));
            }
            if list.len() < LOOKUP_PER_PAGE {
                return Ok(Reconciled::NotFound);
            }
        }
        Ok(Reconciled::CannotCheck(format!(
            "read the newest {} articles of the account without finding {canonical}; check the dashboard by hand",
            LOOKUP_PER_PAGE * LOOKUP_PAGES
        )))
    }
}

/// Forem's 201 answer (the fields Herald keeps).
#[derive(Debug, Deserialize)]
struct Created {
    id: u64,
    #[serde(default)]
    url: Option<String>,
}

/// One article of `/api/articles/me/all`.
#[derive(Debug, Deserialize)]
struct Listed {
    id: u64,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    canonical_url: Option<String>,
}

/// Classify a Forem error answer, keeping its `error` and adding what to do: 401 → needs_auth,
/// 422 → permanent, 429 → rate limited with `Retry-After`, 5xx → retry.
pub(super) fn classify(answer: &http::Answer) -> DeliveryError {
    let message = serde_json::from_str::<Value>(&answer.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| answer.body.chars().take(300).collect());
    let hint = match answer.status {
        401 => " (the API key is wrong, revoked, or its account suspended: make a new one under Settings → Extensions → DEV Community API Keys and update `api_key`)",
        422 => " (Forem refused the article as written)",
        429 => " (Forem limits how many articles an account creates in a short time)",
        _ => "",
    };
    let base = answer.error();
    DeliveryError::new(base.kind(), format!("devto: {message}{hint}")).with_status(answer.status).with_retry_after(base.retry_after())
}

#[async_trait]
impl Adapter for DevtoAdapter {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let body = self.body(rendering)?;
        let mut state: DevtoState = ctx.load_state().await?;
        if let Some(id) = state.id {
            return Ok(self.receipt(id, state.url.clone(), Some("already posted (checkpoint)".into())));
        }
        self.create(&body, ctx, &mut state).await
    }

    /// Reads the account's articles: the one with this canonical URL and title is the post
    /// (saved to the checkpoint, so a redelivery makes no call); none means a retry is safe.
    async fn find_existing(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        let body = self.body(rendering)?;
        let mut state: DevtoState = ctx.load_state().await?;
        if let Some(id) = state.id {
            return Ok(Reconciled::Found(self.receipt(id, state.url.clone(), Some("already posted (checkpoint)".into()))));
        }
        let found = self.lookup(&body["article"]).await?;
        if let Reconciled::Found(r) = &found {
            state.id = r.remote_id.parse().ok();
            state.url = r.url.clone();
            ctx.save_state(&state).await?;
        }
        Ok(found)
    }

    /// `GET /api/users/me`: 401 means the key is dead.
    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        let answer = http::send(self.request(reqwest::Method::GET, "/api/users/me")).await?;
        if answer.is_success() { Ok(()) } else { Err(classify(&answer)) }
    }
}
