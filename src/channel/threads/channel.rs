//! `ThreadsAdapter`: deliver a post or a thread part by part, resuming from the checkpoint.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::client::{Client, LINK_LIMIT_CODE, Status, is_not_ready};
use crate::channel::thread::{self, Lookup, PartCall, PartView, Posted, Settle, ThreadNetwork};
use crate::channel::{Adapter, DeliveryCtx, DeliveryError, PartState, Receipt, Reconciled, ThreadProgress};
use crate::config::SecretString;
use crate::render::{Post, Rendering};

/// Waits between publish tries while a fresh container is not propagated yet (24/4279009).
/// After the last, the attempt ends retryable and the next one resumes with the saved container.
const PUBLISH_WAITS: &[Duration] =
    &[Duration::from_millis(250), Duration::from_millis(500), Duration::from_secs(1), Duration::from_secs(2)];

/// Delivers to one Threads account.
pub struct ThreadsAdapter {
    name: String,
    client: Client,
    publish_waits: Vec<Duration>,
    /// Most unique links in one post (`max_links`).
    link_limit: usize,
    /// The channel posts threads: replies need `threads_manage_replies`, reconciling them
    /// `threads_read_replies`.
    threads: bool,
}

impl ThreadsAdapter {
    /// An adapter for `user_id` (or `me`) at `api_base` (e.g. `https://graph.threads.net`).
    pub fn new(name: &str, api_base: &str, user_id: &str, token: SecretString, timeout: Duration) -> Self {
        Self {
            name: name.to_string(),
            client: Client::new(api_base, user_id, token, timeout),
            publish_waits: PUBLISH_WAITS.to_vec(),
            link_limit: crate::render::count::THREADS_MAX_LINKS,
            threads: false,
        }
    }

    /// Most unique links in one post (the channel's `max_links`).
    pub fn with_link_limit(mut self, n: usize) -> Self {
        self.link_limit = n;
        self
    }

    /// Whether the channel posts threads (its health check then needs the reply permissions).
    pub fn with_thread_format(mut self, threads: bool) -> Self {
        self.threads = threads;
        self
    }

    /// An adapter whose token comes from the credential store (see `auth.rs`).
    pub(super) fn with_source(name: &str, api_base: &str, user_id: &str, token: super::auth::TokenSource, timeout: Duration) -> Self {
        Self {
            name: name.to_string(),
            client: Client::with_source(api_base, user_id, token, timeout),
            publish_waits: PUBLISH_WAITS.to_vec(),
            link_limit: crate::render::count::THREADS_MAX_LINKS,
            threads: false,
        }
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
fn preflight(posts: &[Post], link_limit: usize) -> Result<(), DeliveryError> {
    for (i, p) in posts.iter().enumerate() {
        let n = unique_links(&p.text);
        if n > link_limit {
            return Err(DeliveryError::permanent(format!(
                "threads: {LINK_LIMIT_CODE}: part {} has {n} unique links; this channel allows {link_limit} (`max_links`)",
                i + 1
            )));
        }
        if p.text.trim().is_empty() {
            return Err(DeliveryError::permanent(format!("threads: part {} is empty", i + 1)));
        }
    }
    Ok(())
}

/// Every container id is saved before it is published, so a part in flight is settled by its
/// container's status; an unpublished container is invisible, so nothing is saved before one
/// is made.
#[async_trait]
impl ThreadNetwork for ThreadsAdapter {
    const SETTLE: Settle = Settle::PostAgain;

    fn network(&self) -> &'static str {
        "Threads"
    }

    fn marker(&self, _index: usize, _earlier: &serde_json::Value) -> Option<serde_json::Value> {
        None
    }

    /// Reuse the part's saved container when it is still good, else make one (saved before
    /// publishing), then publish.
    async fn post_part(&self, part: &mut PartCall<'_>) -> Result<Posted, DeliveryError> {
        let v = part.view();
        let (i, text, reply_to) = (v.index, v.post().text.clone(), v.parent_id().map(str::to_string));
        if let Some(cid) = container_of(v.state()) {
            match self.client.status(&cid).await? {
                Status::Published => {
                    return match self.find_media(i, &text, reply_to.as_deref()).await? {
                        Some(id) => Ok(Posted::new(id, None)),
                        None => Err(DeliveryError::unknown_outcome(format!(
                            "threads: container {cid} of part {} is published but the post is not in the account's list",
                            i + 1
                        ))),
                    };
                }
                Status::Finished | Status::InProgress => {
                    tracing::info!(channel = %self.name, part = i + 1, container_id = %cid, "Resuming with the saved Threads container.");
                    return Ok(Posted::new(self.publish(&cid).await?, None));
                }
                Status::Expired | Status::Error(_) => {
                    tracing::info!(channel = %self.name, part = i + 1, container_id = %cid, "Saved Threads container is unusable; creating a new one.");
                }
            }
        }
        let cid = self.client.create_container(&text, reply_to.as_deref()).await?;
        part.save_marker(json!({ "container_id": cid })).await?;
        tracing::info!(channel = %self.name, part = i + 1, container_id = %cid, "Created Threads container.");
        Ok(Posted::new(self.publish(&cid).await?, None))
    }

    /// `PUBLISHED` → found by its text among the account's recent posts or replies; a container
    /// `FINISHED`, `EXPIRED`, `ERROR` or never made → not there (a retry resumes there).
    async fn find_part(&self, part: PartView<'_>) -> Result<Lookup, DeliveryError> {
        let Some(cid) = container_of(part.state()) else { return Ok(Lookup::NotThere) };
        if self.client.status(&cid).await? != Status::Published {
            return Ok(Lookup::NotThere);
        }
        Ok(match self.find_media(part.index, &part.post().text, part.parent_id()).await? {
            Some(id) => Lookup::Found(Posted::new(id, None)),
            None => Lookup::CannotCheck(format!(
                "container {cid} of part {} is published, but the post is not among the account's recent posts",
                part.index + 1
            )),
        })
    }

    /// The first part's permalink, for the status page (best effort: the post exists either way).
    async fn url_of(&self, index: usize, id: &str) -> Option<String> {
        if index != 0 {
            return None;
        }
        self.client.permalink(id).await.ok().flatten()
    }

    fn note(&self, _progress: &ThreadProgress, total: usize, reconciled: bool) -> Option<String> {
        if reconciled {
            Some("reconciled via container status".into())
        } else {
            (total > 1).then(|| format!("thread of {total} posts"))
        }
    }
}

#[async_trait]
impl Adapter for ThreadsAdapter {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let posts = posts(rendering)?;
        preflight(posts, self.link_limit)?;
        thread::deliver(self, posts, ctx).await
    }

    async fn find_existing(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        thread::find_existing(self, posts(rendering)?, ctx).await
    }

    /// The token works (`threads_basic`), may publish (`threads_content_publish`, through the
    /// publishing limit) and, for a thread channel, may read replies (`threads_read_replies`).
    /// `threads_manage_replies` can't be checked without posting a reply.
    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        self.client.me().await?;
        let mut probes = vec![("threads_publishing_limit", "threads_content_publish")];
        if self.threads {
            probes.push(("replies", "threads_read_replies"));
        }
        for (edge, permission) in probes {
            if let Err(e) = self.client.probe(edge).await {
                if e.kind() == crate::channel::Kind::Auth && e.message().contains("(code 10)") {
                    let out = DeliveryError::auth(format!(
                        "threads: the token lacks the `{permission}` permission: re-authorise the app with threads_basic, threads_content_publish{} ({})",
                        if self.threads { ", threads_manage_replies and threads_read_replies" } else { "" },
                        e.message()
                    ));
                    return Err(match e.status() {
                        Some(s) => out.with_status(s),
                        None => out,
                    });
                }
                return Err(e);
            }
        }
        Ok(())
    }
}
