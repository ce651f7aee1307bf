//! `XChannel`: posts a short or a thread with `POST /2/tweets`, part by part.

use async_trait::async_trait;
use reqwest::Method;
use serde_json::json;
use unicode_normalization::UnicodeNormalization;

use super::client::{XClient, XResponse};
use crate::channel::thread::{self, Lookup, PartCall, PartView, Posted, Settle, ThreadNetwork};
use crate::channel::{Adapter, DeliveryCtx, DeliveryError, Kind, PartState, Receipt, Reconciled, ThreadProgress, http};
use crate::config::ThreadFallback;
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
    pub(crate) fallback: ThreadFallback,
}

/// The standalone post's text in the saved state of a `thread_fallback = "link"` part.
fn fallback_text(p: &PartState) -> Option<&str> {
    p.prepared.get("fallback_text").and_then(|t| t.as_str())
}

/// The link a `thread_fallback = "link"` post carries: the first URL in the parts not yet up,
/// else in any part.
fn thread_link(posts: &[Post], from: usize) -> Option<String> {
    let later = posts[from..].iter().chain(posts[..from].iter());
    later
        .filter_map(|p| crate::render::count::find_urls(&p.text).first().map(|r| p.text[r.clone()].to_string()))
        .next()
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
    async fn find_on_timeline(
        &self,
        user_id: &str,
        text: &str,
        parent: Option<&str>,
        state: &PartState,
    ) -> Result<Option<String>, DeliveryError> {
        let started = state
            .prepared
            .get("started_at")
            .and_then(|s| s.as_str())
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|s| s.to_utc());
        let want = comparable(text);
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

    /// The account whose timeline reconciliation reads.
    async fn account(&self) -> Option<String> {
        match &self.user_id {
            Some(id) => Some(id.clone()),
            None => self.client.stored_account().await,
        }
    }

    /// `thread_fallback = "link"`: the rest of the thread as one standalone post with the
    /// issue's link. Its text is in the part's marker, saved before the call, so a lost answer
    /// is reconciled like any part.
    async fn post_link_fallback(&self, text: &str, from: usize) -> Result<Posted, DeliveryError> {
        let res = self.client.send(Method::POST, "/2/tweets", &[], Some(&json!({ "text": text }))).await?;
        if !res.is_success() {
            return Err(self.classify(&res, from));
        }
        let v: serde_json::Value = serde_json::from_str(&res.body)
            .map_err(|e| DeliveryError::unknown_outcome(format!("X accepted the link post but the answer is unreadable: {e}")))?;
        let id = v
            .pointer("/data/id")
            .and_then(|id| id.as_str())
            .ok_or_else(|| DeliveryError::unknown_outcome("X answer for the link post has no data.id"))?
            .to_string();
        tracing::info!(channel = %self.name, part = from, remote_id = %id, "X refused a reply; posted the rest as one post with the link.");
        Ok(Posted::new(id.clone(), Some(Self::url(&id))))
    }

    fn classify(&self, res: &XResponse, part: usize) -> DeliveryError {
        let detail = problem_detail(&res.body);
        if res.status == 402 {
            // Pay-per-use: the developer project has no credits left. Not the credential.
            return http::forbidden(
                "X",
                402,
                &detail,
                "the X developer project's credits are used up: add credits or raise the spend cap in the X Developer Console, then `herald republish`",
            );
        }
        if res.status == 403 && is_reply_refusal(&res.body) {
            // X's "summon" rule on pay-per-use tiers (CHANNELS.md §1): replies only where the
            // author mentioned the account. Not a credential problem.
            return http::forbidden(
                "X",
                403,
                &format!("part {} as a reply: {detail}", part + 1),
                "this account's API tier does not allow programmatic replies: use format = \"short\", or thread_fallback = \"link\" on this channel",
            );
        }
        if res.status == 403 && detail.to_ascii_lowercase().contains("not permitted") {
            return http::forbidden(
                "X",
                403,
                &detail,
                "the app or account may not do this: check that the app has Read and Write permission and the account is not restricted; new tokens won't help",
            );
        }
        if res.status == 403 && res.body.contains("duplicate content") {
            // X refuses a text it already has, without saying which post: it is probably ours
            // from an attempt whose answer was lost. Reconcile, don't fail.
            return DeliveryError::unknown_outcome(format!(
                "X refused part {} as duplicate content: it was probably posted by an earlier attempt",
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

/// `thread_fallback = "stop"`: the refusal, plus which parts are up, for `status`.
fn partial_thread(err: &DeliveryError, progress: &ThreadProgress, total: usize) -> DeliveryError {
    let up: Vec<String> = progress.parts.iter().filter_map(|p| p.url.clone()).collect();
    let out = DeliveryError::forbidden(format!(
        "{}. The thread stays partial: {} of {total} parts are up ({})",
        err.message(),
        up.len(),
        up.join(", ")
    ));
    match err.status() {
        Some(s) => out.with_status(s),
        None => out,
    }
}

/// Every known wording of X's refusal to post a reply under the 2026 "summon" rule (and the
/// older per-post reply restriction), lowercased.
const REPLY_REFUSALS: &[&str] = &[
    // POST /2/tweets, 2026-02 onwards.
    "reply to this conversation is not allowed",
    // POST /2/tweets, seen from 2026-07 (gptme-contrib#1302).
    "only reply to or quote posts where you are mentioned or are the author",
    // The author limited who can reply (v1.1 code 433, still seen through v2).
    "restricted who can reply",
];

/// True when an X answer refuses a post because it is a reply.
pub(crate) fn is_reply_refusal(body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    REPLY_REFUSALS.iter().any(|w| b.contains(w))
}

/// X's own message from an error body: a problem's `detail` (or `title`), an `errors[0].message`,
/// else the body as it came.
pub(crate) fn problem_detail(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else { return body.trim().to_string() };
    v.get("detail")
        .and_then(|d| d.as_str())
        .or_else(|| v.pointer("/errors/0/message").and_then(|d| d.as_str()))
        .or_else(|| v.get("title").and_then(|d| d.as_str()))
        .map(str::to_string)
        .unwrap_or_else(|| body.trim().to_string())
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

/// A part in flight is looked up on the account's recent posts before it is posted again
/// (by its text, reply parent and start time): X has no idempotency key.
#[async_trait]
impl ThreadNetwork for XChannel {
    const SETTLE: Settle = Settle::LookFirst;

    fn network(&self) -> &'static str {
        "X"
    }

    /// The part's start time (the timeline lookup ignores older posts); a link post keeps its
    /// text.
    fn marker(&self, _index: usize, earlier: &serde_json::Value) -> Option<serde_json::Value> {
        let mut m = json!({ "started_at": chrono::Utc::now().to_rfc3339() });
        if let Some(t) = earlier.get("fallback_text") {
            m["fallback_text"] = t.clone();
        }
        Some(m)
    }

    async fn post_part(&self, part: &mut PartCall<'_>) -> Result<Posted, DeliveryError> {
        let v = part.view();
        let (i, total) = (v.index, v.posts.len());
        if let Some(text) = fallback_text(v.state()) {
            // The link post of an earlier attempt that X did not confirm (nor the timeline show).
            let text = text.to_string();
            return self.post_link_fallback(&text, i).await;
        }
        let mut body = json!({ "text": v.post().text });
        if let Some(parent) = v.parent_id() {
            body["reply"] = json!({ "in_reply_to_tweet_id": parent });
        }
        let res = self.client.send(Method::POST, "/2/tweets", &[], Some(&body)).await?;
        if !res.is_success() {
            let err = self.classify(&res, i);
            if i > 0 && err.kind() == Kind::Forbidden && is_reply_refusal(&res.body) {
                // Nothing was posted for this part: forget its in-flight marker.
                part.forget().await?;
                return match self.fallback {
                    ThreadFallback::Stop => Err(partial_thread(&err, part.view().progress, total)),
                    ThreadFallback::Link => {
                        let Some(link) = thread_link(part.view().posts, i) else {
                            return Err(DeliveryError::forbidden(format!(
                                "X refused part {} as a reply, and thread_fallback = \"link\" found no link in the thread to post instead; the thread stays partial",
                                i + 1
                            ))
                            .with_status(403));
                        };
                        let text = format!("The rest of this thread: {link}");
                        part.save_marker(json!({ "started_at": chrono::Utc::now().to_rfc3339(), "fallback_text": text }))
                            .await?;
                        self.post_link_fallback(&text, i).await
                    }
                };
            }
            return Err(err);
        }
        let parsed: serde_json::Value = serde_json::from_str(&res.body)
            .map_err(|e| DeliveryError::unknown_outcome(format!("X accepted part {} but the answer is unreadable: {e}", i + 1)))?;
        let id = parsed
            .pointer("/data/id")
            .and_then(|id| id.as_str())
            .ok_or_else(|| DeliveryError::unknown_outcome(format!("X answer for part {} has no data.id", i + 1)))?
            .to_string();
        Ok(Posted::new(id.clone(), Some(Self::url(&id))))
    }

    /// On the timeline: a link post stands alone; a part replies to the one before it.
    async fn find_part(&self, part: PartView<'_>) -> Result<Lookup, DeliveryError> {
        let Some(user_id) = self.account().await else {
            return Ok(Lookup::CannotCheck(NO_USER_ID.into()));
        };
        let (text, parent) = match fallback_text(part.state()) {
            Some(t) => (t, None),
            None => (part.post().text.as_str(), part.parent_id()),
        };
        Ok(match self.find_on_timeline(&user_id, text, parent, part.state()).await? {
            Some(id) => Lookup::Found(Posted::new(id.clone(), Some(Self::url(&id)))),
            None => Lookup::NotThere,
        })
    }

    async fn cannot_check(&self) -> Option<String> {
        match self.account().await {
            Some(_) => None,
            None => Some(NO_USER_ID.into()),
        }
    }

    /// A link post is the last part: nothing after it goes out.
    fn ends_thread(&self, part: &PartState) -> bool {
        fallback_text(part).is_some()
    }

    fn note(&self, progress: &ThreadProgress, _total: usize, reconciled: bool) -> Option<String> {
        match progress.parts.last() {
            Some(last) if fallback_text(last).is_some() && last.remote_id.is_some() => {
                let from = progress.parts.len() - 1;
                Some(format!(
                    "X refused part {} as a reply; parts 1–{from} are a thread and the rest went out as one post with the link ({})",
                    from + 1,
                    last.url.clone().unwrap_or_default()
                ))
            }
            _ => reconciled.then(|| "reconciled via the account's recent posts".to_string()),
        }
    }
}

/// Why reconciliation can't read the timeline.
const NO_USER_ID: &str = "set `user_id` on the x channel so Herald can read the account's recent posts";

fn posts(rendering: &Rendering) -> Result<&[Post], DeliveryError> {
    Ok(&rendering.posts().ok_or_else(|| DeliveryError::permanent("the x channel needs a posts rendering"))?.posts)
}

#[async_trait]
impl Adapter for XChannel {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let posts = posts(rendering)?;
        if posts.is_empty() {
            return Err(DeliveryError::permanent("the rendering has no posts"));
        }
        thread::deliver(self, posts, ctx).await
    }

    async fn find_existing(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        thread::find_existing(self, posts(rendering)?, ctx).await
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
