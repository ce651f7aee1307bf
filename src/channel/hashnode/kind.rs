//! `type = "hashnode"`: the channel's config table and its registration ([`ChannelType`]): the
//! keys the validator accepts come from here (a test checks them against the struct), with the
//! type's own checks, its secrets for the redactor, its build, its preflight on tags, title and
//! request size, and its sandbox wiring to its fake (`src/sandbox/hashnode.rs`).

use std::path::PathBuf;

use serde::Deserialize;

use crate::channel::BuildCtx;
use crate::channel::registry::{ChannelCheck, ChannelType, Secrets, kind_basics};
use crate::config::keys::{KeySpec, Kind, opt, req};
use crate::config::{Common, Secret, pick_secret};
use crate::render::Rendering;
use crate::sandbox::wiring::{Fake, FragmentTable, SandboxCtx, impl_http_fake, listed};

/// `type = "hashnode"`
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct HashnodeConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// The GraphQL endpoint. Hashnode's own API skill names `https://gql-beta.hashnode.com` as
    /// production since 2026; the older `https://gql.hashnode.com` now redirects to an
    /// announcement page.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// The Personal Access Token (Account Settings → Developer), sent as `Authorization`.
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// The token from a file.
    #[serde(default)]
    pub access_token_file: Option<PathBuf>,
    /// The publication's id (a 24-hex-digit ObjectId; the blog dashboard's URL shows it).
    pub publication_id: String,
    /// Tags (at most 15); the tags when unset. Each becomes `{slug, name}`.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// A series to add every post to (`seriesId`, an ObjectId).
    #[serde(default)]
    pub series_id: Option<String>,
    /// Refuse a longer title before sending. Hashnode documents no title limit, so unset means
    /// no check; set it if your publication's editor shows one.
    #[serde(default)]
    pub max_title_chars: Option<u64>,
    /// Hashnode's largest request body (its documented 100 KB limit, 102,400 bytes).
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: u64,
    /// How long Hashnode may answer a read from its cache (documented: up to about 25 s). A
    /// lookup that found nothing is not repeated sooner, so a cached "not there" can't hide a
    /// post that landed in between.
    #[serde(default = "default_read_cache_secs")]
    pub read_cache_secs: u64,
    /// The wait after a throttled answer that carries no `Retry-After` (Hashnode's limits are
    /// per minute).
    #[serde(default = "default_rate_limit_wait_secs")]
    pub rate_limit_wait_secs: u64,
}

fn default_api_url() -> String {
    "https://gql-beta.hashnode.com".into()
}
fn default_max_request_bytes() -> u64 {
    MAX_REQUEST_BYTES as u64
}
fn default_read_cache_secs() -> u64 {
    25
}
fn default_rate_limit_wait_secs() -> u64 {
    60
}

/// Hashnode's most tags on a post ("Tags per post/draft: 15 max", errors-and-limits).
pub const MAX_TAGS: usize = 15;
/// Hashnode's request body limit ("Request body size: 100 KB", errors-and-limits).
pub const MAX_REQUEST_BYTES: usize = 100 * 1024;

/// Why Hashnode would refuse this tag list, or `None`: more than 15, or one that has no
/// letter or digit (its slug would be empty; `slug` is required).
pub fn tag_problem(tags: &[String]) -> Option<String> {
    if tags.len() > MAX_TAGS {
        return Some(format!("{} tags; Hashnode takes at most {MAX_TAGS} on a post", tags.len()));
    }
    tags.iter()
        .find(|t| super::tag_slug(t).is_empty())
        .map(|t| format!("tag \"{t}\" has no letter or digit, so it has no slug; Hashnode requires one"))
}

/// Is this a MongoDB ObjectId (24 hex digits), as Hashnode's `ObjectId` scalar takes?
pub fn is_object_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The `hashnode` type: a Hashnode post, cross-posted with the canonical URL.
pub struct Hashnode;

impl ChannelType for Hashnode {
    const TYPE: &'static str = "hashnode";
    const ALIASES: &'static [&'static str] = &["hashnode.com", "hashnode_blog"];
    const KEYS: &'static [KeySpec] = &[
        opt("api_url", Kind::HttpUrl),
        opt("access_token", Kind::Secret),
        opt("access_token_file", Kind::Path),
        req("publication_id", Kind::NonEmptyStr),
        opt("tags", Kind::StrList),
        opt("series_id", Kind::NonEmptyStr),
        opt("max_title_chars", Kind::Range(1, 100_000)),
        opt("max_request_bytes", Kind::Range(1024, 10 * 1024 * 1024)),
        opt("read_cache_secs", Kind::Range(0, 3600)),
        opt("rate_limit_wait_secs", Kind::Range(1, 3600)),
    ];
    const EXAMPLES: &'static [(&'static str, &'static str)] = &[("publication_id", "\"65a1b2c3d4e5f60718293a4b\"")];
    type Config = HashnodeConfig;
    kind_basics!();

    fn check(c: &mut ChannelCheck<'_, '_>) {
        c.require_secret("access_token", "");
        let tags: Option<Vec<String>> = c
            .table()
            .get("tags")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect());
        if let Some(problem) = tags.as_deref().and_then(tag_problem) {
            c.problem_at("tags", problem, Some(format!("e.g. tags = [\"rust\", \"newsletter\"]: at most {MAX_TAGS}")));
        }
    }
    fn secrets(c: &Self::Config, _ctx: &BuildCtx, out: &mut Secrets) {
        out.refs.push(pick_secret(&c.access_token, &c.access_token_file));
    }
    /// Refuse, before anything is sent, what Hashnode surely refuses: no title, more than 15
    /// tags, a request over 100 KB, a title over `max_title_chars` when set.
    fn size_limit(c: &Self::Config, r: &Rendering) -> Result<(), String> {
        let Rendering::Body(b) = r else { return Ok(()) };
        let input = super::post_input(&b.body, c).map_err(|e| format!("Hashnode: {e}"))?;
        super::preflight(&input, c).map_err(|e| format!("Hashnode: {e}"))
    }
    async fn sandbox(h: &mut Self::Config, ctx: &SandboxCtx<'_>) -> anyhow::Result<Fake> {
        use crate::sandbox::hashnode::{self as fake, HashnodeFake};
        let f = HashnodeFake::start().await?;
        h.api_url = f.base_url.clone();
        h.publication_id = fake::PUBLICATION_ID.into();
        h.series_id = None;
        ctx.secret_pair(&mut h.access_token, &mut h.access_token_file, "access_token", fake::TOKEN)?;
        Ok(Fake::Http(Box::new(f)))
    }
    fn sandbox_fragment(h: &Self::Config, t: &mut FragmentTable<'_>) {
        t.set("api_url", &h.api_url);
        t.set("publication_id", &h.publication_id);
        t.t.remove("series_id");
        t.secret_file("access_token", &h.access_token);
    }
}

// The sandbox's pointer to the type's contract fake.
impl_http_fake!(crate::sandbox::hashnode::HashnodeFake, |f| listed(f.posts(), "post(s)"));
