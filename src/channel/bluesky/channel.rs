//! `BlueskyChannel`: posts and threads with `createRecord` under a Herald-chosen rkey.
//!
//! Before each part is created its TID rkey (and `createdAt`) is saved in the checkpoint, so a
//! lost answer is settled with `getRecord`: found → adopt it; `RecordNotFound` → create again
//! with the same rkey (a second create with an existing rkey fails, it never duplicates).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::client::BskyClient;
use super::tid;
use crate::channel::thread::{self, Lookup, PartCall, PartView, Posted, Settle, ThreadNetwork};
use crate::channel::{Adapter, DeliveryCtx, DeliveryError, PartState, Receipt, Reconciled, ThreadProgress, http};
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

    /// Facets with mention handles resolved to DIDs; unresolvable mentions are dropped.
    async fn facets(&self, post: &Post, cache: &Mutex<HashMap<String, Option<String>>>) -> Result<Vec<Value>, DeliveryError> {
        let mut out = Vec::new();
        for facet in &post.facets {
            let mut f = facet.clone();
            let mut features = Vec::new();
            for feature in f.features.drain(..) {
                match feature {
                    FacetFeature::Mention { did } if !did.starts_with("did:") => {
                        let handle = did.trim_start_matches('@').to_string();
                        let known = cache.lock().expect("handle cache").get(&handle).cloned();
                        let resolved = match known {
                            Some(r) => r,
                            None => {
                                let r = self.resolve_handle(&handle).await?;
                                cache.lock().expect("handle cache").insert(handle.clone(), r.clone());
                                r
                            }
                        };
                        match resolved {
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

/// One delivery's thread: the card goes on the first part, and a mention's DID is resolved
/// once per delivery.
struct BskyThread<'a> {
    ch: &'a BlueskyChannel,
    card: Option<LinkCard>,
    handles: Mutex<HashMap<String, Option<String>>>,
}

impl BskyThread<'_> {
    /// `getRecord` for the part's rkey: the post as Herald records it, if it exists.
    async fn adopt(&self, prep: &Prepared) -> Result<Option<Posted>, DeliveryError> {
        let session = self.ch.client.session().await?;
        Ok(self.ch.get_record(&session.did, &prep.rkey).await?.map(|(uri, cid)| {
            let mut prep = prep.clone();
            prep.cid = Some(cid);
            Posted { id: uri, url: Some(BlueskyChannel::web_url(&session.handle, &prep.rkey)), prepared: Some(json!(prep)) }
        }))
    }
}

/// Before each part is created its TID rkey (and `createdAt`) is saved, so a lost answer is
/// settled with `getRecord` before anything is created again.
#[async_trait]
impl ThreadNetwork for BskyThread<'_> {
    const SETTLE: Settle = Settle::LookFirst;

    fn network(&self) -> &'static str {
        "Bluesky"
    }

    /// Reuse the rkey saved by an earlier attempt (getRecord said it is not there), or choose
    /// one now.
    fn marker(&self, _index: usize, earlier: &Value) -> Option<Value> {
        let prep = serde_json::from_value::<Prepared>(earlier.clone()).unwrap_or_else(|_| Prepared {
            rkey: tid::next(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            cid: None,
        });
        Some(json!(prep))
    }

    async fn post_part(&self, part: &mut PartCall<'_>) -> Result<Posted, DeliveryError> {
        let v = part.view();
        let (i, post) = (v.index, v.post());
        let prep = prepared(v.state()).ok_or_else(|| DeliveryError::permanent("corrupt checkpoint: a Bluesky part without its rkey"))?;
        let session = self.ch.client.session().await?;
        let mut record = json!({ "$type": POST_NSID, "text": post.text, "createdAt": prep.created_at });
        let facets = self.ch.facets(post, &self.handles).await?;
        if !facets.is_empty() {
            record["facets"] = json!(facets);
        }
        if i == 0 {
            if let Some(card) = &self.card {
                record["embed"] = self.ch.embed(card).await?;
            }
        } else {
            let earlier = v.earlier();
            record["reply"] = json!({ "root": strong_ref(&earlier[0]), "parent": strong_ref(&earlier[i - 1]) });
        }
        let body = json!({ "repo": session.did, "collection": POST_NSID, "rkey": prep.rkey, "record": record });
        let res = self
            .ch
            .client
            .call(|token| http::client().post(self.ch.client.url("com.atproto.repo.createRecord")).bearer_auth(token).json(&body))
            .await?;
        if !res.is_success() && is_duplicate_rkey(res.status, res.error_name().as_deref(), &res.body) {
            // Newer PDSes say so explicitly: our rkey is taken, so an earlier attempt wrote
            // this part after all (a read before it missed it). Adopt it from getRecord.
            return match self.adopt(&prep).await? {
                Some(posted) => {
                    tracing::info!(channel = %self.ch.name, part = i, rkey = %prep.rkey, "Bluesky says the rkey exists; adopting the earlier post.");
                    Ok(posted)
                }
                None => Err(DeliveryError::unknown_outcome(format!(
                    "Bluesky says part {}'s record already exists but getRecord can't read it yet; reconcile with getRecord",
                    i + 1
                ))
                .with_status(res.status)),
            };
        }
        if !res.is_success() {
            // The rkey stays in the checkpoint: the next attempt asks getRecord first, so
            // even a 5xx that did write is never posted twice.
            return Err(res.to_error());
        }
        let v: Value = serde_json::from_str(&res.body).map_err(|e| {
            DeliveryError::unknown_outcome(format!("Bluesky accepted part {} but the answer is unreadable: {e}", i + 1))
        })?;
        let (Some(uri), Some(cid)) = (v["uri"].as_str(), v["cid"].as_str()) else {
            return Err(DeliveryError::unknown_outcome(format!("Bluesky answer for part {} lacks uri/cid", i + 1)));
        };
        let mut prep = prep;
        prep.cid = Some(cid.to_string());
        Ok(Posted { id: uri.to_string(), url: Some(BlueskyChannel::web_url(&session.handle, &prep.rkey)), prepared: Some(json!(prep)) })
    }

    /// `getRecord` for the saved rkey: found → adopt it; `RecordNotFound` → create again with
    /// the same rkey (a second create with an existing rkey fails, it never duplicates).
    async fn find_part(&self, part: PartView<'_>) -> Result<Lookup, DeliveryError> {
        let Some(prep) = prepared(part.state()) else { return Ok(Lookup::NotThere) };
        Ok(match self.adopt(&prep).await? {
            Some(posted) => Lookup::Found(posted),
            None => Lookup::NotThere,
        })
    }

    fn note(&self, _progress: &ThreadProgress, _total: usize, reconciled: bool) -> Option<String> {
        reconciled.then(|| "reconciled via getRecord".to_string())
    }
}

#[async_trait]
impl Adapter for BlueskyChannel {
    async fn deliver(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Receipt, DeliveryError> {
        let posts = posts(rendering)?;
        // The session first: a login that fails leaves nothing in the checkpoint.
        self.client.session().await?;
        let card = rendering.posts().and_then(|p| p.card.clone());
        thread::deliver(&BskyThread { ch: self, card, handles: Mutex::default() }, posts, ctx).await
    }

    async fn find_existing(&self, rendering: &Rendering, ctx: &DeliveryCtx) -> Result<Reconciled, DeliveryError> {
        thread::find_existing(&BskyThread { ch: self, card: None, handles: Mutex::default() }, posts(rendering)?, ctx).await
    }

    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        let res = self
            .client
            .call(|token| http::client().get(self.client.url("com.atproto.server.getSession")).bearer_auth(token))
            .await?;
        if res.is_success() { Ok(()) } else { Err(res.to_error()) }
    }
}
