//! `GhostAdapter`: sign a short-lived Admin API token per request, look the post up by its slug
//! before any retry, create it once.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use super::kind::GhostConfig;
use crate::channel::{Adapter, DeliveryCtx, DeliveryError, Receipt, Reconciled, http};
use crate::config::SecretString;
use crate::render::{ArticleRendering, Rendering};

/// How long a token lives. Ghost verifies with `maxAge: '5m'` from `iat`, and its docs say
/// `exp` is at most 5 minutes after `iat`; one token is signed per request, so its age on
/// arrival is the request's time in flight.
pub const TOKEN_LIFETIME_SECS: i64 = 5 * 60;
/// The audience of an unversioned Admin API path (`/ghost/api/admin/…`).
pub const AUDIENCE: &str = "/admin/";

/// An Admin API key, `{id}:{hex secret}`: the id goes in the token's `kid`, the decoded secret
/// signs it. `Debug` shows the id only.
#[derive(Clone)]
pub struct AdminKey {
    id: String,
    secret: SecretString,
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl AdminKey {
    /// Parse `{id}:{hex secret}`. The error never repeats the secret.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let Some((id, secret)) = raw.split_once(':') else {
            return Err("is not an Admin API key: expected `{id}:{secret}` as Ghost Admin → Settings → Integrations shows it (the Content API key has no colon)".into());
        };
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err("has an empty or malformed id before the `:`; copy the whole Admin API key again".into());
        }
        if secret.is_empty() || hex::decode(secret).is_err() {
            return Err("has a secret that is not hexadecimal after the `:`; copy the whole Admin API key again".into());
        }
        Ok(Self { id: id.to_string(), secret: SecretString::new(secret.to_string()) })
    }

    /// The key's id (the token's `kid`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A token issued at `iat` (unix seconds), expiring [`TOKEN_LIFETIME_SECS`] later.
    pub fn token_at(&self, iat: i64) -> String {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": self.id});
        let claims = json!({"iat": iat, "exp": iat + TOKEN_LIFETIME_SECS, "aud": AUDIENCE});
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let key = hex::decode(self.secret.expose()).expect("checked hex in parse");
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// A token issued now.
    pub fn token(&self) -> String {
        self.token_at(chrono::Utc::now().timestamp())
    }
}

/// The slug Herald asks for: the slug as Ghost's own slugify would leave it (lowercase
/// ASCII letters, digits and single hyphens), so the post is found again under exactly that
/// slug. Ghost keeps slugs to 185 characters.
pub fn ghost_slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out = out.trim_end_matches('-').to_string();
    out.truncate(185);
    out.trim_end_matches('-').to_string()
}

/// What the checkpoint remembers between attempts.
#[derive(Debug, Default, Serialize, Deserialize)]
struct GhostState {
    /// Set before the first POST: from then on, a retry looks the post up first.
    #[serde(default)]
    posted: bool,
    /// The post's id, once Ghost confirmed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// Its public URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

/// Publishes to one Ghost site.
pub struct GhostAdapter {
    name: String,
    base: String,
    key: AdminKey,
    status: &'static str,
    accept_version: String,
    tags: Vec<String>,
    timeout: Duration,
}

impl GhostAdapter {
    /// An adapter for the site at `cfg.api_url`, signing with `key`.
    pub fn new(name: &str, cfg: &GhostConfig, key: AdminKey, timeout: Duration) -> Self {
        Self {
            name: name.to_string(),
            base: cfg.api_url.trim_end_matches('/').to_string(),
            key,
            status: cfg.status.as_str(),
            accept_version: cfg.accept_version.clone(),
            tags: cfg.tags.clone(),
            timeout,
        }
    }

    /// The `posts[0]` object sent for an article rendering.
    pub fn post_body(&self, a: &ArticleRendering) -> Result<Value, DeliveryError> {
        let canonical = a.canonical_url.as_deref().filter(|u| !u.is_empty()).ok_or_else(|| {
            DeliveryError::permanent("ghost: the rendering has no canonical URL (the issue's `url`); render the issue again")
        })?;
        let slug = a.slug.as_deref().map(ghost_slug).filter(|s| !s.is_empty()).ok_or_else(|| {
            DeliveryError::permanent("ghost: the rendering has no slug; render the issue again")
        })?;
        let mut post = json!({
            "title": a.title,
            "html": a.html,
            "status": self.status,
            "canonical_url": canonical,
            "slug": slug,
        });
        if !a.subtitle.is_empty() {
            post["custom_excerpt"] = json!(a.subtitle);
        }
        if !self.tags.is_empty() {
            post["tags"] = json!(self.tags);
        }
        Ok(post)
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        http::client()
            .request(method, format!("{}/ghost/api/admin/{path}", self.base))
            .timeout(self.timeout)
            .header(reqwest::header::AUTHORIZATION, format!("Ghost {}", self.key.token()))
            .header("Accept-Version", &self.accept_version)
    }

    /// `GET posts/slug/{slug}/`: the post with that slug, if any.
    async fn by_slug(&self, slug: &str) -> Result<Option<Value>, DeliveryError> {
        let answer = http::send(self.request(reqwest::Method::GET, &format!("posts/slug/{slug}/"))).await?;
        if answer.status == 404 {
            return Ok(None);
        }
        if !answer.is_success() {
            return Err(classify(&answer));
        }
        let v: Value = answer.json().map_err(|e| DeliveryError::unknown_outcome(format!("ghost: unreadable post lookup: {e}")))?;
        Ok(v["posts"].get(0).cloned())
    }

    /// Look the post up by slug; `Found` only when its canonical URL is the issue's.
    async fn look(&self, a: &ArticleRendering, state: &mut GhostState, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        let body = self.post_body(a)?;
        let slug = body["slug"].as_str().unwrap_or_default().to_string();
        let Some(post) = self.by_slug(&slug).await? else {
            return Ok(Reconciled::NotFound);
        };
        let canonical = post["canonical_url"].as_str().unwrap_or_default();
        if canonical != body["canonical_url"].as_str().unwrap_or_default() {
            return Ok(Reconciled::CannotCheck(format!(
                "Ghost has a post with the slug `{slug}` whose canonical_url is `{canonical}`, not this issue's: it is not Herald's post, and a new one would get the slug `{slug}-2`; rename or delete that post in Ghost Admin, then retry"
            )));
        }
        let r = self.remember(&post, state, ctx).await?;
        Ok(Reconciled::Found(Receipt { note: Some(format!("found on Ghost by its slug `{slug}`")), ..r }))
    }

    async fn remember(&self, post: &Value, state: &mut GhostState, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let id = post["id"].as_str().filter(|s| !s.is_empty()).ok_or_else(|| DeliveryError::unknown_outcome("ghost: a post without an id"))?;
        state.id = Some(id.to_string());
        state.url = post["url"].as_str().map(str::to_string);
        ctx.save_state(state).await?;
        Ok(self.receipt(state, None))
    }

    fn receipt(&self, state: &GhostState, note: Option<String>) -> Receipt {
        Receipt {
            remote_id: state.id.clone().unwrap_or_default(),
            url: state.url.clone(),
            // A draft waits for the author to publish it in Ghost Admin.
            awaiting_confirmation: self.status == "draft",
            note,
            warning: None,
        }
    }

    async fn create(&self, a: &ArticleRendering, state: &mut GhostState, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let post = self.post_body(a)?;
        let slug = post["slug"].as_str().unwrap_or_default().to_string();
        state.posted = true;
        ctx.save_state(state).await?;
        let req = self.request(reqwest::Method::POST, "posts/?source=html").json(&json!({"posts": [post]}));
        let answer = http::send(req).await?;
        if !answer.is_success() {
            return Err(classify(&answer));
        }
        let v: Value = answer
            .json()
            .map_err(|e| DeliveryError::unknown_outcome(format!("ghost: {} with an unreadable body: {e}", answer.status)).with_status(answer.status))?;
        let Some(created) = v["posts"].get(0) else {
            return Err(DeliveryError::unknown_outcome(format!("ghost: {} without a post", answer.status)).with_status(answer.status));
        };
        let mut r = self.remember(created, state, ctx).await?;
        let got = created["slug"].as_str().unwrap_or_default();
        if got != slug {
            r.warning = Some(format!("Ghost gave the post the slug `{got}`, not `{slug}` (another post had it): reconciliation cannot find this post by its slug"));
        }
        tracing::info!(channel = %self.name, id = %r.remote_id, "Ghost post is up.");
        Ok(r)
    }
}

fn article(rendering: &Rendering) -> Result<&ArticleRendering, DeliveryError> {
    match rendering {
        Rendering::Article(a) => Ok(a),
        _ => Err(DeliveryError::permanent("ghost: expected an article rendering")),
    }
}

/// Classify a Ghost error answer (`{"errors":[{message, context, type, code}]}`), keeping
/// Ghost's words and adding what to do. The status decides the class (401/403 → needs_auth,
/// 422 and other 4xx → permanent, 429 → rate limited with `Retry-After`, 5xx → retryable).
pub fn classify(answer: &http::Answer) -> DeliveryError {
    let v: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    let e = &v["errors"][0];
    let ty = e["type"].as_str().unwrap_or("");
    let mut message = e["message"].as_str().map(str::to_string).unwrap_or_else(|| excerpt(&answer.body));
    if let Some(c) = e["context"].as_str().filter(|c| !c.is_empty()) {
        message = format!("{message} {c}");
    }
    let hint = match answer.status {
        401 => " (the Admin API key was refused or its token expired: check `admin_api_key` is the custom integration's Admin API key, and the clock of this machine)",
        403 => " (the integration may not do this: use a custom integration's Admin API key)",
        404 => " (check `api_url`: it is the site's address, without /ghost/api)",
        422 => " (Ghost refused the post's content)",
        429 => " (Ghost's rate limit; Herald waits as Ghost asks)",
        _ => "",
    };
    let ty = if ty.is_empty() { String::new() } else { format!("{ty}: ") };
    let base = answer.error();
    DeliveryError::new(base.kind(), format!("ghost: {ty}{message}{hint}")).with_status(answer.status).with_retry_after(base.retry_after())
}

fn excerpt(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > 200 { format!("{}…", s.chars().take(200).collect::<String>()) } else { s.to_string() }
}

#[async_trait]
impl Adapter for GhostAdapter {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let a = article(rendering)?;
        let mut state: GhostState = ctx.load_state().await?;
        if state.id.is_some() {
            return Ok(self.receipt(&state, Some("already posted (checkpoint)".into())));
        }
        if state.posted {
            // An earlier POST went out and its answer was lost: look before posting again.
            match self.look(a, &mut state, ctx).await? {
                Reconciled::Found(r) => return Ok(r),
                Reconciled::CannotCheck(why) => return Err(DeliveryError::unknown_outcome(why)),
                Reconciled::NotFound => {}
            }
        }
        self.create(a, &mut state, ctx).await
    }

    /// Looks the post up by Herald's slug (`GET posts/slug/{slug}/`); a post under that slug
    /// with another canonical URL is not Herald's, and is reported rather than guessed at.
    async fn find_existing(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        let a = article(rendering)?;
        let mut state: GhostState = ctx.load_state().await?;
        if state.id.is_some() {
            return Ok(Reconciled::Found(self.receipt(&state, Some("already posted (checkpoint)".into()))));
        }
        self.look(a, &mut state, ctx).await
    }
}
