//! `XChannel`: posts a short or a thread with `POST /2/tweets`, part by part.

use async_trait::async_trait;
use reqwest::Method;
use serde_json::json;
use unicode_normalization::UnicodeNormalization;

use super::client::{XClient, XResponse};
use crate::channel::{
    Adapter, DeliveryCtx, DeliveryError, PartState, Receipt, Reconciled, ThreadProgress, http,
};
use crate::render::{Post, Rendering};

/// How many recent posts reconciliation reads.
const TIMELINE_READ: &str = "50";
/// A timeline post counts as ours only if it is no older than the part's start minus this.
const CLOCK_SLACK_SECS: i64 = 300;

/// The X adapter for one account.
pub struct XChannel {
    pub(crate) name: String,
    pub(crate) client: XClient,
    pub(crate) user_id: Option<String>,
}

/// A post as read back from the timeline.
struct TimelinePost {
    id: String,
    text: String,
    created_at: Option<chrono::DateTime<chrono::Utc>>,
    replied_to: Option<String>,
}

impl XChannel {
    fn url(id: &str) -> String {
        format!("https://x.com/i/web/status/{id}")
    }

    fn receipt(progress: &ThreadProgress, note: Option<&str>) -> Receipt {
        let first = progress.parts.first().and_then(|p| p.remote_id.clone()).unwrap_or_default();
        Receipt { url: Some(Self::url(&first)), remote_id: first, awaiting_confirmation: false, note: note.map(Into::into), warning: None }
    }

    /// Read the account's recent posts, newest first.
    async fn timeline(&self, user_id: &str) -> Result<Vec<TimelinePost>, DeliveryError> {
        let query = [
            ("max_results", TIMELINE_READ.to_string()),
            ("tweet.fields", "created_at,referenced_tweets".to_string()),
        ];
        let res = self.client.send(Method::GET, &format!("/2/users/{user_id}/tweets"), &query, None).await?;
        if !res.is_success() {
            return Err(http::error_from_response(res.status, &res.headers, &res.body));
        }
        let v: serde_json::Value = serde_json::from_str(&res.body)
            .map_err(|e| DeliveryError::retryable(format!("X timeline answer unreadable: {e}")))?;
        let data = v.get("data").and_then(|d| d.as_array()).cloned().unwrap_or_default();
        Ok(data
            .iter()
            .filter_map(|p| {
                Some(TimelinePost {
                    id: p.get("id")?.as_str()?.to_string(),
                    text: p.get("text")?.as_str()?.to_string(),
                    created_at: p
                        .get("created_at")
                        .and_then(|c| c.as_str())
                        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                        .map(|c| c.to_utc()),
                    replied_to: p.get("referenced_tweets").and_then(|r| r.as_array()).and_then(|refs| {
                        refs.iter()
                            .find(|r| r.get("type").and_then(|t| t.as_str()) == Some("replied_to"))
                            .and_then(|r| r.get("id")?.as_str().map(String::from))
                    }),
                })
            })
            .collect())
    }

    /// Look for part `i` on the timeline. `Ok(None)`: not there.
    async fn find_part(
        &self,
        user_id: &str,
        post: &Post,
        parent: Option<&str>,
        state: &PartState,
    ) -> Result<Option<String>, DeliveryError> {
        let started = state
            .prepared
            .get("started_at")
            .and_then(|s| s.as_str())
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|s| s.to_utc());
        let want = comparable(&post.text);
        let found = self.timeline(user_id).await?.into_iter().find(|p| {
            comparable(&p.text) == want
                && match (parent, &p.replied_to) {
                    (Some(parent), Some(r)) => r == parent,
                    (Some(_), None) => false,
                    (None, _) => true,
                }
                && match (started, p.created_at) {
                    (Some(s), Some(c)) => c >= s - chrono::Duration::seconds(CLOCK_SLACK_SECS),
                    _ => true,
                }
        });
        Ok(found.map(|p| p.id))
    }

    /// Reconcile every started-but-unconfirmed part. Returns false when one is not there
    /// (or can't be checked), leaving it unconfirmed.
    async fn reconcile(
        &self,
        posts: &[Post],
        progress: &mut ThreadProgress,
        ctx: &DeliveryCtx,
    ) -> Result<bool, DeliveryError> {
        let Some(user_id) = self.user_id.as_deref() else { return Ok(false) };
        // Index loop: each part needs the one before it.
        #[allow(clippy::needless_range_loop)]
        for i in 0..progress.parts.len().min(posts.len()) {
            if progress.parts[i].remote_id.is_some() {
                continue;
            }
            let parent = if i == 0 { None } else { progress.parts[i - 1].remote_id.clone() };
            match self.find_part(user_id, &posts[i], parent.as_deref(), &progress.parts[i]).await? {
                Some(id) => {
                    tracing::info!(channel = %self.name, part = i, remote_id = %id, "Found an unconfirmed X post on the timeline.");
                    progress.parts[i].url = Some(Self::url(&id));
                    progress.parts[i].remote_id = Some(id);
                    ctx.save_state(progress).await?;
                }
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    fn classify(&self, res: &XResponse, part: usize) -> DeliveryError {
        if res.status == 403 && res.body.contains("duplicate content") {
            // X refuses a text it already has, without saying which post: it is probably ours
            // from an attempt whose answer was lost. Reconcile, don't fail.
            return DeliveryError::unknown_outcome(format!(
                "X refused part {} as duplicate content: it was probably posted by an earlier attempt",
                part + 1
            ))
            .with_status(403);
        }
        if res.status == 403 && part > 0 && res.body.contains("Reply to this conversation is not allowed") {
            // X's "summon" rule on pay-per-use tiers (CHANNELS.md §1): the account may not reply
            // to its own post, so threads can't be posted. Not a credential problem.
            return DeliveryError::permanent(format!(
                "X refused part {} as a reply: this account's API tier does not allow programmatic replies; use format = \"short\" for this channel",
                part + 1
            ))
            .with_status(403);
        }
        let mut err = http::error_from_response(res.status, &res.headers, &res.body);
        if res.status == 429 {
            // A spent daily cap outlasts the 15-minute window: wait for the later reset.
            for family in ["x-user-limit-24hour", "x-app-limit-24hour"] {
                let remaining = res.headers.get(format!("{family}-remaining")).and_then(|v| v.to_str().ok());
                let reset = res.headers.get(format!("{family}-reset")).and_then(|v| v.to_str().ok());
                if let (Some("0"), Some(reset)) = (remaining, reset) {
                    let daily = http::parse_reset(reset, chrono::Utc::now());
                    if daily > err.retry_after() {
                        err = err.with_retry_after(daily);
                    }
                }
            }
        }
        err
    }
}

/// The text as X would give it back, with URLs masked (X rewrites them to t.co links).
pub(crate) fn comparable(text: &str) -> String {
    let text = text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">");
    let text: String = text.nfc().collect();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for r in crate::render::count::find_urls(&text) {
        out.push_str(&text[last..r.start]);
        out.push('\u{1}');
        last = r.end;
    }
    out.push_str(&text[last..]);
    out.trim().to_string()
}

#[async_trait]
impl Adapter for XChannel {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let posts = &rendering
            .posts()
            .ok_or_else(|| DeliveryError::permanent("the x channel needs a posts rendering"))?
            .posts;
        if posts.is_empty() {
            return Err(DeliveryError::permanent("the rendering has no posts"));
        }
        let mut progress: ThreadProgress = ctx.load_state().await?;
        // A part started by an earlier attempt whose answer was lost: look before resending.
        if progress.parts.iter().any(|p| p.remote_id.is_none()) {
            self.reconcile(posts, &mut progress, ctx).await?;
        }
        for (i, post) in posts.iter().enumerate() {
            if progress.parts.get(i).is_some_and(|p| p.remote_id.is_some()) {
                continue;
            }
            let parent = if i == 0 { None } else { progress.parts[i - 1].remote_id.clone() };
            // Record that this part is in flight before the call.
            progress.parts.truncate(i);
            progress.parts.push(PartState {
                prepared: json!({ "started_at": chrono::Utc::now().to_rfc3339() }),
                ..PartState::default()
            });
            ctx.save_state(&progress).await?;

            let mut body = json!({ "text": post.text });
            if let Some(parent) = &parent {
                body["reply"] = json!({ "in_reply_to_tweet_id": parent });
            }
            let res = self.client.send(Method::POST, "/2/tweets", &[], Some(&body)).await?;
            if !res.is_success() {
                let err = self.classify(&res, i);
                // The error is logged (redacted) by the pipeline; its text may echo the request.
                tracing::warn!(channel = %self.name, part = i, kind = err.kind().as_str(), "X refused a post.");
                return Err(err);
            }
            let v: serde_json::Value = serde_json::from_str(&res.body)
                .map_err(|e| DeliveryError::unknown_outcome(format!("X accepted part {} but the answer is unreadable: {e}", i + 1)))?;
            let id = v
                .pointer("/data/id")
                .and_then(|id| id.as_str())
                .ok_or_else(|| DeliveryError::unknown_outcome(format!("X answer for part {} has no data.id", i + 1)))?
                .to_string();
            tracing::info!(channel = %self.name, part = i, remote_id = %id, "X post created.");
            progress.parts[i].url = Some(Self::url(&id));
            progress.parts[i].remote_id = Some(id);
            ctx.save_state(&progress).await?;
        }
        Ok(Self::receipt(&progress, None))
    }

    async fn find_existing(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        let posts = &rendering
            .posts()
            .ok_or_else(|| DeliveryError::permanent("the x channel needs a posts rendering"))?
            .posts;
        let mut progress: ThreadProgress = ctx.load_state().await?;
        if progress.parts.is_empty() {
            // Every call is recorded before it is made: no record, no post.
            return Ok(Reconciled::NotFound);
        }
        if self.user_id.is_none() {
            return Ok(Reconciled::CannotCheck(
                "set `user_id` on the x channel so Herald can read the account's recent posts".into(),
            ));
        }
        if !self.reconcile(posts, &mut progress, ctx).await? {
            return Ok(Reconciled::NotFound);
        }
        if progress.parts.len() >= posts.len() {
            Ok(Reconciled::Found(Self::receipt(&progress, Some("reconciled via the account's recent posts"))))
        } else {
            // Earlier parts are there and recorded; a retry resumes at the next part.
            Ok(Reconciled::NotFound)
        }
    }

    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        let res = self.client.send(Method::GET, "/2/users/me", &[], None).await?;
        if res.is_success() { Ok(()) } else { Err(http::error_from_response(res.status, &res.headers, &res.body)) }
    }
}

#[cfg(test)]
mod tests {
    use super::comparable;

    #[test]
    fn comparable_masks_urls_and_unescapes() {
        assert_eq!(
            comparable("Read https://example.com/a?b=1 & more"),
            comparable("Read https://t.co/abcdEFGhij &amp; more")
        );
        assert_ne!(comparable("Read https://example.com/a now"), comparable("Read https://t.co/x later"));
        assert_eq!(comparable("cafe\u{301}"), comparable("café"));
    }
}
