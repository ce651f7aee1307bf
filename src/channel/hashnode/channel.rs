//! `HashnodeAdapter`: publish the post once, remember its id, and after a lost answer look it
//! up by its slug in the publication before any retry.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{HashnodeConfig, ME, POST_BY_SLUG, post_input, preflight, publish_request};
use crate::channel::{Adapter, DeliveryCtx, DeliveryError, Receipt, Reconciled, http};
use crate::config::SecretString;
use crate::render::Rendering;

/// What the checkpoint remembers between attempts.
#[derive(Debug, Default, Serialize, Deserialize)]
struct HashnodeState {
    /// Hashnode's id of the post, once it answered (or reconciliation found it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// Its URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// When the last `publishPost` went out; saved before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_post_at: Option<DateTime<Utc>>,
    /// When a lookup last found nothing: Hashnode may serve that same answer from its read
    /// cache for `read_cache_secs`, so a lookup after a later publish waits that long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_not_found_at: Option<DateTime<Utc>>,
}

/// Which call an answer belongs to: a failed publish may have been applied; a read never is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Publish,
    Read,
}

/// Delivers to one Hashnode publication.
pub struct HashnodeAdapter {
    name: String,
    cfg: HashnodeConfig,
    token: SecretString,
    timeout: Duration,
}

/// A post as Hashnode returns it (`post { id slug url canonicalUrl }`).
#[derive(Debug, Deserialize)]
struct PostRef {
    id: String,
    slug: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default, rename = "canonicalUrl")]
    canonical_url: Option<String>,
}

impl HashnodeAdapter {
    /// An adapter publishing with `token` to `cfg.publication_id` at `cfg.api_url`.
    pub fn new(name: &str, cfg: &HashnodeConfig, token: SecretString, timeout: Duration) -> Self {
        Self { name: name.to_string(), cfg: cfg.clone(), token, timeout }
    }

    /// The `PublishPostInput` for this delivery, checked as Hashnode would check it. A
    /// `republish` (revision 2 and up) is a new post, so it gets its own slug, `<slug>-r<n>`:
    /// reconciling it never takes the first revision's post for its own.
    pub fn input(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Value, DeliveryError> {
        let Rendering::Body(b) = rendering else {
            return Err(DeliveryError::permanent("hashnode: expected a body rendering (channels/hashnode/manifest.toml has kind = \"body\")"));
        };
        let mut input = post_input(&b.body, &self.cfg).map_err(|e| DeliveryError::permanent(format!("hashnode: {e}")))?;
        let revision = revision_of(&ctx.key);
        if revision > 1
            && let Some(slug) = input["slug"].as_str().filter(|s| !s.is_empty())
        {
            input["slug"] = Value::String(format!("{slug}-r{revision}"));
        }
        preflight(&input, &self.cfg).map_err(|e| DeliveryError::permanent(format!("hashnode: {e}")))?;
        Ok(input)
    }

    /// One GraphQL call: `POST {api_url}` with the token and a JSON body.
    async fn call(&self, body: &Value) -> Result<http::Answer, DeliveryError> {
        let req = http::client().post(&self.cfg.api_url).timeout(self.timeout).header(reqwest::header::AUTHORIZATION, self.token.expose()).json(body);
        http::send(req).await
    }

    /// The answer's `data`, or its error classified ([`classify`]).
    fn data(&self, answer: &http::Answer, op: Op) -> Result<Value, DeliveryError> {
        let wait = Duration::from_secs(self.cfg.rate_limit_wait_secs);
        let parsed = serde_json::from_str::<Value>(&answer.body).ok();
        if !answer.is_success() || parsed.as_ref().is_some_and(|v| v["errors"].as_array().is_some_and(|e| !e.is_empty())) {
            return Err(classify(answer, parsed.as_ref(), op, wait));
        }
        let Some(v) = parsed else {
            // gql.hashnode.com answers its old clients with a redirect to an HTML page.
            return Err(DeliveryError::permanent(format!(
                "hashnode: {} answered {} with a body that is not GraphQL JSON (`{}`): check `api_url` (Hashnode's API is at https://gql-beta.hashnode.com since 2026; https://gql.hashnode.com redirects to an announcement)",
                self.cfg.api_url,
                answer.status,
                answer.body.chars().take(80).collect::<String>()
            ))
            .with_status(answer.status));
        };
        match v.get("data") {
            Some(d) if !d.is_null() => Ok(d.clone()),
            _ => Err(match op {
                Op::Publish => DeliveryError::unknown_outcome("hashnode: the answer to publishPost has neither data nor errors"),
                Op::Read => DeliveryError::retryable("hashnode: the answer has neither data nor errors"),
            }
            .with_status(answer.status)),
        }
    }

    fn receipt(&self, id: &str, url: Option<String>, note: Option<String>, warning: Option<String>) -> Receipt {
        Receipt { remote_id: id.to_string(), url, awaiting_confirmation: false, note, warning }
    }

    /// `publishPost`, once; its id and URL are saved at once.
    async fn publish(&self, input: &Value, ctx: &DeliveryCtx, state: &mut HashnodeState) -> Result<Receipt, DeliveryError> {
        state.last_post_at = Some(Utc::now());
        ctx.save_state(state).await?;
        let answer = self.call(&publish_request(input)).await?;
        let data = self.data(&answer, Op::Publish)?;
        let post: PostRef = serde_json::from_value(data["publishPost"]["post"].clone())
            .map_err(|e| DeliveryError::unknown_outcome(format!("hashnode: publishPost answered without a readable post ({e})")).with_status(answer.status))?;
        state.id = Some(post.id.clone());
        state.url = post.url.clone();
        ctx.save_state(state).await?;
        let asked = input["slug"].as_str().unwrap_or_default();
        let warning = (post.slug != asked).then(|| {
            format!("Hashnode gave the post the slug `{}`, not `{asked}` (another post of the publication has it): a lost answer for this issue could not be reconciled by slug", post.slug)
        });
        tracing::info!(channel = %self.name, id = %post.id, "Hashnode post is up.");
        Ok(self.receipt(&post.id, post.url, None, warning))
    }

    /// `publication(id) { post(slug) }`: the post is ours when its canonical URL is the issue's.
    async fn lookup(&self, input: &Value) -> Result<Reconciled, DeliveryError> {
        let slug = input["slug"].as_str().unwrap_or_default();
        let canonical = input["originalArticleURL"].as_str().unwrap_or_default();
        let body = json!({"query": POST_BY_SLUG, "variables": {"publicationId": self.cfg.publication_id, "slug": slug}});
        let answer = self.call(&body).await?;
        let data = self.data(&answer, Op::Read)?;
        if data["publication"].is_null() {
            return Err(DeliveryError::permanent(format!(
                "hashnode: no publication has the id {} (check `publication_id`: the blog dashboard's URL shows it)",
                self.cfg.publication_id
            )));
        }
        let post = &data["publication"]["post"];
        if post.is_null() {
            return Ok(Reconciled::NotFound);
        }
        let post: PostRef = serde_json::from_value(post.clone()).map_err(|e| DeliveryError::retryable(format!("hashnode: unreadable post in the lookup ({e})")))?;
        if post.canonical_url.as_deref() != Some(canonical) {
            return Ok(Reconciled::CannotCheck(format!(
                "the publication's post at slug `{slug}` ({}) has the canonical URL {:?}, not {canonical}: another post holds this slug, so Herald cannot tell whether this issue's post landed; check the blog by hand",
                post.id,
                post.canonical_url.as_deref().unwrap_or("(none)")
            )));
        }
        Ok(Reconciled::Found(self.receipt(&post.id, post.url, Some(format!("found in the publication by slug `{}`", post.slug)), None)))
    }
}

/// The revision in a delivery key (`{issue}/{channel}/r{revision}`); 1 when it has none.
pub fn revision_of(key: &str) -> u32 {
    key.rsplit_once("/r").and_then(|(_, n)| n.parse().ok()).unwrap_or(1)
}

/// Classify a Hashnode error answer: GraphQL `errors[0].extensions.code` first (Hashnode answers
/// most errors with 200), else the HTTP status. `UNAUTHENTICATED` and a `FORBIDDEN` for a role
/// → needs_auth; `FORBIDDEN` for the Pro plan → forbidden (a new token won't help);
/// `BAD_USER_INPUT`, `NOT_FOUND` and GraphQL validation → permanent; a throttled answer →
/// rate limited with `Retry-After` (else `wait`); a server error → unknown outcome after a
/// publish (it may have been applied: reconcile first), retryable after a read.
fn classify(answer: &http::Answer, parsed: Option<&Value>, op: Op, wait: Duration) -> DeliveryError {
    let first = parsed.and_then(|v| v["errors"].as_array()).and_then(|e| e.first());
    let message = first
        .and_then(|e| e["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| answer.body.chars().take(300).collect::<String>());
    let code = first.and_then(|e| e["extensions"]["code"].as_str()).unwrap_or_default();
    let hint = http::retry_after(&answer.headers).unwrap_or(wait);
    let status = answer.status;
    let server_error = |m: String| match op {
        Op::Publish => DeliveryError::unknown_outcome(format!("{m} (Hashnode may have published it: reconciled by slug before any retry)")),
        Op::Read => DeliveryError::retryable(m),
    };
    let e = match (code, status) {
        (_, 429) | ("RATE_LIMITED" | "TOO_MANY_REQUESTS", _) => {
            DeliveryError::rate_limited(format!("hashnode: {message} (Hashnode's published limit is 500 mutations a minute)"), Some(hint))
        }
        ("UNAUTHENTICATED", _) | ("", 401) => DeliveryError::auth(format!(
            "hashnode: {message} (the Personal Access Token is missing, wrong or revoked, or its user is deactivated: make a new one under Account Settings → Developer and update `access_token`)"
        )),
        ("FORBIDDEN", _) if message.contains("Pro plan") => http::forbidden(
            "hashnode",
            status,
            &message,
            "every API mutation needs the publication on Hashnode Pro since 2026-05-13: upgrade it in the blog dashboard; a new token will not help",
        ),
        ("FORBIDDEN", _) | ("", 403) => DeliveryError::auth(format!(
            "hashnode: {message} (the token's user may not publish to this publication: a contributor cannot publish; use an owner's or editor's token)"
        )),
        ("NOT_FOUND", _) => DeliveryError::permanent(format!("hashnode: {message} (check `publication_id` and `series_id`)")),
        ("BAD_USER_INPUT" | "GRAPHQL_VALIDATION_FAILED" | "GRAPHQL_PARSE_FAILED" | "BAD_REQUEST", _) => {
            DeliveryError::permanent(format!("hashnode: {message} (Hashnode refused the post as written)"))
        }
        (_, 500..=599) | ("INTERNAL_SERVER_ERROR", _) => server_error(format!("hashnode: {message}")),
        // Hashnode collapses every other code to INTERNAL_SERVER_ERROR; one it did not is odd.
        (c, _) if !c.is_empty() => server_error(format!("hashnode: {message} ({c})")),
        (_, 408) => server_error(format!("hashnode: {message}")),
        _ => DeliveryError::permanent(format!("hashnode: {message}")),
    };
    let e = e.with_status(status);
    if e.kind() == crate::channel::Kind::RateLimited { e.with_retry_after(Some(hint)) } else { e }
}

#[async_trait]
impl Adapter for HashnodeAdapter {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let input = self.input(rendering, ctx)?;
        let mut state: HashnodeState = ctx.load_state().await?;
        if let Some(id) = &state.id {
            return Ok(self.receipt(id, state.url.clone(), Some("already posted (checkpoint)".into()), None));
        }
        self.publish(&input, ctx, &mut state).await
    }

    /// Looks the slug up in the publication: the post with the issue's canonical URL is the
    /// post (saved to the checkpoint); none means a retry is safe. A lookup that found nothing,
    /// followed by a publish, is not repeated within `read_cache_secs`: the same query could be
    /// answered from Hashnode's cache and miss the post.
    async fn find_existing(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        let input = self.input(rendering, ctx)?;
        let mut state: HashnodeState = ctx.load_state().await?;
        if let Some(id) = &state.id {
            return Ok(Reconciled::Found(self.receipt(id, state.url.clone(), Some("already posted (checkpoint)".into()), None)));
        }
        let now = Utc::now();
        if let (Some(missed), Some(posted)) = (state.last_not_found_at, state.last_post_at) {
            let cache = chrono::Duration::seconds(self.cfg.read_cache_secs as i64);
            if posted > missed && now - missed < cache {
                let left = (missed + cache - now).to_std().unwrap_or_default().max(Duration::from_secs(1));
                return Err(DeliveryError::retryable(format!(
                    "hashnode: the last lookup of this slug found nothing {}s ago and a publish went out since; Hashnode may answer the same lookup from its cache for up to {}s, so it is asked again in {}s",
                    (now - missed).num_seconds(),
                    self.cfg.read_cache_secs,
                    left.as_secs()
                ))
                .with_retry_after(Some(left)));
            }
        }
        let found = self.lookup(&input).await?;
        match &found {
            Reconciled::Found(r) => {
                state.id = Some(r.remote_id.clone());
                state.url = r.url.clone();
                ctx.save_state(&state).await?;
            }
            Reconciled::NotFound => {
                state.last_not_found_at = Some(now);
                ctx.save_state(&state).await?;
            }
            Reconciled::CannotCheck(_) => {}
        }
        Ok(found)
    }

    /// `query { me { id } }`: `UNAUTHENTICATED` means the token is dead.
    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        let answer = self.call(&json!({"query": ME, "variables": {}})).await?;
        self.data(&answer, Op::Read).map(|_| ())
    }
}
