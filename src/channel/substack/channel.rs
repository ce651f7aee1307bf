//! `SubstackAdapter`: draft → prepublish → publish, with the draft id checkpointed.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::channel::{Adapter, DeliveryCtx, DeliveryError, Kind, Receipt, Reconciled, http};
use crate::config::{SecretString, SubstackConfig, SubstackMode};
use crate::render::{ArticleRendering, Rendering};

/// What the checkpoint remembers between attempts.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct SubstackState {
    /// Set as soon as `POST /drafts` answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft_id: Option<u64>,
    /// Set before `POST /drafts` goes out: a retry without a draft id first looks for a draft
    /// that call may have made.
    #[serde(default)]
    pub create_sent: bool,
    /// The rendering's slug is set on the draft.
    #[serde(default)]
    pub slug_set: bool,
}

/// Delivers to one Substack publication.
pub struct SubstackAdapter {
    name: String,
    base: String,
    cookie: SecretString,
    cookie_name: Option<String>,
    user_agent: String,
    profile_url: String,
    mode: SubstackMode,
    audience: String,
    send_email: bool,
    user_id: Option<u64>,
    /// The user id read from `profile_url`, once per process, when `user_id` is not set.
    fetched_user_id: tokio::sync::OnceCell<u64>,
    timeout: Duration,
}

fn article(rendering: &Rendering) -> Result<&ArticleRendering, DeliveryError> {
    match rendering {
        Rendering::Article(a) if a.doc.is_some() => Ok(a),
        Rendering::Article(_) => Err(DeliveryError::permanent("substack: the article rendering has no ProseMirror `doc`")),
        _ => Err(DeliveryError::permanent("substack: expected an article rendering")),
    }
}

/// Make 401/403 say what to do, keep everything else as classified. A 403 is a refusal by
/// policy first: Substack is reported to refuse non-browser User-Agents (an expired cookie can
/// answer 403 too, so the hint names both).
fn explain(e: DeliveryError, user_agent: &str) -> DeliveryError {
    if e.status() == Some(403) {
        let said = e.message().trim_start_matches("substack: ").trim();
        let said = if said.starts_with('<') { "an HTML page (a bot check, not the API)" } else { said };
        return http::forbidden(
            "substack",
            403,
            said,
            &format!(
                "it may be the User-Agent: Substack refuses some non-browser ones; set `user_agent` to your browser's (now \"{user_agent}\"). If that is browser-like already, the cookie may have expired: sign in again and update `cookie`"
            ),
        );
    }
    if e.kind() == Kind::Auth {
        let msg = format!(
            "substack: the session cookie was refused (it expires; sign in again and copy `connect.sid`, or `substack.sid` on older accounts, into `cookie`): {}",
            e.message()
        );
        let out = DeliveryError::auth(msg);
        return match e.status() {
            Some(s) => out.with_status(s),
            None => out,
        };
    }
    e
}

/// A read, or a create whose answer was lost, changes nothing visible: retry is safe.
fn harmless(e: DeliveryError) -> DeliveryError {
    if e.kind() == Kind::UnknownOutcome {
        let out = DeliveryError::retryable(e.message().to_string());
        return match e.status() {
            Some(s) => out.with_status(s),
            None => out,
        };
    }
    e
}

impl SubstackAdapter {
    /// An adapter for the publication at `cfg.api_base`.
    pub fn new(name: &str, cfg: &SubstackConfig, cookie: SecretString, timeout: Duration) -> Self {
        Self {
            name: name.to_string(),
            base: cfg.api_base.trim_end_matches('/').to_string(),
            cookie,
            cookie_name: cfg.cookie_name.clone(),
            user_agent: cfg.user_agent.clone(),
            profile_url: cfg.profile_url.clone(),
            mode: cfg.mode,
            audience: cfg.audience.clone(),
            send_email: cfg.send_email,
            user_id: cfg.user_id,
            fetched_user_id: tokio::sync::OnceCell::new(),
            timeout,
        }
    }

    /// The `POST /api/v1/drafts` body. `draft_body` is the ProseMirror document **encoded as
    /// a JSON string**, as Substack's editor stores it; `draft_bylines` names the author
    /// (`author` is their user id), which `POST /drafts` requires.
    pub fn draft_body(&self, a: &ArticleRendering, author: u64) -> Result<Value, DeliveryError> {
        let doc = a.doc.as_ref().ok_or_else(|| DeliveryError::permanent("substack: no ProseMirror doc"))?;
        let body = serde_json::to_string(doc).map_err(|e| DeliveryError::permanent(format!("substack: doc encode: {e}")))?;
        let bylines = json!([{"id": author, "is_guest": false}]);
        Ok(json!({
            "type": "newsletter",
            "draft_title": a.title,
            "draft_subtitle": a.subtitle,
            "draft_body": body,
            "draft_bylines": bylines,
            "audience": self.audience,
            "draft_section_id": null,
            "section_chosen": true,
            "write_comment_permissions": "everyone",
        }))
    }

    /// The `Cookie` header: a whole browser cookie string (`name=value; …`) as given; a bare
    /// value under `cookie_name`, or, without one, under both names a Substack session uses
    /// (`connect.sid` now, `substack.sid` on older accounts).
    fn cookie_header(&self) -> String {
        cookie_header(self.cookie.expose(), self.cookie_name.as_deref())
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        http::client()
            .request(method, url)
            .timeout(self.timeout)
            .header(reqwest::header::COOKIE, self.cookie_header())
            .header(reqwest::header::USER_AGENT, &self.user_agent)
            .header(reqwest::header::ACCEPT, "application/json")
    }

    /// The author's user id: `user_id`, else `GET profile_url` (once per process).
    async fn author_id(&self) -> Result<u64, DeliveryError> {
        if let Some(id) = self.user_id {
            return Ok(id);
        }
        let id = self
            .fetched_user_id
            .get_or_try_init(|| async {
                let res = http::send(self.request(reqwest::Method::GET, &self.profile_url)).await.map_err(harmless)?;
                if !res.is_success() {
                    let e = http::error_from_response(res.status, &res.headers, &format!("substack: {}", res.body));
                    return Err(explain(harmless(e), &self.user_agent));
                }
                let v: Value = res.json().map_err(|e| DeliveryError::retryable(format!("substack: unreadable profile answer: {e}")))?;
                v["id"].as_u64().ok_or_else(|| {
                    DeliveryError::permanent(format!(
                        "substack: {} has no user id; set `user_id` on the channel (your numeric Substack user id)",
                        self.profile_url
                    ))
                })
            })
            .await?;
        tracing::debug!(channel = %self.name, user_id = id, "Substack author id.");
        Ok(*id)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Result<Option<Value>, DeliveryError> {
        let mut req = self.request(method, &format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(b);
        }
        let http::Answer { status, headers, body: text } = http::send(req).await.map_err(|e| explain(e, &self.user_agent))?;
        if status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            return Err(explain(http::error_from_response(status, &headers, &format!("substack: {text}")), &self.user_agent));
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| DeliveryError::unknown_outcome(format!("substack: unreadable answer ({e}): {text}")).with_status(status))
    }

    async fn get(&self, path: &str) -> Result<Option<Value>, DeliveryError> {
        self.call(reqwest::Method::GET, path, None).await.map_err(harmless)
    }

    fn editor_url(&self, id: u64) -> String {
        format!("{}/publish/post/{id}", self.base)
    }

    fn post_url(&self, draft: &Value) -> Option<String> {
        draft["canonical_url"]
            .as_str()
            .map(str::to_string)
            .or_else(|| draft["slug"].as_str().map(|s| format!("{}/p/{s}", self.base)))
    }

    fn published_receipt(&self, id: u64, draft: &Value, note: &str) -> Receipt {
        Receipt { remote_id: id.to_string(), url: self.post_url(draft), awaiting_confirmation: false, note: Some(note.into()), warning: None }
    }

    fn draft_receipt(&self, id: u64) -> Receipt {
        Receipt {
            remote_id: id.to_string(),
            url: Some(self.editor_url(id)),
            awaiting_confirmation: true,
            note: Some("draft created; publish it in Substack's editor".into()),
            warning: None,
        }
    }

    /// After a create whose answer was lost: the unpublished draft that call made, if any —
    /// same title, and the same body where the list shows it.
    async fn adopt_orphan(&self, body: &Value) -> Result<Option<u64>, DeliveryError> {
        let Some(list) = self.get("/api/v1/drafts?filter=&offset=0&limit=25").await? else {
            return Ok(None);
        };
        let items = list.as_array().cloned().or_else(|| list["drafts"].as_array().cloned()).unwrap_or_default();
        Ok(items
            .iter()
            .find(|d| {
                d["is_published"] != json!(true)
                    && d["draft_title"] == body["draft_title"]
                    && (d.get("draft_body").is_none() || d["draft_body"] == body["draft_body"])
            })
            .and_then(|d| d["id"].as_u64()))
    }

    /// Make sure a draft exists and its id is saved; returns the id.
    async fn ensure_draft(&self, a: &ArticleRendering, ctx: &DeliveryCtx, state: &mut SubstackState) -> Result<u64, DeliveryError> {
        if let Some(id) = state.draft_id {
            return Ok(id);
        }
        let body = self.draft_body(a, self.author_id().await?)?;
        if state.create_sent
            && let Some(id) = self.adopt_orphan(&body).await? {
                tracing::info!(channel = %self.name, draft_id = id, "Adopting the Substack draft an earlier attempt created.");
                state.draft_id = Some(id);
                ctx.save_state(state).await?;
                return Ok(id);
            }
        state.create_sent = true;
        ctx.save_state(state).await?;
        let Some(created) = self.call(reqwest::Method::POST, "/api/v1/drafts", Some(&body)).await.map_err(harmless)? else {
            return Err(DeliveryError::permanent(format!(
                "substack: {}/api/v1/drafts answered 404; check `api_base` (the publication root, e.g. https://yourpub.substack.com)",
                self.base
            ))
            .with_status(404));
        };
        let id = created["id"]
            .as_u64()
            .ok_or_else(|| DeliveryError::retryable(format!("substack: draft answer without an id: {created}")))?;
        state.draft_id = Some(id);
        ctx.save_state(state).await?;
        tracing::info!(channel = %self.name, draft_id = id, "Created Substack draft.");
        Ok(id)
    }
}

#[async_trait]
impl Adapter for SubstackAdapter {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let a = article(rendering)?;
        let mut state: SubstackState = ctx.load_state().await?;
        let retrying = state.draft_id.is_some();
        let id = self.ensure_draft(a, ctx, &mut state).await?;

        if retrying {
            // Never a second draft: read the saved one.
            let Some(draft) = self.get(&format!("/api/v1/drafts/{id}")).await? else {
                return Err(DeliveryError::permanent(format!(
                    "substack: draft {id} no longer exists (deleted in Substack?); republish to start over"
                ))
                .with_status(404));
            };
            if draft["is_published"] == json!(true) {
                return Ok(self.published_receipt(id, &draft, "already published"));
            }
        }

        if let (Some(slug), false) = (&a.slug, state.slug_set) {
            self.call(reqwest::Method::PUT, &format!("/api/v1/drafts/{id}"), Some(&json!({ "slug": slug })))
                .await
                .map_err(harmless)?
                .ok_or_else(|| DeliveryError::permanent(format!("substack: draft {id} vanished while setting its slug")))?;
            state.slug_set = true;
            ctx.save_state(&state).await?;
        }

        if self.mode == SubstackMode::Draft {
            tracing::info!(channel = %self.name, draft_id = id, "Substack draft ready for the author.");
            return Ok(self.draft_receipt(id));
        }

        self.get(&format!("/api/v1/drafts/{id}/prepublish"))
            .await?
            .ok_or_else(|| DeliveryError::permanent(format!("substack: draft {id} not found at prepublish")))?;
        let published = self
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/drafts/{id}/publish"),
                Some(&json!({"send": self.send_email, "share_automatically": false})),
            )
            .await?
            .ok_or_else(|| DeliveryError::permanent(format!("substack: draft {id} not found at publish")))?;
        tracing::info!(channel = %self.name, draft_id = id, email = self.send_email, "Published Substack post.");
        Ok(self.published_receipt(id, &published, "published"))
    }

    /// With a saved draft id: the draft says whether it is published (in draft mode, its
    /// existence is the result). Without one: the published list, by slug (or title).
    async fn find_existing(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        let a = article(rendering)?;
        let state: SubstackState = ctx.load_state().await?;
        if let Some(id) = state.draft_id {
            let Some(draft) = self.get(&format!("/api/v1/drafts/{id}")).await? else {
                return Ok(Reconciled::CannotCheck(format!("draft {id} was created but no longer exists on Substack")));
            };
            if draft["is_published"] == json!(true) {
                return Ok(Reconciled::Found(self.published_receipt(id, &draft, "reconciled via the saved draft id")));
            }
            if self.mode == SubstackMode::Draft {
                return Ok(Reconciled::Found(self.draft_receipt(id)));
            }
            return Ok(Reconciled::NotFound);
        }
        let Some(list) = self.get("/api/v1/post_management/published?offset=0&limit=25&order_by=post_date&order_direction=desc").await? else {
            return Ok(Reconciled::NotFound);
        };
        let posts = list["posts"].as_array().cloned().or_else(|| list.as_array().cloned()).unwrap_or_default();
        let hit = posts.iter().find(|p| match &a.slug {
            Some(slug) => p["slug"].as_str() == Some(slug.as_str()),
            None => p["title"].as_str().or(p["draft_title"].as_str()) == Some(a.title.as_str()),
        });
        Ok(match hit.and_then(|p| p["id"].as_u64().map(|id| (id, p))) {
            Some((id, p)) => Reconciled::Found(self.published_receipt(id, p, "found in the published list")),
            None => Reconciled::NotFound,
        })
    }

    /// `GET /api/v1/drafts?limit=1`: the cookie opens the publication.
    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        self.get("/api/v1/drafts?offset=0&limit=1").await.map(|_| ())
    }
}

/// The `Cookie` header for a pasted cookie: a whole browser cookie string (`name=value; …`) as
/// given; a bare value under `name`, or, without one, under both names a Substack session uses
/// (`connect.sid` now, `substack.sid` on older accounts).
pub fn cookie_header(value: &str, name: Option<&str>) -> String {
    if value.contains('=') {
        return value.to_string();
    }
    match name {
        Some(name) => format!("{name}={value}"),
        None => format!("connect.sid={value}; substack.sid={value}"),
    }
}
