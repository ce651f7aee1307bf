//! `WordpressAdapter`: look the slug up when an earlier create may have landed, else create.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::kind::{WordpressConfig, WordpressStatus};
use crate::channel::{Adapter, DeliveryCtx, DeliveryError, Kind, Receipt, Reconciled, http};
use crate::config::SecretString;
use crate::render::{ArticleRendering, Rendering};

/// What the checkpoint remembers between attempts.
#[derive(Debug, Default, Serialize, Deserialize)]
struct WordpressState {
    /// Set (and saved) before `POST /posts` goes out: a later attempt looks the slug up first.
    #[serde(default)]
    create_sent: bool,
}

/// Delivers to one WordPress site.
pub struct WordpressAdapter {
    name: String,
    base: String,
    username: String,
    password: SecretString,
    status: WordpressStatus,
    categories: Vec<u64>,
    tags: Vec<u64>,
    timeout: Duration,
}

impl std::fmt::Debug for WordpressAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordpressAdapter").field("name", &self.name).field("base", &self.base).finish_non_exhaustive()
    }
}

fn article(rendering: &Rendering) -> Result<&ArticleRendering, DeliveryError> {
    match rendering {
        Rendering::Article(a) => Ok(a),
        _ => Err(DeliveryError::permanent("wordpress: expected an article rendering")),
    }
}

/// Name what to do for a refused credential; keep everything else as classified (400 →
/// permanent, 429/5xx → retry with `Retry-After`, a lost answer → unknown outcome).
fn explain(e: DeliveryError) -> DeliveryError {
    if e.kind() != Kind::Auth {
        return e;
    }
    let msg = format!(
        "wordpress: the site refused the credentials ({}): check `username` and `application_password` (Users → Profile → Application Passwords), and that the user may publish posts",
        e.message()
    );
    let out = DeliveryError::auth(msg);
    match e.status() {
        Some(s) => out.with_status(s),
        None => out,
    }
}

impl WordpressAdapter {
    /// An adapter for the site at `cfg.site_url`.
    pub fn new(name: &str, cfg: &WordpressConfig, password: SecretString, timeout: Duration) -> Self {
        Self {
            name: name.to_string(),
            base: cfg.site_url.trim_end_matches('/').to_string(),
            username: cfg.username.clone(),
            password,
            status: cfg.status,
            categories: cfg.categories.clone(),
            tags: cfg.tags.clone(),
            timeout,
        }
    }

    /// The `POST /wp-json/wp/v2/posts` body.
    pub fn post_body(&self, a: &ArticleRendering) -> Value {
        let mut body = json!({
            "title": a.title,
            "content": a.html,
            "status": self.status.as_str(),
        });
        if !a.subtitle.is_empty() {
            body["excerpt"] = json!(a.subtitle);
        }
        if let Some(slug) = &a.slug {
            body["slug"] = json!(slug);
        }
        if !self.categories.is_empty() {
            body["categories"] = json!(self.categories);
        }
        if !self.tags.is_empty() {
            body["tags"] = json!(self.tags);
        }
        body
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        // Application passwords are shown with spaces; WordPress accepts them either way.
        http::client()
            .request(method, url)
            .timeout(self.timeout)
            .basic_auth(&self.username, Some(self.password.expose()))
            .header(reqwest::header::ACCEPT, "application/json")
    }

    fn posts_url(&self) -> String {
        format!("{}/wp-json/wp/v2/posts", self.base)
    }

    fn receipt(&self, post: &Value, note: &str) -> Result<Receipt, DeliveryError> {
        let id = post["id"].as_u64().ok_or_else(|| DeliveryError::unknown_outcome(format!("wordpress: a post without an id: {post}")))?;
        let draft = post["status"].as_str() != Some("publish");
        Ok(Receipt {
            remote_id: id.to_string(),
            url: post["link"].as_str().map(str::to_string),
            awaiting_confirmation: draft,
            note: Some(if draft { format!("{note}; a draft: publish it in WordPress") } else { note.to_string() }),
            warning: None,
        })
    }

    /// The post with exactly this slug, published or draft (authenticated: drafts need it).
    async fn by_slug(&self, slug: &str) -> Result<Option<Value>, DeliveryError> {
        let req = self
            .request(reqwest::Method::GET, &self.posts_url())
            .query(&[("slug", slug), ("status", "publish,draft"), ("context", "edit")]);
        let answer = http::send(req).await.map_err(|e| {
            // A read changes nothing: a lost answer is a plain retry.
            if e.kind() == Kind::UnknownOutcome { DeliveryError::retryable(e.message().to_string()) } else { e }
        })?;
        if !answer.is_success() {
            return Err(explain(http::error_from_response(answer.status, &answer.headers, &format!("wordpress: {}", answer.body))));
        }
        let list: Vec<Value> = answer.json().map_err(|e| DeliveryError::retryable(format!("wordpress: unreadable post list ({e})")))?;
        Ok(list.into_iter().find(|p| p["slug"].as_str() == Some(slug)))
    }
}

#[async_trait]
impl Adapter for WordpressAdapter {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let a = article(rendering)?;
        let mut state: WordpressState = ctx.load_state().await?;
        if state.create_sent
            && let Some(slug) = &a.slug
            && let Some(post) = self.by_slug(slug).await?
        {
            tracing::info!(channel = %self.name, post = %post["id"], "WordPress post from an earlier attempt found by its slug.");
            return self.receipt(&post, "found by its slug");
        }
        state.create_sent = true;
        ctx.save_state(&state).await?;
        let answer = http::send(self.request(reqwest::Method::POST, &self.posts_url()).json(&self.post_body(a))).await?;
        if !answer.is_success() {
            return Err(explain(http::error_from_response(answer.status, &answer.headers, &format!("wordpress: {}", answer.body))));
        }
        let post: Value = answer
            .json()
            .map_err(|e| DeliveryError::unknown_outcome(format!("wordpress: unreadable answer ({e})")).with_status(answer.status))?;
        tracing::info!(channel = %self.name, post = %post["id"], "Created WordPress post.");
        self.receipt(&post, "created")
    }

    /// By the rendering's slug; without one there is nothing to look up by.
    async fn find_existing(&self, rendering: &Rendering, _ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        let a = article(rendering)?;
        let Some(slug) = &a.slug else {
            return Ok(Reconciled::CannotCheck("the rendering has no slug to look the post up by".into()));
        };
        Ok(match self.by_slug(slug).await? {
            Some(post) => Reconciled::Found(self.receipt(&post, "reconciled by its slug")?),
            None => Reconciled::NotFound,
        })
    }

    /// `GET /wp-json/wp/v2/users/me`: the application password opens the site.
    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        let answer = http::send(self.request(reqwest::Method::GET, &format!("{}/wp-json/wp/v2/users/me", self.base))).await?;
        if answer.is_success() { Ok(()) } else { Err(explain(answer.error())) }
    }
}
