//! `ThreadsAdapter`: deliver a post or a thread part by part, resuming from the checkpoint.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::client::{Client, LINK_LIMIT_CODE, Status, is_not_ready};
use crate::channel::{Adapter, DeliveryCtx, DeliveryError, PartState, Receipt, Reconciled, ThreadProgress};
use crate::config::SecretString;
use crate::render::{Post, Rendering};

/// Waits between publish tries while a fresh container is not propagated yet (24/4279009).
/// After the last, the attempt ends retryable and the next one resumes with the saved container.
const PUBLISH_WAITS: &[Duration] =
    &[Duration::from_millis(250), Duration::from_millis(500), Duration::from_secs(1), Duration::from_secs(2)];

/// Most unique links Threads accepts in one post.
const LINK_LIMIT: usize = 5;

/// Delivers to one Threads account.
pub struct ThreadsAdapter {
    name: String,
    client: Client,
    publish_waits: Vec<Duration>,
}

impl ThreadsAdapter {
    /// An adapter for `user_id` (or `me`) at `api_base` (e.g. `https://graph.threads.net`).
    pub fn new(name: &str, api_base: &str, user_id: &str, token: SecretString, timeout: Duration) -> Self {
        Self { name: name.to_string(), client: Client::new(api_base, user_id, token, timeout), publish_waits: PUBLISH_WAITS.to_vec() }
    }

    /// An adapter whose token comes from the credential store (see `auth.rs`).
    pub(super) fn with_source(name: &str, api_base: &str, user_id: &str, token: super::auth::TokenSource, timeout: Duration) -> Self {
        Self { name: name.to_string(), client: Client::with_source(api_base, user_id, token, timeout), publish_waits: PUBLISH_WAITS.to_vec() }
    }

    /// Replace the in-process waits for the propagation race (tests shorten them).
    pub fn with_publish_waits(mut self, waits: Vec<Duration>) -> Self {
        self.publish_waits = waits;
        self
    }

    /// Publish a container, waiting briefly while Threads says it does not exist yet.
    async fn publish(&self, container: &str) -> Result<String, DeliveryError> {
        let mut waits = self.publish_waits.iter();
        loop {
            match self.client.publish(container).await {
                Err(e) if is_not_ready(&e) => match waits.next() {
                    Some(w) => {
                        tracing::debug!(channel = %self.name, container_id = %container, wait_ms = w.as_millis() as u64, "Threads container not ready; waiting.");
                        tokio::time::sleep(*w).await;
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }

    /// The media id of a published part, found by its text in the account's recent posts
    /// (part 0) or replies (later parts).
    async fn find_media(&self, index: usize, text: &str, reply_to: Option<&str>) -> Result<Option<String>, DeliveryError> {
        let edge = if index == 0 { "threads" } else { "replies" };
        let recent = self.client.recent(edge).await?;
        Ok(recent
            .into_iter()
            .find(|m| {
                m.text.as_deref().map(str::trim) == Some(text.trim())
                    && match (reply_to, &m.replied_to) {
                        (Some(want), Some(got)) => got.id == want,
                        _ => true,
                    }
            })
            .map(|m| m.id))
    }

    /// Send part `i`: reuse its saved container when it is still good, else make one (saved
    /// before publishing), then publish.
    async fn send_part(
        &self,
        ctx: &DeliveryCtx,
        progress: &mut ThreadProgress,
        i: usize,
        text: &str,
        reply_to: Option<&str>,
    ) -> Result<String, DeliveryError> {
        if let Some(cid) = container_of(&progress.parts[i]) {
            match self.client.status(&cid).await? {
                Status::Published => {
                    return match self.find_media(i, text, reply_to).await? {
                        Some(id) => Ok(id),
                        None => Err(DeliveryError::unknown_outcome(format!(
                            "threads: container {cid} of part {} is published but the post is not in the account's list",
                            i + 1
                        ))),
                    };
                }
                Status::Finished | Status::InProgress => {
                    tracing::info!(channel = %self.name, part = i + 1, container_id = %cid, "Resuming with the saved Threads container.");
                    return self.publish(&cid).await;
                }
                Status::Expired | Status::Error(_) => {
                    tracing::info!(channel = %self.name, part = i + 1, container_id = %cid, "Saved Threads container is unusable; creating a new one.");
                }
            }
        }
        let cid = self.client.create_container(text, reply_to).await?;
        progress.parts[i].prepared = json!({ "container_id": cid });
        ctx.save_state(progress).await?;
        tracing::info!(channel = %self.name, part = i + 1, container_id = %cid, "Created Threads container.");
        self.publish(&cid).await
    }

    fn receipt(&self, progress: &ThreadProgress, n: usize) -> Receipt {
        let first = &progress.parts[0];
        Receipt {
            remote_id: first.remote_id.clone().unwrap_or_default(),
            url: first.url.clone(),
            awaiting_confirmation: false,
            note: (n > 1).then(|| format!("thread of {n} posts")),
        }
    }
}

/// Unique links in a text (trailing punctuation is not part of a link).
fn unique_links(text: &str) -> usize {
    let re = regex::Regex::new(r"https?://[^\s]+").expect("static regex");
    re.find_iter(text)
        .map(|m| m.as_str().trim_end_matches(['.', ',', ')', '!', '?', ';', ':']))
        .collect::<std::collections::HashSet<_>>()
        .len()
}

fn container_of(part: &PartState) -> Option<String> {
    part.prepared.get("container_id").and_then(|v| v.as_str()).map(str::to_string)
}

fn posts(rendering: &Rendering) -> Result<&[Post], DeliveryError> {
    match rendering.posts() {
        Some(p) if !p.posts.is_empty() => Ok(&p.posts),
        Some(_) => Err(DeliveryError::permanent("threads: the rendering has no posts")),
        None => Err(DeliveryError::permanent("threads: expected a posts rendering")),
    }
}

/// Check every part before sending any, so a bad part 3 never leaves half a thread.
fn preflight(posts: &[Post]) -> Result<(), DeliveryError> {
    for (i, p) in posts.iter().enumerate() {
        let n = unique_links(&p.text);
        if n > LINK_LIMIT {
            return Err(DeliveryError::permanent(format!(
                "threads: {LINK_LIMIT_CODE}: part {} has {n} unique links; Threads allows {LINK_LIMIT}",
                i + 1
            )));
        }
        if p.text.trim().is_empty() {
            return Err(DeliveryError::permanent(format!("threads: part {} is empty", i + 1)));
        }
    }
    Ok(())
}

#[async_trait]
impl Adapter for ThreadsAdapter {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let posts = posts(rendering)?;
        preflight(posts)?;
        let mut progress: ThreadProgress = ctx.load_state().await?;
        for i in 0..posts.len() {
            if progress.parts.len() <= i {
                progress.parts.push(PartState::default());
            }
            if progress.parts[i].remote_id.is_some() {
                continue;
            }
            let reply_to = match i {
                0 => None,
                _ => progress.parts[i - 1].remote_id.clone(),
            };
            let media = self.send_part(ctx, &mut progress, i, &posts[i].text, reply_to.as_deref()).await?;
            progress.parts[i].remote_id = Some(media.clone());
            ctx.save_state(&progress).await?;
            tracing::info!(channel = %self.name, part = i + 1, of = posts.len(), media_id = %media, "Published Threads post.");
            if i == 0 {
                // Best effort: the URL is for the status page; the post exists either way.
                if let Ok(Some(url)) = self.client.permalink(&media).await {
                    progress.parts[0].url = Some(url);
                    ctx.save_state(&progress).await?;
                }
            }
        }
        Ok(self.receipt(&progress, posts.len()))
    }

    /// Settled by the saved containers: every part `PUBLISHED` → found; a part whose container
    /// is `FINISHED`, `EXPIRED`, `ERROR` or was never made → not found (a retry resumes there).
    /// A published part's media id is saved, so the retry does not repeat it.
    async fn find_existing(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        let posts = posts(rendering)?;
        let mut progress: ThreadProgress = ctx.load_state().await?;
        if progress.parts.is_empty() {
            return Ok(Reconciled::NotFound);
        }
        for (i, post) in posts.iter().enumerate() {
            let Some(part) = progress.parts.get(i) else {
                return Ok(Reconciled::NotFound);
            };
            if part.remote_id.is_some() {
                continue;
            }
            let Some(cid) = container_of(part) else {
                return Ok(Reconciled::NotFound);
            };
            if self.client.status(&cid).await? != Status::Published {
                return Ok(Reconciled::NotFound);
            }
            let reply_to = if i == 0 { None } else { progress.parts[i - 1].remote_id.clone() };
            match self.find_media(i, &post.text, reply_to.as_deref()).await? {
                Some(id) => {
                    progress.parts[i].remote_id = Some(id);
                    ctx.save_state(&progress).await?;
                }
                None => {
                    return Ok(Reconciled::CannotCheck(format!(
                        "container {cid} of part {} is published, but the post is not among the account's recent posts",
                        i + 1
                    )));
                }
            }
        }
        if progress.parts[0].url.is_none()
            && let Some(id) = progress.parts[0].remote_id.clone()
                && let Ok(Some(url)) = self.client.permalink(&id).await {
                    progress.parts[0].url = Some(url);
                    ctx.save_state(&progress).await?;
                }
        let mut r = self.receipt(&progress, posts.len());
        r.note = Some("reconciled via container status".into());
        Ok(Reconciled::Found(r))
    }

    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        self.client.me().await.map(|_| ())
    }
}
