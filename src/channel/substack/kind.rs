//! `type = "substack"`: the channel's config table and its registration ([`ChannelType`]): the keys
//! the validator accepts come from here (a test checks them against the struct), with the type's
//! own checks, its secrets for the redactor, its build, and its sandbox wiring to its fake.

use std::path::PathBuf;

use serde::Deserialize;

use crate::channel::BuildCtx;
use crate::channel::registry::{ChannelType, Secrets, kind_basics};
use crate::config::keys::{KeySpec, Kind, opt, req};
use crate::config::{Common, Secret, pick_secret};
use crate::sandbox::wiring::{Fake, FragmentTable, SandboxCtx, impl_http_fake};

/// Substack publishing mode.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum SubstackMode {
    /// Create the draft and publish it.
    #[default]
    Publish,
    /// Create the draft only; the author publishes by hand.
    Draft,
}

/// `type = "substack"`
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct SubstackConfig {
    /// Shared keys.
    #[serde(flatten)]
    pub common: Common,
    /// The publication's root, e.g. `https://yourpub.substack.com`.
    pub api_base: String,
    /// The session cookie: its value (sent as `cookie_name`, or as both `connect.sid` and
    /// `substack.sid`), or a whole `name=value; …` cookie string.
    #[serde(default)]
    pub cookie: Option<Secret>,
    /// The cookie's name: `connect.sid` (current sessions) or `substack.sid` (older accounts).
    #[serde(default)]
    pub cookie_name: Option<String>,
    /// The `User-Agent` sent; Substack is reported to refuse non-browser ones.
    #[serde(default = "default_substack_ua")]
    pub user_agent: String,
    /// Where the author's user id is read when `user_id` is not set.
    #[serde(default = "default_substack_profile")]
    pub profile_url: String,
    /// The cookie from a file.
    #[serde(default)]
    pub cookie_file: Option<PathBuf>,
    /// `publish` or `draft`.
    #[serde(default)]
    pub mode: SubstackMode,
    /// `everyone`, `only_paid`, `founding`, `only_free`.
    #[serde(default = "default_audience")]
    pub audience: String,
    /// Email Substack's own subscribers on publish.
    #[serde(default)]
    pub send_email: bool,
    /// The author's Substack user id, for the byline (read from `profile_url` when unset).
    #[serde(default)]
    pub user_id: Option<u64>,
    /// The largest draft request body (bytes) the preflight lets through. Substack documents no
    /// limit, so this is a setting: the default is an assumption, not a published figure.
    #[serde(default = "default_substack_max_body")]
    pub max_body_bytes: usize,
}

/// The default for `max_body_bytes`: 5 MB (unverified; Substack publishes no figure).
pub const SUBSTACK_DEFAULT_MAX_BODY: usize = 5_000_000;

fn default_substack_max_body() -> usize {
    SUBSTACK_DEFAULT_MAX_BODY
}

/// A current desktop browser's User-Agent: Substack is reported to 403 non-browser ones.
pub const SUBSTACK_DEFAULT_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36";

fn default_substack_ua() -> String {
    SUBSTACK_DEFAULT_UA.into()
}
fn default_substack_profile() -> String {
    "https://substack.com/api/v1/user/profile/self".into()
}

fn default_audience() -> String {
    "everyone".into()
}

/// The `substack` type: a Substack post.
pub struct Substack;

impl ChannelType for Substack {
    const TYPE: &'static str = "substack";
    const ALIASES: &'static [&'static str] = &[];
    const KEYS: &'static [KeySpec] = &[
        req("api_base", Kind::HttpUrl),
        opt("cookie", Kind::Secret),
        opt("cookie_file", Kind::Path),
        opt("cookie_name", Kind::Enum(&["connect.sid", "substack.sid"])),
        opt("user_agent", Kind::NonEmptyStr),
        opt("profile_url", Kind::HttpUrl),
        opt("mode", Kind::Enum(&["publish", "draft"])),
        opt("audience", Kind::Enum(&["everyone", "only_paid", "founding", "only_free"])),
        opt("send_email", Kind::Bool),
        opt("user_id", Kind::UInt),
        opt("max_body_bytes", Kind::Range(1_000, 100_000_000)),
    ];
    const EXAMPLES: &'static [(&'static str, &'static str)] = &[("api_base", "\"https://yourpub.substack.com\"")];
    type Config = SubstackConfig;
    kind_basics!();

    fn secrets(c: &Self::Config, _ctx: &BuildCtx, out: &mut Secrets) {
        out.refs.push(pick_secret(&c.cookie, &c.cookie_file));
    }
    fn size_limit(c: &Self::Config, r: &crate::render::Rendering) -> Result<(), String> {
        if let crate::render::Rendering::Article(a) = r {
            // The draft request carries the title, the subtitle and the document as a JSON-encoded
            // string (`draft_body`), so the document's JSON is escaped once more.
            let doc = match &a.doc {
                Some(d) => crate::render::prosemirror::encoded_twice_len(d),
                None => a.html.len(),
            };
            let size = (a.title.len() + a.subtitle.len()).saturating_add(doc);
            if size > c.max_body_bytes {
                return Err(format!(
                    "the draft is about {:.1} MB, over the channel's `max_body_bytes` ({} bytes; Substack publishes no limit, so this is a setting); shorten the issue, or raise `max_body_bytes` if your Substack accepts more",
                    size as f64 / 1e6,
                    c.max_body_bytes
                ));
            }
        }
        Ok(())
    }
    async fn sandbox(s: &mut Self::Config, ctx: &SandboxCtx<'_>) -> anyhow::Result<Fake> {
        use crate::sandbox::substack::{self as fake, SubstackFake};
        let f = SubstackFake::start().await?;
        s.api_base = f.base_url.clone();
        ctx.secret_pair(&mut s.cookie, &mut s.cookie_file, "cookie", fake::COOKIE)?;
        s.user_id = Some(fake::USER_ID);
        s.profile_url = format!("{}/api/v1/user/profile/self", f.base_url);
        Ok(Fake::Http(Box::new(f)))
    }
    fn sandbox_fragment(st: &Self::Config, t: &mut FragmentTable<'_>) {
        t.set("api_base", &st.api_base);
        if let Some(u) = st.user_id {
            t.set_value("user_id", toml::Value::Integer(i64::try_from(u).unwrap_or(i64::MAX)));
        }
        t.secret_file("cookie", &st.cookie);
    }
}

// The sandbox's pointer to the type's contract fake.
impl_http_fake!(crate::sandbox::substack::SubstackFake, |f| {
    let (d, p) = (f.drafts(), f.published());
    Ok((serde_json::json!({"drafts": d, "published": p}), format!("{} draft(s), {} published", d.len(), p.len())))
});
