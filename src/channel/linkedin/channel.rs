//! `LinkedinAdapter`: create the post, treat `DUPLICATE_POST` as "already there", warn before
//! the 60-day token runs out.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::channel::{Adapter, DeliveryCtx, DeliveryError, Receipt, Reconciled, http};
use crate::config::{LinkedinConfig, SecretString};
use crate::render::{LinkCard, Post, Rendering};

/// Rest.li protocol version every `/rest` call must declare.
const RESTLI_VERSION: &str = "2.0.0";
/// How long LinkedIn is known to remember a post for duplicate detection (reports say 24–48 h;
/// the lower bound is the safe one).
const DUPLICATE_WINDOW: chrono::Duration = chrono::Duration::hours(24);
/// Warn this long before the access token expires.
const EXPIRY_NOTICE: chrono::Duration = chrono::Duration::days(7);

/// What the checkpoint remembers between attempts.
#[derive(Debug, Default, Serialize, Deserialize)]
struct LinkedinState {
    /// Set once LinkedIn confirmed the post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    urn: Option<String>,
    /// When the first POST went out; saved before it, so reconciliation knows whether the
    /// duplicate window still covers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_post_at: Option<DateTime<Utc>>,
}

/// The outcome of one POST.
enum Created {
    /// 201: a new post.
    New(String),
    /// 422 DUPLICATE_POST: an earlier post with the same commentary.
    Duplicate(String),
}

/// Delivers to one LinkedIn member or organization.
pub struct LinkedinAdapter {
    name: String,
    base: String,
    author: String,
    version: String,
    token: SecretString,
    timeout: Duration,
}

impl LinkedinAdapter {
    /// An adapter posting as `author` (`urn:li:person:…` / `urn:li:organization:…`).
    pub fn new(name: &str, api_base: &str, author: &str, version: &str, token: SecretString, timeout: Duration) -> Self {
        Self {
            name: name.to_string(),
            base: api_base.trim_end_matches('/').to_string(),
            author: author.to_string(),
            version: version.to_string(),
            token,
            timeout,
        }
    }

    /// The request body for a text post, with an article card when the rendering has one.
    /// The commentary is sent as rendered (already little-text escaped); the article's title
    /// and description are plain strings and are never escaped.
    pub fn body(&self, post: &Post, card: Option<&LinkCard>) -> Value {
        let mut body = json!({
            "author": self.author,
            "commentary": post.text,
            "visibility": "PUBLIC",
            "distribution": {
                "feedDistribution": "MAIN_FEED",
                "targetEntities": [],
                "thirdPartyDistributionChannels": [],
            },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": false,
        });
        if let Some(c) = card {
            // LinkedIn does not scrape the URL: title and description must be set here.
            body["content"] = json!({"article": {"source": c.uri, "title": c.title, "description": c.description}});
        }
        body
    }

    async fn create(&self, body: &Value) -> Result<Created, DeliveryError> {
        let req = http::client()
            .post(format!("{}/rest/posts", self.base))
            .timeout(self.timeout)
            .bearer_auth(self.token.expose())
            .header("LinkedIn-Version", &self.version)
            .header("X-Restli-Protocol-Version", RESTLI_VERSION)
            .json(body);
        let http::Answer { status, headers, body: text } = http::send(req).await?;
        if (200..300).contains(&status) {
            return match headers.get("x-restli-id").and_then(|v| v.to_str().ok()) {
                Some(urn) if !urn.is_empty() => Ok(Created::New(urn.to_string())),
                // The post exists but we don't know its URN: the duplicate probe will tell.
                _ => Err(DeliveryError::unknown_outcome(format!("linkedin: {status} without an x-restli-id header")).with_status(status)),
            };
        }
        if status == 422 && text.contains("DUPLICATE_POST") {
            return match duplicate_urn(&text) {
                Some(urn) => Ok(Created::Duplicate(urn)),
                None => Err(DeliveryError::unknown_outcome(format!("linkedin: DUPLICATE_POST without a URN: {text}")).with_status(422)),
            };
        }
        Err(classify(status, &headers, &text).with_author(&self.author))
    }

    /// POST, keeping the checkpoint current: the first-POST time before, the URN after.
    async fn post_once(&self, rendering: &Rendering, ctx: &DeliveryCtx, state: &mut LinkedinState) -> Result<Receipt, DeliveryError> {
        let (post, card) = single_post(rendering)?;
        if state.first_post_at.is_none() {
            state.first_post_at = Some(Utc::now());
            ctx.save_state(state).await?;
        }
        let (urn, note) = match self.create(&self.body(post, card)).await? {
            Created::New(urn) => (urn, None),
            Created::Duplicate(urn) => {
                tracing::info!(channel = %self.name, urn = %urn, "LinkedIn reports a duplicate; the earlier post stands.");
                (urn, Some("LinkedIn DUPLICATE_POST: the post was already there".to_string()))
            }
        };
        state.urn = Some(urn.clone());
        ctx.save_state(state).await?;
        tracing::info!(channel = %self.name, urn = %urn, "LinkedIn post is up.");
        Ok(receipt(urn, note))
    }
}

fn receipt(urn: String, note: Option<String>) -> Receipt {
    Receipt { url: Some(post_url(&urn)), remote_id: urn, awaiting_confirmation: false, note }
}

/// The public URL of a post URN.
pub fn post_url(urn: &str) -> String {
    format!("https://www.linkedin.com/feed/update/{urn}")
}

/// The earlier post's URN in a `DUPLICATE_POST` message.
pub(super) fn duplicate_urn(body: &str) -> Option<String> {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.to_string());
    let re = regex::Regex::new(r"urn:li:(?:share|ugcPost|activity):[0-9]+").expect("static regex");
    re.find(&message).map(|m| m.as_str().to_string())
}

/// Classify a LinkedIn error answer, keeping its `message` and adding what to do.
pub(super) fn classify(status: u16, headers: &reqwest::header::HeaderMap, body: &str) -> DeliveryError {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.to_string());
    let hint = match status {
        401 => " (the access token is invalid or expired: re-authorise and update `access_token`)",
        426 => " (set `linkedin_version` to an active YYYYMM; versions sunset after about a year)",
        429 => " (LinkedIn's daily limit; it resets at midnight UTC)",
        _ if message.contains("version") && status == 400 => " (check `linkedin_version`)",
        _ => "",
    };
    if status == 403 && message.to_ascii_lowercase().contains("author") {
        // The token is fine; the member behind it may not post as this author.
        return http::forbidden(
            "linkedin",
            403,
            &message,
            "the token's member may not post as `author`: set author to that member's urn:li:person id (the `sub` of /v2/userinfo), or to an organization they administer with a token that has w_organization_social",
        );
    }
    let hint = if status == 403 && hint.is_empty() {
        " (the token lacks a permission: re-authorise with the w_member_social scope, or w_organization_social for an organization)"
    } else {
        hint
    };
    let base = http::error_from_response(status, headers, body);
    DeliveryError::new(base.kind(), format!("linkedin: {message}{hint}"))
        .with_status(status)
        .with_retry_after(base.retry_after())
}

/// Name the configured author in an author refusal.
trait WithAuthor {
    fn with_author(self, author: &str) -> Self;
}

impl WithAuthor for DeliveryError {
    fn with_author(self, author: &str) -> Self {
        if self.kind() != crate::channel::Kind::Forbidden {
            return self;
        }
        let status = self.status();
        let out = DeliveryError::forbidden(format!("{} [author = \"{author}\"]", self.message()));
        match status {
            Some(s) => out.with_status(s),
            None => out,
        }
    }
}

fn single_post(rendering: &Rendering) -> Result<(&Post, Option<&LinkCard>), DeliveryError> {
    match rendering.posts() {
        Some(p) if p.posts.len() == 1 => Ok((&p.posts[0], p.card.as_ref())),
        Some(p) => Err(DeliveryError::permanent(format!("linkedin: expected exactly one post, the rendering has {}", p.posts.len()))),
        None => Err(DeliveryError::permanent("linkedin: expected a posts rendering")),
    }
}

/// A warning for `check` and `status` when the configured `token_expires_at` is within
/// 7 days of `now` or already past; also when it can't be read. `None` when all is well or no
/// expiry is configured.
pub fn token_expiry_warning(cfg: &LinkedinConfig, now: DateTime<Utc>) -> Option<String> {
    let raw = cfg.token_expires_at.as_deref()?.trim();
    let Some(at) = parse_instant(raw) else {
        return Some(format!(
            "token_expires_at = \"{raw}\" is not an RFC 3339 time (e.g. 2027-01-31T00:00:00Z); herald cannot warn before the LinkedIn token expires"
        ));
    };
    let left = at - now;
    let day = at.format("%Y-%m-%d %H:%M UTC");
    if left <= chrono::Duration::zero() {
        let ago = (-left).num_days();
        return Some(format!(
            "the LinkedIn access token expired on {day} ({}): re-authorise the app and update the token and token_expires_at",
            match ago {
                0 => "today".to_string(),
                1 => "1 day ago".to_string(),
                n => format!("{n} days ago"),
            }
        ));
    }
    if left <= EXPIRY_NOTICE {
        let hours = left.num_hours();
        let when = if hours < 24 { format!("in {hours} h") } else { format!("in {} days", left.num_days()) };
        return Some(format!(
            "the LinkedIn access token expires on {day} ({when}): re-authorise the app before then (tokens last 60 days)"
        ));
    }
    None
}

/// LinkedIn sunsets an API version about a year after its release: warn past this age.
pub const VERSION_WARN_MONTHS: i32 = 10;

/// A warning for `check` when `linkedin_version` is more than [`VERSION_WARN_MONTHS`] months
/// older than `now` (LinkedIn answers `426 NONEXISTENT_VERSION` once it is sunset).
pub fn version_age_warning(cfg: &LinkedinConfig, now: DateTime<Utc>) -> Option<String> {
    use chrono::Datelike;
    let v = cfg.linkedin_version.trim();
    let month = v.split('.').next().unwrap_or(v);
    let (y, m) = (month.get(..4)?.parse::<i32>().ok()?, month.get(4..6)?.parse::<i32>().ok()?);
    let age = (now.year() - y) * 12 + now.month() as i32 - m;
    (age > VERSION_WARN_MONTHS).then(|| {
        format!(
            "linkedin_version = \"{v}\" is {age} months old; LinkedIn sunsets versions about a year after release, then refuses every post (426): set it to a recent month, e.g. linkedin_version = \"{}\"",
            now.format("%Y%m")
        )
    })
}

fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.to_utc());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[async_trait]
impl Adapter for LinkedinAdapter {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        single_post(rendering)?;
        let mut state: LinkedinState = ctx.load_state().await?;
        if let Some(urn) = state.urn.clone() {
            return Ok(receipt(urn, Some("already posted (checkpoint)".into())));
        }
        self.post_once(rendering, ctx, &mut state).await
    }

    /// Re-POSTs the same commentary as a probe while LinkedIn's duplicate window covers the
    /// first attempt: `DUPLICATE_POST` names the post that landed; a `201` means the earlier
    /// attempt never did, and this one is now the only post. Outside the window (or with no
    /// record of when the first POST went out) it cannot tell without risking a second post.
    async fn find_existing(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        single_post(rendering)?;
        let mut state: LinkedinState = ctx.load_state().await?;
        if let Some(urn) = state.urn.clone() {
            return Ok(Reconciled::Found(receipt(urn, Some("already posted (checkpoint)".into()))));
        }
        let Some(first) = state.first_post_at else {
            return Ok(Reconciled::NotFound);
        };
        if Utc::now() - first > DUPLICATE_WINDOW {
            return Ok(Reconciled::CannotCheck(format!(
                "the first POST went out at {} — beyond LinkedIn's duplicate-detection window, so a re-POST could make a second post; check the feed of {} by hand",
                first.to_rfc3339(),
                self.author
            )));
        }
        let mut r = self.post_once(rendering, ctx, &mut state).await?;
        if r.note.is_none() {
            r.note = Some("not on LinkedIn before reconciliation; posted by the duplicate probe".into());
        }
        Ok(Reconciled::Found(r))
    }

    /// `GET /v2/userinfo`: 401 means the token is dead. A 403 (token without the `openid`
    /// scope) still proves the token authenticates, so it passes.
    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        let req = http::client().get(format!("{}/v2/userinfo", self.base)).timeout(self.timeout).bearer_auth(self.token.expose());
        let answer = http::send(req).await?;
        if answer.is_success() || answer.status == 403 {
            return Ok(());
        }
        Err(classify(answer.status, &answer.headers, &answer.body))
    }
}
