//! `BlueskyChannel`: posts and threads with `createRecord` under a Herald-chosen rkey.
//!
//! Before each part is created its TID rkey (and `createdAt`) is saved in the checkpoint, so a
//! lost answer is settled with `getRecord`: found → adopt it; `RecordNotFound` → create again
//! with the same rkey (a second create with an existing rkey fails, it never duplicates).

use std::collections::HashMap;
use std::path::PathBuf;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::client::BskyClient;
use super::tid;
use crate::channel::{
    Adapter, DeliveryCtx, DeliveryError, PartState, Receipt, Reconciled, ThreadProgress, http,
};
use crate::render::{FacetFeature, LinkCard, Post, Rendering};

const POST_NSID: &str = "app.bsky.feed.post";
/// Bluesky's thumbnail limit (`app.bsky.embed.external#external.thumb` maxSize).
pub const THUMB_MAX_BYTES: usize = 1_000_000;

/// The Bluesky adapter for one account.
pub struct BlueskyChannel {
    pub(crate) name: String,
    pub(crate) client: BskyClient,
    /// Relative card image paths resolve here.
    pub(crate) base_dir: PathBuf,
}

/// What the checkpoint keeps per part (`PartState::prepared`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Prepared {
    rkey: String,
    created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cid: Option<String>,
}

fn prepared(state: &PartState) -> Option<Prepared> {
    serde_json::from_value(state.prepared.clone()).ok()
}

fn posts(rendering: &Rendering) -> Result<&[Post], DeliveryError> {
    let p = &rendering.posts().ok_or_else(|| DeliveryError::permanent("the bluesky channel needs a posts rendering"))?.posts;
    if p.is_empty() {
        return Err(DeliveryError::permanent("the rendering has no posts"));
    }
    Ok(p)
}

impl BlueskyChannel {
    fn web_url(handle: &str, rkey: &str) -> String {
        format!("https://bsky.app/profile/{handle}/post/{rkey}")
    }

    /// `getRecord` for our rkey: `Some((uri, cid))` if the post exists.
    async fn get_record(&self, did: &str, rkey: &str) -> Result<Option<(String, String)>, DeliveryError> {
        let req = http::client()
            .get(self.client.url("com.atproto.repo.getRecord"))
            .query(&[("repo", did), ("collection", POST_NSID), ("rkey", rkey)])
            .timeout(self.client.timeout);
        let http::Answer { status, headers, body } = http::send(req).await.map_err(harmless)?;
        if (200..300).contains(&status) {
            let v: Value = serde_json::from_str(&body)
                .map_err(|e| DeliveryError::retryable(format!("Bluesky getRecord answer unreadable: {e}")))?;
            let uri = v.get("uri").and_then(|u| u.as_str()).unwrap_or_default().to_string();
            let cid = v.get("cid").and_then(|c| c.as_str()).unwrap_or_default().to_string();
            return Ok(Some((uri, cid)));
        }
        let name = serde_json::from_str::<Value>(&body).ok().and_then(|v| v["error"].as_str().map(String::from));
        if status == 400 && name.as_deref() == Some("RecordNotFound") {
            return Ok(None);
        }
        Err(http::error_from_response(status, &headers, &body))
    }

    /// Settle every part whose rkey was saved but whose answer never came. Returns false when
    /// one of them is not on the network (so it is still owed).
    async fn reconcile(&self, progress: &mut ThreadProgress, ctx: &DeliveryCtx) -> Result<bool, DeliveryError> {
        let session = self.client.session().await?;
        for i in 0..progress.parts.len() {
            if progress.parts[i].remote_id.is_some() {
                continue;
            }
            let Some(mut p) = prepared(&progress.parts[i]) else { return Ok(false) };
            match self.get_record(&session.did, &p.rkey).await? {
                Some((uri, cid)) => {
                    tracing::info!(channel = %self.name, part = i, rkey = %p.rkey, "Found an unconfirmed Bluesky post by its rkey.");
                    p.cid = Some(cid);
                    progress.parts[i].prepared = json!(p);
                    progress.parts[i].url = Some(Self::web_url(&session.handle, &p.rkey));
                    progress.parts[i].remote_id = Some(uri);
                    ctx.save_state(progress).await?;
                }
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Facets with mention handles resolved to DIDs; unresolvable mentions are dropped.
    async fn facets(&self, post: &Post, cache: &mut HashMap<String, Option<String>>) -> Result<Vec<Value>, DeliveryError> {
        let mut out = Vec::new();
        for facet in &post.facets {
            let mut f = facet.clone();
            let mut features = Vec::new();
            for feature in f.features.drain(..) {
                match feature {
                    FacetFeature::Mention { did } if !did.starts_with("did:") => {
                        let handle = did.trim_start_matches('@').to_string();
                        if !cache.contains_key(&handle) {
                            let resolved = self.resolve_handle(&handle).await?;
                            cache.insert(handle.clone(), resolved);
                        }
                        match cache.get(&handle).cloned().flatten() {
                            Some(did) => features.push(FacetFeature::Mention { did }),
                            None => tracing::warn!(channel = %self.name, handle = %handle, "Dropping a mention Bluesky can't resolve."),
                        }
                    }
                    other => features.push(other),
                }
            }
            if !features.is_empty() {
                f.features = features;
                out.push(serde_json::to_value(&f).map_err(|e| DeliveryError::permanent(format!("facet encode: {e}")))?);
            }
        }
        Ok(out)
    }

    async fn resolve_handle(&self, handle: &str) -> Result<Option<String>, DeliveryError> {
        let req = http::client()
            .get(self.client.url("com.atproto.identity.resolveHandle"))
            .query(&[("handle", handle)])
            .timeout(self.client.timeout);
        let http::Answer { status, headers, body } = http::send(req).await.map_err(harmless)?;
        match status {
            200..=299 => Ok(serde_json::from_str::<Value>(&body).ok().and_then(|v| v["did"].as_str().map(String::from))),
            400 | 404 => Ok(None),
            _ => Err(http::error_from_response(status, &headers, &body)),
        }
    }

    /// The `app.bsky.embed.external` card, with an uploaded thumbnail when the image is usable.
    async fn embed(&self, card: &LinkCard) -> Result<Value, DeliveryError> {
        let mut external = json!({ "uri": card.uri, "title": card.title, "description": card.description });
        if let Some(image) = &card.image
            && let Some(thumb) = self.thumb(image).await?
        {
            external["thumb"] = thumb;
        }
        Ok(json!({ "$type": "app.bsky.embed.external", "external": external }))
    }

    /// Read the card image (a local file, or an `http(s)` URL) and `uploadBlob` it. A missing,
    /// oversized or non-image file is logged and skipped: the card goes out without a thumbnail
    /// rather than not at all.
    async fn thumb(&self, image: &str) -> Result<Option<Value>, DeliveryError> {
        let loaded = if image.starts_with("http://") || image.starts_with("https://") {
            self.fetch_image(image).await
        } else {
            self.read_image(image).await
        };
        let (bytes, mime) = match loaded {
            Ok(x) => x,
            Err(why) => {
                tracing::warn!(channel = %self.name, image = %image, reason = %why, "No thumbnail for the link card.");
                return Ok(None);
            }
        };
        let res = self
            .client
            .call(|token| {
                http::client()
                    .post(self.client.url("com.atproto.repo.uploadBlob"))
                    .bearer_auth(token)
                    .header("content-type", mime)
                    .body(bytes.clone())
            })
            .await
            .map_err(|e| if e.kind() == crate::channel::Kind::UnknownOutcome { DeliveryError::retryable(e.message().to_string()) } else { e })?;
        if !res.is_success() {
            return Err(res.to_error());
        }
        let v: Value = serde_json::from_str(&res.body)
            .map_err(|e| DeliveryError::retryable(format!("Bluesky uploadBlob answer unreadable: {e}")))?;
        Ok(v.get("blob").cloned())
    }

    async fn read_image(&self, image: &str) -> Result<(Vec<u8>, &'static str), String> {
        let p = PathBuf::from(image);
        let path = if p.is_absolute() { p } else { self.base_dir.join(p) };
        let mime = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("png") => "image/png",
            Some("jpg" | "jpeg") => "image/jpeg",
            Some("gif") => "image/gif",
            Some("webp") => "image/webp",
            _ => return Err("not a png, jpeg, gif or webp file".into()),
        };
        let meta = tokio::fs::metadata(&path).await.map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.len() > THUMB_MAX_BYTES as u64 {
            return Err(format!("{} bytes, over Bluesky's 1,000,000-byte thumbnail limit", meta.len()));
        }
        let bytes = tokio::fs::read(&path).await.map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((bytes, mime))
    }

    /// Fetch a remote thumbnail, reading at most Bluesky's 1,000,000 bytes whatever the
    /// server's `content-length` says (a chunked or lying answer is cut, not buffered).
    async fn fetch_image(&self, url: &str) -> Result<(Vec<u8>, &'static str), String> {
        let req = http::client().get(url).timeout(self.client.timeout);
        let (headers, bytes) = http::fetch_bytes(req, THUMB_MAX_BYTES).await.map_err(|e| match e.status() {
            Some(s) if !(200..300).contains(&s) => format!("HTTP {s}"),
            _ if e.message().contains("larger than") => "over Bluesky's 1,000,000-byte thumbnail limit".to_string(),
            _ => e.message().to_string(),
        })?;
        let mime = match headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default() {
            t if t.starts_with("image/png") => "image/png",
            t if t.starts_with("image/jpeg") => "image/jpeg",
            t if t.starts_with("image/gif") => "image/gif",
            t if t.starts_with("image/webp") => "image/webp",
            other => return Err(format!("content type {other:?} is not an image")),
        };
        Ok((bytes, mime))
    }

    fn receipt(progress: &ThreadProgress, note: Option<&str>) -> Receipt {
        let first = progress.parts.first().cloned().unwrap_or_default();
        Receipt { remote_id: first.remote_id.unwrap_or_default(), url: first.url, awaiting_confirmation: false, note: note.map(Into::into), warning: None }
    }
}

/// Every known form of a PDS's "a record with this rkey exists" answer to createRecord
/// (atproto#4728's explicit XRPC error; 409 on some PDSes). The bare 500 of older PDSes is
/// retried, and the retry's getRecord settles it.
fn is_duplicate_rkey(status: u16, name: Option<&str>, body: &str) -> bool {
    matches!(name, Some("RecordAlreadyExists" | "DuplicateRecord" | "RecordExists"))
        || (matches!(status, 400 | 409) && body.to_ascii_lowercase().contains("already exists"))
}

/// A read that failed after the request went out changed nothing: retry, don't reconcile.
fn harmless(e: DeliveryError) -> DeliveryError {
    if e.kind() != crate::channel::Kind::UnknownOutcome {
        return e;
    }
    let out = DeliveryError::retryable(e.message().to_string());
    match e.status() {
        Some(s) => out.with_status(s),
        None => out,
    }
}

fn strong_ref(state: &PartState) -> Value {
    json!({ "uri": state.remote_id, "cid": prepared(state).and_then(|p| p.cid) })
}

#[async_trait]
impl Adapter for BlueskyChannel {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let posts = posts(rendering)?;
        let card = rendering.posts().and_then(|p| p.card.clone());
        let mut progress: ThreadProgress = ctx.load_state().await?;
        progress.parts.truncate(posts.len());
        // Parts whose answer was lost: look them up by rkey before creating anything.
        if progress.parts.iter().any(|p| p.remote_id.is_none()) {
            self.reconcile(&mut progress, ctx).await?;
        }
        let session = self.client.session().await?;
        let mut handles = HashMap::new();
        for (i, post) in posts.iter().enumerate() {
            if progress.parts.get(i).is_some_and(|p| p.remote_id.is_some()) {
                continue;
            }
            // Reuse the rkey saved by an earlier attempt (getRecord said it is not there),
            // or choose one now and save it before the call.
            let prep = progress.parts.get(i).and_then(prepared).unwrap_or_else(|| Prepared {
                rkey: tid::next(),
                created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                cid: None,
            });
            progress.parts.truncate(i);
            progress.parts.push(PartState { prepared: json!(prep), ..PartState::default() });
            ctx.save_state(&progress).await?;

            let mut record = json!({ "$type": POST_NSID, "text": post.text, "createdAt": prep.created_at });
            let facets = self.facets(post, &mut handles).await?;
            if !facets.is_empty() {
                record["facets"] = json!(facets);
            }
            if i == 0 {
                if let Some(card) = &card {
                    record["embed"] = self.embed(card).await?;
                }
            } else {
                record["reply"] = json!({ "root": strong_ref(&progress.parts[0]), "parent": strong_ref(&progress.parts[i - 1]) });
            }
            let body = json!({ "repo": session.did, "collection": POST_NSID, "rkey": prep.rkey, "record": record });
            let res = self
                .client
                .call(|token| http::client().post(self.client.url("com.atproto.repo.createRecord")).bearer_auth(token).json(&body))
                .await?;
            if !res.is_success() && is_duplicate_rkey(res.status, res.error_name().as_deref(), &res.body) {
                // Newer PDSes say so explicitly: our rkey is taken, so an earlier attempt wrote
                // this part after all (a read before it missed it). Adopt it from getRecord.
                match self.get_record(&session.did, &prep.rkey).await? {
                    Some((uri, cid)) => {
                        tracing::info!(channel = %self.name, part = i, rkey = %prep.rkey, "Bluesky says the rkey exists; adopting the earlier post.");
                        let mut prep = prep;
                        prep.cid = Some(cid);
                        progress.parts[i] = PartState {
                            remote_id: Some(uri),
                            url: Some(Self::web_url(&session.handle, &prep.rkey)),
                            prepared: json!(prep),
                        };
                        ctx.save_state(&progress).await?;
                        continue;
                    }
                    None => {
                        return Err(DeliveryError::unknown_outcome(format!(
                            "Bluesky says part {}'s record already exists but getRecord can't read it yet; reconcile with getRecord",
                            i + 1
                        ))
                        .with_status(res.status));
                    }
                }
            }
            if !res.is_success() {
                // The rkey stays in the checkpoint: the next attempt asks getRecord first, so
                // even a 5xx that did write is never posted twice.
                let err = res.to_error();
                tracing::warn!(channel = %self.name, part = i, rkey = %prep.rkey, error = %err, "Bluesky refused a post.");
                return Err(err);
            }
            let v: Value = serde_json::from_str(&res.body).map_err(|e| {
                DeliveryError::unknown_outcome(format!("Bluesky accepted part {} but the answer is unreadable: {e}", i + 1))
            })?;
            let (Some(uri), Some(cid)) = (v["uri"].as_str(), v["cid"].as_str()) else {
                return Err(DeliveryError::unknown_outcome(format!("Bluesky answer for part {} lacks uri/cid", i + 1)));
            };
            tracing::info!(channel = %self.name, part = i, uri = %uri, "Bluesky post created.");
            let mut prep = prep;
            prep.cid = Some(cid.to_string());
            progress.parts[i] = PartState {
                remote_id: Some(uri.to_string()),
                url: Some(Self::web_url(&session.handle, &prep.rkey)),
                prepared: json!(prep),
            };
            ctx.save_state(&progress).await?;
        }
        Ok(Self::receipt(&progress, None))
    }

    async fn find_existing(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        let posts = posts(rendering)?;
        let mut progress: ThreadProgress = ctx.load_state().await?;
        if progress.parts.is_empty() {
            // The rkey is saved before every create: nothing saved, nothing created.
            return Ok(Reconciled::NotFound);
        }
        if !self.reconcile(&mut progress, ctx).await? {
            return Ok(Reconciled::NotFound);
        }
        if progress.parts.len() >= posts.len() {
            Ok(Reconciled::Found(Self::receipt(&progress, Some("reconciled via getRecord"))))
        } else {
            // Earlier parts are recorded; a retry resumes at the next one.
            Ok(Reconciled::NotFound)
        }
    }

    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        let res = self
            .client
            .call(|token| http::client().get(self.client.url("com.atproto.server.getSession")).bearer_auth(token))
            .await?;
        if res.is_success() { Ok(()) } else { Err(res.to_error()) }
    }
}
