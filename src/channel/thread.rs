//! The thread-posting skeleton shared by X, Bluesky, Threads and Mastodon.
//!
//! A thread is a list of parts, each a reply to the one before it. Posting one durably is the
//! same loop on every network; only the calls differ. The skeleton owns the loop: it skips the
//! parts the checkpoint says are out, settles a part whose answer was lost before posting it
//! again, saves the part's marker before the call and its id after it, chains each part to the
//! one before, answers reconciliation (`Found` / `NotFound` / `CannotCheck`, the operator's
//! `unconfirmed`) and builds the receipt. A network implements [`ThreadNetwork`]: how to post
//! one part, how to look one up, and what marker to save before the call.
//!
//! Invariant kept by the loop: the checkpoint's parts are a run of confirmed parts, then at most
//! one part in flight (its marker saved, its id not yet known).

use async_trait::async_trait;
use serde_json::Value;

use crate::channel::{DeliveryCtx, DeliveryError, PartState, Receipt, Reconciled, ThreadProgress};
use crate::render::Post;

/// What the network answered for a part.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Posted {
    /// The network's id of the part: the next part replies to it.
    pub id: String,
    /// Its public URL, when the answer carries one (else [`ThreadNetwork::url_of`] is asked).
    pub url: Option<String>,
    /// Replaces the part's saved marker (Bluesky keeps the record's `cid` for the replies).
    pub prepared: Option<Value>,
}

impl Posted {
    /// An id and a URL, the marker kept as it is.
    pub fn new(id: impl Into<String>, url: Option<String>) -> Self {
        Self { id: id.into(), url, prepared: None }
    }
}

/// The answer of [`ThreadNetwork::find_part`] for a part whose answer was lost.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lookup {
    /// The part is on the network.
    Found(Posted),
    /// The network says it is not there: posting it again is safe.
    NotThere,
    /// The network can't tell; the delivery waits for the operator (`unconfirmed`).
    CannotCheck(String),
}

/// How a part whose answer was lost is settled when `deliver` runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    /// Look it up with [`ThreadNetwork::find_part`] first; post it only when it is not found
    /// (or can't be checked: the pipeline has then decided to retry). X's timeline, Bluesky's
    /// `getRecord`.
    LookFirst,
    /// [`ThreadNetwork::post_part`] settles it itself: Mastodon's resend with the same
    /// `Idempotency-Key`, Threads' saved container.
    PostAgain,
}

/// A part as the hooks see it.
pub(crate) struct PartView<'a> {
    /// The delivery.
    pub ctx: &'a DeliveryCtx,
    /// The whole rendering.
    pub posts: &'a [Post],
    /// 0-based index of the part.
    pub index: usize,
    /// The checkpoint: `parts[..index]` are confirmed, `parts[index]` is this part.
    pub progress: &'a ThreadProgress,
}

impl PartView<'_> {
    /// The part's rendered post.
    pub fn post(&self) -> &Post {
        &self.posts[self.index]
    }
    /// What the checkpoint holds for this part (its marker).
    pub fn state(&self) -> &PartState {
        &self.progress.parts[self.index]
    }
    /// The id of the part this one replies to (`None` for the first).
    pub fn parent_id(&self) -> Option<&str> {
        self.index.checked_sub(1).and_then(|p| self.progress.parts[p].remote_id.as_deref())
    }
    /// The confirmed parts before this one.
    pub fn earlier(&self) -> &[PartState] {
        &self.progress.parts[..self.index]
    }
}

/// A part being posted: the view, plus the checkpoint writes a network may need mid-call.
pub(crate) struct PartCall<'a> {
    ctx: &'a DeliveryCtx,
    posts: &'a [Post],
    index: usize,
    progress: &'a mut ThreadProgress,
}

impl PartCall<'_> {
    /// The read-only view of the part.
    pub fn view(&self) -> PartView<'_> {
        PartView { ctx: self.ctx, posts: self.posts, index: self.index, progress: self.progress }
    }
    /// Save a marker learnt mid-call (Threads' container id, made before it is published), or
    /// a new one after [`PartCall::forget`], durably, before going on.
    pub async fn save_marker(&mut self, marker: Value) -> Result<(), DeliveryError> {
        self.progress.parts.truncate(self.index + 1);
        if self.progress.parts.len() == self.index {
            self.progress.parts.push(PartState::default());
        }
        self.progress.parts[self.index].prepared = marker;
        self.ctx.save_state(self.progress).await
    }
    /// The network refused the part and nothing was posted: drop its marker, durably, so the
    /// next attempt doesn't reconcile it.
    pub async fn forget(&mut self) -> Result<(), DeliveryError> {
        self.progress.parts.truncate(self.index);
        self.ctx.save_state(self.progress).await
    }
}

/// The per-network half of thread posting.
#[async_trait]
pub(crate) trait ThreadNetwork: Sync {
    /// How a part whose answer was lost is settled when `deliver` runs again.
    const SETTLE: Settle;

    /// The network's name, for logs.
    fn network(&self) -> &'static str;

    /// The marker to save before part `index` is posted, given what an earlier try saved
    /// (`Value::Null` if nothing). `None`: save nothing before the call (keep what is there).
    fn marker(&self, index: usize, earlier: &Value) -> Option<Value>;

    /// Post one part, replying to `part.view().parent_id()`. An answer lost after the request
    /// went out is `Kind::UnknownOutcome`: the marker is saved, and reconciliation settles it.
    async fn post_part(&self, part: &mut PartCall<'_>) -> Result<Posted, DeliveryError>;

    /// Is this in-flight part (its marker saved, its answer lost) on the network?
    async fn find_part(&self, part: PartView<'_>) -> Result<Lookup, DeliveryError>;

    /// Before reconciling anything: a reason the network can't be checked at all.
    async fn cannot_check(&self) -> Option<String> {
        None
    }

    /// Before the first part of a thread goes out (nothing in the checkpoint yet): a check that
    /// must pass before anything is posted.
    async fn before_first(&self, _posts: &[Post]) -> Result<(), DeliveryError> {
        Ok(())
    }

    /// The public URL of a part whose answer had none (best effort; `None`: leave it unset).
    async fn url_of(&self, _index: usize, _id: &str) -> Option<String> {
        None
    }

    /// True when this confirmed part stands for the rest of the thread (X's
    /// `thread_fallback = "link"` post): nothing after it is posted.
    fn ends_thread(&self, _part: &PartState) -> bool {
        false
    }

    /// The receipt's note: `reconciled` when the thread was found by reconciliation.
    fn note(&self, progress: &ThreadProgress, total: usize, reconciled: bool) -> Option<String>;
}

fn record(progress: &mut ThreadProgress, index: usize, posted: Posted) {
    let part = &mut progress.parts[index];
    part.remote_id = Some(posted.id);
    part.url = posted.url;
    if let Some(p) = posted.prepared {
        part.prepared = p;
    }
}

fn receipt<N: ThreadNetwork>(net: &N, progress: &ThreadProgress, total: usize, reconciled: bool) -> Receipt {
    let first = progress.parts.first().cloned().unwrap_or_default();
    Receipt {
        remote_id: first.remote_id.unwrap_or_default(),
        url: first.url,
        awaiting_confirmation: false,
        note: net.note(progress, total, reconciled),
        warning: None,
    }
}

/// Post the thread, resuming from the checkpoint: parts already out are skipped, a part whose
/// answer was lost is settled per [`ThreadNetwork::SETTLE`], every other part is posted with its
/// marker saved before the call and its id after it.
pub(crate) async fn deliver<N: ThreadNetwork>(net: &N, posts: &[Post], ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
    let mut progress: ThreadProgress = ctx.load_state().await?;
    if progress.parts.is_empty() {
        net.before_first(posts).await?;
    }
    for index in 0..posts.len() {
        if let Some(part) = progress.parts.get(index) {
            if part.remote_id.is_some() {
                if net.ends_thread(part) {
                    break;
                }
                continue;
            }
            // In flight when an earlier attempt ended: look before posting again.
            if N::SETTLE == Settle::LookFirst && !part.prepared.is_null() {
                let view = PartView { ctx, posts, index, progress: &progress };
                if let Lookup::Found(posted) = net.find_part(view).await? {
                    tracing::info!(channel = %ctx.channel, network = net.network(), part = index + 1, remote_id = %posted.id, "Found a thread part whose answer was lost.");
                    record(&mut progress, index, posted);
                    ctx.save_state(&progress).await?;
                    if net.ends_thread(&progress.parts[index]) {
                        break;
                    }
                    continue;
                }
            }
        }
        progress.parts.truncate(index + 1);
        if progress.parts.len() == index {
            progress.parts.push(PartState::default());
        }
        // The marker goes to the store before the call, so a lost answer can be settled.
        if let Some(marker) = net.marker(index, &progress.parts[index].prepared) {
            progress.parts[index] = PartState { prepared: marker, ..PartState::default() };
            ctx.save_state(&progress).await?;
        }
        let mut call = PartCall { ctx, posts, index, progress: &mut progress };
        let posted = match net.post_part(&mut call).await {
            Ok(p) => p,
            Err(err) => {
                // The error is logged (redacted) by the pipeline; its text may echo the request.
                tracing::warn!(channel = %ctx.channel, network = net.network(), part = index + 1, kind = err.kind().as_str(), "A thread part was not posted.");
                return Err(err);
            }
        };
        tracing::info!(channel = %ctx.channel, network = net.network(), part = index + 1, of = posts.len(), remote_id = %posted.id, "Thread part posted.");
        let id = posted.id.clone();
        record(&mut progress, index, posted);
        ctx.save_state(&progress).await?;
        if progress.parts[index].url.is_none()
            && let Some(url) = net.url_of(index, &id).await
        {
            progress.parts[index].url = Some(url);
            ctx.save_state(&progress).await?;
        }
        if net.ends_thread(&progress.parts[index]) {
            break;
        }
    }
    Ok(receipt(net, &progress, posts.len(), false))
}

/// After an unknown outcome or a crash: settle the part in flight. `Found` when the whole
/// thread is out; `NotFound` when a part is still owed (a retry resumes there, after the
/// confirmed parts); `CannotCheck` when the network can't tell.
pub(crate) async fn find_existing<N: ThreadNetwork>(net: &N, posts: &[Post], ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
    let mut progress: ThreadProgress = ctx.load_state().await?;
    if progress.parts.is_empty() {
        // Every part's marker is saved before its call (or, for Threads, before it can be
        // published): nothing saved, nothing posted.
        return Ok(Reconciled::NotFound);
    }
    if let Some(why) = net.cannot_check().await {
        return Ok(Reconciled::CannotCheck(why));
    }
    for index in 0..progress.parts.len().min(posts.len()) {
        if progress.parts[index].remote_id.is_some() {
            continue;
        }
        let view = PartView { ctx, posts, index, progress: &progress };
        match net.find_part(view).await? {
            Lookup::Found(posted) => {
                tracing::info!(channel = %ctx.channel, network = net.network(), part = index + 1, remote_id = %posted.id, "Reconciled a thread part whose answer was lost.");
                record(&mut progress, index, posted);
                ctx.save_state(&progress).await?;
            }
            Lookup::NotThere => return Ok(Reconciled::NotFound),
            Lookup::CannotCheck(why) => return Ok(Reconciled::CannotCheck(why)),
        }
    }
    let ended = progress.parts.last().is_some_and(|p| p.remote_id.is_some() && net.ends_thread(p));
    if progress.parts.len() < posts.len() && !ended {
        // The parts so far are out and recorded; a retry resumes at the next one.
        return Ok(Reconciled::NotFound);
    }
    if progress.parts[0].url.is_none()
        && let Some(id) = progress.parts[0].remote_id.clone()
        && let Some(url) = net.url_of(0, &id).await
    {
        progress.parts[0].url = Some(url);
        ctx.save_state(&progress).await?;
    }
    Ok(Reconciled::Found(receipt(net, &progress, posts.len(), true)))
}

#[cfg(test)]
mod tests;
