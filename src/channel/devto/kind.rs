//! `type = "devto"`: the channel's config table and its registration ([`ChannelType`]): the keys
//! the validator accepts come from here (a test checks them against the struct), with the type's
//! own checks, its secrets for the redactor, its build, its preflight on tags and title, and its
//! sandbox wiring to its fake.

use std::path::PathBuf;

use serde::Deserialize;

use crate::channel::BuildCtx;
use crate::channel::registry::{ChannelCheck, ChannelType, Secrets, kind_basics};
use crate::config::keys::{KeySpec, Kind, opt};
use crate::config::{Common, Secret, pick_secret};
use crate::render::Rendering;
use crate::sandbox::wiring::{Fake, FragmentTable, SandboxCtx, impl_http_fake, listed};

/// `type = "devto"`
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct DevtoConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// The Forem instance: `https://dev.to`, or another Forem community's root.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// The API key (Settings → Extensions → DEV Community API Keys), sent as `api-key`.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// The key from a file.
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Publish at once (`true`) or leave a draft for the author (`false`, Forem's own default).
    #[serde(default = "default_published")]
    pub published: bool,
    /// The article's tags (at most 4, letters and digits only); the tags when unset.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// A series name: Forem groups articles of the same series.
    #[serde(default)]
    pub series: Option<String>,
}

fn default_api_base() -> String {
    "https://dev.to".into()
}
fn default_published() -> bool {
    true
}

/// Forem refuses an article with more tags than this ("Tag list exceed the maximum of 4 tags",
/// `Article#validate_tag`).
pub const MAX_TAGS: usize = 4;
/// Forem's longest tag name (`Tag#validate_name`: "is too long (maximum is 30 characters)").
pub const MAX_TAG_CHARS: usize = 30;
/// Forem's longest title (`Article`: `validates :title, length: { maximum: 128 }`).
pub const MAX_TITLE_CHARS: usize = 128;

/// Why Forem would refuse this tag list, or `None`. Forem's rule (`Tag#validate_name`): each
/// name matches `/\A[[:alnum:]]+\z/` (letters and digits, no `-`, `_`, spaces or `#`) and has at
/// most 30 characters; an article has at most 4.
pub fn tag_problem(tags: &[String]) -> Option<String> {
    if tags.len() > MAX_TAGS {
        return Some(format!(
            "{} tags ({}); dev.to takes at most {MAX_TAGS}",
            tags.len(),
            tags.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ")
        ));
    }
    for t in tags {
        if t.is_empty() || !t.chars().all(char::is_alphanumeric) {
            return Some(format!("tag \"{t}\" has characters other than letters and digits; dev.to refuses it (write e.g. \"{}\")", t.chars().filter(|c| c.is_alphanumeric()).collect::<String>()));
        }
        if t.chars().count() > MAX_TAG_CHARS {
            return Some(format!("tag \"{t}\" is longer than {MAX_TAG_CHARS} characters; dev.to refuses it"));
        }
    }
    None
}

/// The `devto` type: a dev.to (Forem) article, cross-posted with the canonical URL.
pub struct Devto;

impl ChannelType for Devto {
    const TYPE: &'static str = "devto";
    const ALIASES: &'static [&'static str] = &["dev.to", "dev_to", "forem"];
    const KEYS: &'static [KeySpec] = &[
        opt("api_base", Kind::HttpUrl),
        opt("api_key", Kind::Secret),
        opt("api_key_file", Kind::Path),
        opt("published", Kind::Bool),
        opt("tags", Kind::StrList),
        opt("series", Kind::NonEmptyStr),
    ];
    type Config = DevtoConfig;
    kind_basics!();

    fn check(c: &mut ChannelCheck<'_, '_>) {
        c.require_secret("api_key", "");
        let tags: Option<Vec<String>> = c
            .table()
            .get("tags")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect());
        if let Some(problem) = tags.as_deref().and_then(tag_problem) {
            c.problem_at("tags", problem, Some("e.g. tags = [\"rust\", \"newsletter\"]: at most 4, letters and digits only".into()));
        }
    }
    fn secrets(c: &Self::Config, _ctx: &BuildCtx, out: &mut Secrets) {
        out.refs.push(pick_secret(&c.api_key, &c.api_key_file));
    }
    /// Refuse, before anything is sent, what Forem surely refuses with a 422: more than 4 tags,
    /// a tag that is not letters and digits, a missing or over-long title.
    fn size_limit(c: &Self::Config, r: &Rendering) -> Result<(), String> {
        let Rendering::Body(b) = r else { return Ok(()) };
        let article = super::article(&b.body, c).map_err(|e| format!("dev.to: {e}"))?;
        super::preflight(&article).map_err(|e| format!("dev.to: {e}"))
    }
    async fn sandbox(d: &mut Self::Config, ctx: &SandboxCtx<'_>) -> anyhow::Result<Fake> {
        use crate::sandbox::devto::{self as fake, DevtoFake};
        let f = DevtoFake::start().await?;
        d.api_base = f.base_url.clone();
        ctx.secret_pair(&mut d.api_key, &mut d.api_key_file, "api_key", fake::API_KEY)?;
        Ok(Fake::Http(Box::new(f)))
    }
    fn sandbox_fragment(d: &Self::Config, t: &mut FragmentTable<'_>) {
        t.set("api_base", &d.api_base);
        t.secret_file("api_key", &d.api_key);
    }
}

// The sandbox's pointer to the type's contract fake.
impl_http_fake!(crate::sandbox::devto::DevtoFake, |f| listed(f.articles(), "article(s)"));
