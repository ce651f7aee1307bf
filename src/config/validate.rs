//! The schema pass over the raw TOML: every section's and every channel type's keys, value checks,
//! cross references. Pure, and it reports every problem at once, each with file, line, dotted key and a hint.
//!
//! serde's `deny_unknown_fields` cannot be used beside `#[serde(flatten)]`, so unknown keys are found
//! here, on the `toml_edit` document, which keeps the span of every key and value. Only when this pass
//! finds nothing is the text handed to serde to build the typed [`Config`].

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;

use toml_edit::{Document, Item, TableLike, Value};

use super::model::Config;
use crate::channel::registry::{self, type_alias};
use super::secret::Secret;
use super::{ConfigError, ConfigErrors};

pub use super::keys::{KeySpec, Kind, opt, req};

/// The longest delay Herald accepts anywhere (a retry delay, a rate-limit wait): 30 days.
pub const MAX_DELAY_SECS: i64 = 30 * 86_400;
/// The most entries in a retry schedule.
pub const MAX_SCHEDULE_LEN: usize = 100;
/// The longest per-attempt timeout: one hour.
pub const MAX_TIMEOUT_SECS: i64 = 3_600;
/// The widest catch-up window of a schedule: 366 days.
pub const MAX_CATCH_UP_SECS: i64 = 366 * 86_400;
/// The most parallel connections or requests a channel may open.
pub const MAX_CONCURRENCY: i64 = 1_000;

const STORE: &[KeySpec] = &[opt("url", Kind::StoreUrl), opt("ledger_flush_ms", Kind::UIntUpTo(1000))];
const RETRY: &[KeySpec] = &[
    opt("schedule_secs", Kind::Schedule),
    opt("jitter", Kind::Fraction),
    opt("rate_limit_floor_secs", Kind::UIntUpTo(MAX_DELAY_SECS)),
    opt("rate_limit_ceiling_secs", Kind::UIntUpTo(MAX_DELAY_SECS)),
];
const HTTP: &[KeySpec] = &[opt("listen", Kind::Listen), opt("token", Kind::Secret), opt("token_file", Kind::Path)];
const CREDENTIALS: &[KeySpec] =
    &[opt("key", Kind::Secret), opt("key_file", Kind::Path), opt("renew_days", Kind::Range(1, 365)), opt("warn_days", Kind::UIntUpTo(365))];
/// The longest soft-bounce window: a year.
pub const MAX_SOFT_BOUNCE_DAYS: i64 = 365;
const BOUNCES: &[KeySpec] = &[
    opt("soft_bounce_limit", Kind::Range(1, 100)),
    opt("soft_bounce_days", Kind::Range(1, MAX_SOFT_BOUNCE_DAYS)),
    opt("webhook_user", Kind::NonEmptyStr),
    opt("webhook_password", Kind::Secret),
    opt("webhook_password_file", Kind::Path),
    opt("webhook_path_secret", Kind::Secret),
    opt("webhook_path_secret_file", Kind::Path),
    opt("imap_url", Kind::NonEmptyStr),
    opt("imap_user", Kind::NonEmptyStr),
    opt("imap_password", Kind::Secret),
    opt("imap_password_file", Kind::Path),
    opt("imap_mailbox", Kind::NonEmptyStr),
    opt("imap_done_mailbox", Kind::NonEmptyStr),
    opt("imap_ca_file", Kind::Path),
    opt("poll_secs", Kind::Range(5, 86_400)),
];
const SCHEDULE: &[KeySpec] = &[
    req("name", Kind::NonEmptyStr),
    req("cron", Kind::Cron),
    opt("timezone", Kind::TimeZone),
    opt("what", Kind::NonEmptyStr),
    opt("channels", Kind::StrList),
    opt("catch_up_secs", Kind::UIntUpTo(MAX_CATCH_UP_SECS)),
];

/// Keys every channel accepts (besides `type`).
#[cfg(test)]
pub(crate) const COMMON_KEYS: &[KeySpec] = COMMON;
const COMMON: &[KeySpec] = &[
    opt("template", Kind::Path),
    opt("enabled", Kind::Bool),
    opt("retry_schedule_secs", Kind::Schedule),
    opt("timeout_secs", Kind::Range(1, MAX_TIMEOUT_SECS)),
    opt("utm", Kind::Bool),
];
/// Keys the post networks add.
#[cfg(test)]
pub(crate) const POST_KEYS: &[KeySpec] = POST;
const POST: &[KeySpec] = &[opt("format", Kind::Enum(&["short", "thread"])), opt("counter", Kind::Bool)];

/// The keys of one channel type beyond [`COMMON`]: its own (from its folder, through the
/// registry), and the post options if it takes them.
fn type_keys(ty: &str) -> Option<(&'static [KeySpec], bool)> {
    registry::type_info(ty).map(|t| (t.keys, t.post))
}

const SECRET_SYNTAX: &str = "write `key = \"${ENV_VAR}\"` or `key_file = \"/path/to/file\"`";

/// Validate a config file's text. Returns the typed config, or every problem found.
pub fn validate(file: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let mut v = Validator::new(file, text);
    let doc = match Document::parse(text) {
        Ok(d) => d,
        Err(e) => {
            // The error's Display quotes the offending line, which may hold a secret: use the message only.
            let line = v.line(e.span());
            v.push(line, String::new(), format!("not valid TOML: {}", e.message().trim()), Some("see https://toml.io for the syntax".into()));
            return Err(ConfigErrors(v.errors));
        }
    };
    v.document(doc.as_table());
    // Report in file order; the walk visits sections, then cross references.
    v.errors.sort_by_key(|e| e.line.unwrap_or(0));
    if !v.errors.is_empty() {
        return Err(ConfigErrors(v.errors));
    }
    toml::from_str::<Config>(text).map_err(|e| {
        let line = v.line(e.span());
        v.push(line, String::new(), e.message().trim().to_string(), None);
        ConfigErrors(v.errors)
    })
}

/// Collects errors while walking the document.
struct Validator<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl<'a> Validator<'a> {
    fn new(file: &'a Path, text: &'a str) -> Self {
        Self { file, text, errors: Vec::new() }
    }

    /// 1-based line of a byte offset.
    fn line(&self, span: Option<Range<usize>>) -> Option<usize> {
        let s = span?;
        let at = s.start.min(self.text.len());
        Some(self.text.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1)
    }

    fn push(&mut self, line: Option<usize>, key: String, message: String, hint: Option<String>) {
        // A key is echoed as written only when it is short and printable.
        let key = escape_key(&key);
        self.errors.push(ConfigError { file: self.file.to_path_buf(), line, key, message, hint });
    }

    /// Line of `key` in `table`, else of its value, else `fallback`.
    fn key_line(&self, table: &dyn TableLike, key: &str, fallback: Option<usize>) -> Option<usize> {
        table
            .key(key)
            .and_then(|k| self.line(k.span()))
            .or_else(|| table.get(key).and_then(|i| self.line(i.span())))
            .or(fallback)
    }

    /// Line of a table: its header, else its first key.
    fn table_line(&self, item: &Item) -> Option<usize> {
        self.line(item.span()).or_else(|| {
            let t = item.as_table_like()?;
            t.iter().find_map(|(k, _)| self.key_line(t, k, None))
        })
    }

    fn document(&mut self, root: &toml_edit::Table) {
        let mut channel_names = BTreeSet::new();
        if let Some(item) = root.get("channels") {
            let line = self.key_line(root, "channels", None);
            match item.as_table_like() {
                Some(t) => channel_names = t.iter().map(|(k, _)| k.to_string()).collect(),
                None => self.push(
                    line,
                    "channels".into(),
                    "must be a table of named channels".into(),
                    Some("write one `[channels.<name>]` table per channel, with `type = \"…\"` inside".into()),
                ),
            }
        }
        for (key, item) in root.iter() {
            let line = self.key_line(root, key, self.line(item.span()));
            match key {
                "store" => {
                    self.section(item, "store", STORE, line);
                }
                "retry" => {
                    if let Some(t) = self.section(item, "retry", RETRY, line) {
                        self.retry_limits(t, "retry", line);
                    }
                }
                "http" => {
                    if let Some(t) = self.section(item, "http", HTTP, line) {
                        self.secret_pairs(t, "http", &["token"], line);
                    }
                }
                "credentials" => {
                    if let Some(t) = self.section(item, "credentials", CREDENTIALS, line) {
                        self.secret_pairs(t, "credentials", &["key"], line);
                    }
                }
                "bounces" => {
                    if let Some(t) = self.section(item, "bounces", BOUNCES, line) {
                        self.secret_pairs(t, "bounces", &["webhook_password", "webhook_path_secret", "imap_password"], line);
                        self.bounces(t, line);
                    }
                }
                "issues_dir" => self.value(item, "issues_dir", Kind::Path, line),
                "publish_at_catch_up_secs" => self.value(item, "publish_at_catch_up_secs", Kind::UIntUpTo(MAX_CATCH_UP_SECS), line),
                "schedule" => self.schedules(item, line, &channel_names),
                "channels" => {
                    if let Some(t) = item.as_table_like() {
                        for (name, ch) in t.iter() {
                            let l = self.key_line(t, name, None);
                            self.channel(name, ch, l);
                        }
                    }
                }
                other => {
                    let hint = if registry::type_info(other).is_some() || type_alias(other).is_some() {
                        Some(format!("channels go under `[channels.<name>]` with `type = \"{}\"`", type_alias(other).unwrap_or(other)))
                    } else {
                        key_hint(other, TOP_KEYS)
                    };
                    self.push(line, other.to_string(), "unknown key".into(), hint);
                }
            }
        }
    }

    /// Check a plain section against its keys. Returns it as a table when it is one.
    fn section<'d>(&mut self, item: &'d Item, path: &str, keys: &[KeySpec], line: Option<usize>) -> Option<&'d dyn TableLike> {
        let Some(t) = item.as_table_like() else {
            self.push(line, path.into(), format!("must be a table, found {}", type_of(item)), Some(format!("write `[{path}]` on its own line, then its keys")));
            return None;
        };
        let table_line = self.table_line(item).or(line);
        self.keys(t, path, keys, &[], table_line, None, &[]);
        Some(t)
    }

    /// Check the keys of a table: unknown ones, required ones, and each value.
    fn keys(&mut self, t: &dyn TableLike, path: &str, specs: &[KeySpec], extra: &[&str], table_line: Option<usize>, ty: Option<&str>, examples: &[(&str, &str)]) {
        for (key, item) in t.iter() {
            let line = self.key_line(t, key, table_line);
            let dotted = format!("{path}.{key}");
            if extra.contains(&key) {
                continue;
            }
            match specs.iter().find(|s| s.name == key) {
                Some(spec) => self.value(item, &dotted, spec.kind, line),
                None => {
                    let names: Vec<&str> = specs.iter().map(|s| s.name).chain(extra.iter().copied()).collect();
                    let hint = unknown_key_hint(key, &names, ty);
                    self.push(line, dotted, "unknown key".into(), Some(hint));
                }
            }
        }
        for spec in specs.iter().filter(|s| s.required) {
            if !t.contains_key(spec.name) {
                self.push(table_line, format!("{path}.{}", spec.name), "is required".into(), Some(example_for(spec, examples)));
            }
        }
    }

    /// Check one value against its kind.
    fn value(&mut self, item: &Item, key: &str, kind: Kind, line: Option<usize>) {
        let short = key.rsplit('.').next().unwrap_or(key).to_string();
        let bad = |v: &mut Self, message: String, hint: Option<String>| v.push(line, key.to_string(), message, hint);
        if let Kind::StrMap = kind {
            match item.as_table_like() {
                Some(t) => {
                    for (k, i) in t.iter() {
                        let l = self.key_line(t, k, line);
                        let reference = i.as_str().and_then(|v| Secret::header_reference(k, v));
                        if i.as_str().is_none() {
                            self.push(l, format!("{key}.{k}"), format!("must be a string, found {}", type_of(i)), None);
                        } else if !k.bytes().all(|b| b.is_ascii_graphic() && b != b':') || k.is_empty() {
                            self.push(l, format!("{key}.{k:?}"), "is not a valid header name".into(), Some("use letters, digits and `-`, e.g. `X-Source`".into()));
                        } else if i.as_str().is_some_and(|v| v.chars().any(|c| c.is_control() && c != '\t')) {
                            // A line break would end the header and start another (header injection).
                            self.push(l, format!("{key}.{k}"), "the value holds a line break or another control character".into(), Some("write the value on one line".into()));
                        } else if reference.is_none() && (is_credential_header(k) || k.to_ascii_lowercase().ends_with("_file")) {
                            // A literal value is sent as written, so a credential here would sit in the file.
                            let env = format!("{}_{}", key.replace("channels.", "").replace(['.', '-'], "_"), k.replace('-', "_")).to_ascii_uppercase();
                            self.push(
                                l,
                                format!("{key}.{k}"),
                                "inline secret refused: this header carries a credential".into(),
                                Some(format!("write `{k} = \"${{{env}}}\"` (or `\"Bearer ${{{env}}}\"`), or `{k}_file = \"/path/to/file\"`")),
                            );
                        } else if let Some((name, _, _)) = &reference
                            && reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                        {
                            self.push(l, format!("{key}.{k}"), format!("`{}` is not a valid header name", escape_key(name)), None);
                        }
                    }
                }
                None => bad(self, format!("must be a table of strings, found {}", type_of(item)), Some(format!("`{short} = {{ \"X-Name\" = \"value\" }}`"))),
            }
            return;
        }
        let Some(val) = item.as_value() else {
            bad(self, format!("must be {}, found {}", kind_name(kind), type_of(item)), None);
            return;
        };
        match kind {
            Kind::Bool => {
                if val.as_bool().is_none() {
                    bad(self, format!("must be true or false, found {}", value_type(val)), None);
                }
            }
            Kind::UInt => match val.as_integer() {
                Some(n) if n < 0 => bad(self, format!("must not be negative, found {n}"), None),
                Some(_) => {}
                None => bad(self, format!("must be a whole number, found {}", value_type(val)), None),
            },
            Kind::UIntUpTo(max) | Kind::Range(_, max) => {
                let min = if let Kind::Range(min, _) = kind { min } else { 0 };
                match val.as_integer() {
                    Some(n) if (min..=max).contains(&n) => {}
                    Some(n) => bad(self, format!("must be from {min} to {max}, found {n}"), bound_hint(&short, max)),
                    None => bad(self, format!("must be a whole number, found {}", value_type(val)), None),
                }
            }
            Kind::Fraction => {
                let f = val.as_float().or_else(|| val.as_integer().map(|i| i as f64));
                match f {
                    Some(f) if (0.0..1.0).contains(&f) => {}
                    Some(f) => bad(self, format!("must be at least 0 and below 1, found {f}"), Some("a fraction: 0.2 spreads each delay by ±20 %".into())),
                    None => bad(self, format!("must be a number, found {}", value_type(val)), None),
                }
            }
            Kind::Schedule => match val.as_array() {
                Some(a) if a.is_empty() => bad(
                    self,
                    "the retry schedule is empty".into(),
                    Some("list the delays before each retry in seconds, e.g. `[0, 5, 300, 1800, 7200]`".into()),
                ),
                Some(a) => {
                    if a.iter().any(|x| x.as_integer().is_none_or(|n| n < 0)) {
                        bad(self, "every delay must be a whole number of seconds ≥ 0".into(), Some("e.g. `[0, 5, 300, 1800, 7200]`".into()));
                    } else if let Some(n) = a.iter().filter_map(Value::as_integer).find(|n| *n > MAX_DELAY_SECS) {
                        bad(self, format!("a delay of {n} s is longer than the most Herald waits, {MAX_DELAY_SECS} s (30 days)"), Some("e.g. `[0, 5, 300, 1800, 7200]`".into()));
                    } else if a.len() > MAX_SCHEDULE_LEN {
                        bad(self, format!("{} retries listed; at most {MAX_SCHEDULE_LEN}", a.len()), Some("list the delays before each retry, e.g. `[0, 5, 300, 1800, 7200]`".into()));
                    }
                }
                None => bad(self, format!("must be a list of seconds, found {}", value_type(val)), Some("e.g. `[0, 5, 300, 1800, 7200]`".into())),
            },
            Kind::IdList => match val.as_array() {
                Some(a) if a.iter().any(|x| x.as_integer().is_none_or(|n| n < 1)) => {
                    bad(self, "every entry must be a whole number ≥ 1 (an id on the service)".into(), Some("e.g. `[3, 14]`: the ids the service shows, not names".into()))
                }
                Some(_) => {}
                None => bad(self, format!("must be a list of ids, found {}", value_type(val)), Some("e.g. `[3, 14]`".into())),
            },
            Kind::StrList | Kind::Command | Kind::EnvNames => match val.as_array() {
                Some(a) if a.iter().any(|x| x.as_str().is_none()) => bad(self, "every entry must be a string".into(), None),
                Some(a) if matches!(kind, Kind::EnvNames) && a.iter().filter_map(|x| x.as_str()).any(|s| !is_env_name(s)) => bad(
                    self,
                    "every entry must be an environment variable's name, not a value".into(),
                    Some("e.g. `env = [\"PLUGIN_TOKEN\"]`: the plugin gets that variable from herald's environment".into()),
                ),
                Some(a) if matches!(kind, Kind::Command) && (a.is_empty() || a.iter().any(|x| x.as_str().is_some_and(|s| s.trim().is_empty()))) => bad(
                    self,
                    "must name a program (and its arguments), without blank entries".into(),
                    Some("e.g. `command = [\"python3\", \"examples/plugin.py\"]`".into()),
                ),
                Some(_) => {}
                None => {
                    let hint = (matches!(kind, Kind::Command) && val.as_str().is_some())
                        .then(|| "a list, one entry per argument: `command = [\"python3\", \"examples/plugin.py\"]`".to_string());
                    bad(self, format!("must be a list of strings, found {}", value_type(val)), hint)
                }
            },
            Kind::Secret => {
                // Never echo the value: it may be the secret itself.
                let ok = val.as_str().is_some_and(|s| Secret::parse(s).is_ok());
                if !ok {
                    let env = key.replace("channels.", "").replace(['.', '-'], "_").to_ascii_uppercase();
                    let message = if val.as_str().is_some() {
                        "inline secret refused: secrets are never written into the config".to_string()
                    } else {
                        format!("must be a string `\"${{ENV_VAR}}\"`, found {}", value_type(val))
                    };
                    bad(self, message, Some(format!("write `{short} = \"${{{env}}}\"` or `{short}_file = \"/path/to/file\"`")));
                }
            }
            _ => {
                let Some(s) = val.as_str() else {
                    bad(self, format!("must be {}, found {}", kind_name(kind), value_type(val)), None);
                    return;
                };
                if let Err((message, hint)) = check_str(kind, s) {
                    bad(self, message, hint);
                }
            }
        }
    }

    /// `[retry]` and per-channel limits that relate two keys.
    fn retry_limits(&mut self, t: &dyn TableLike, path: &str, line: Option<usize>) {
        let floor = t.get("rate_limit_floor_secs").and_then(Item::as_integer);
        let ceil = t.get("rate_limit_ceiling_secs").and_then(Item::as_integer);
        if let (Some(f), Some(c)) = (floor, ceil)
            && f > c
        {
            let l = self.key_line(t, "rate_limit_ceiling_secs", line);
            self.push(
                l,
                format!("{path}.rate_limit_ceiling_secs"),
                format!("is below rate_limit_floor_secs ({c} < {f})"),
                Some("the ceiling must be at least the floor".into()),
            );
        }
    }

    /// `[bounces]`: the IMAP mailbox needs its URL, user and password together, and TLS
    /// beyond loopback.
    fn bounces(&mut self, t: &dyn TableLike, line: Option<usize>) {
        let has = |k: &str| t.contains_key(k);
        if has("imap_url") || has("imap_user") || has("imap_password") || has("imap_password_file") {
            for (k, hint) in [("imap_url", "e.g. `imap_url = \"imaps://mail.example.com\"`"), ("imap_user", "the login of the bounce mailbox")] {
                if !has(k) {
                    self.push(line, format!("bounces.{k}"), "is required when the bounce mailbox is configured".into(), Some(hint.into()));
                }
            }
            if !has("imap_password") && !has("imap_password_file") {
                self.push(line, "bounces.imap_password".into(), "is required when the bounce mailbox is configured".into(), Some(SECRET_SYNTAX.into()));
            }
        }
        if let Some(u) = t.get("imap_url").and_then(|i| i.as_str()) {
            let l = self.key_line(t, "imap_url", line);
            match url::Url::parse(u) {
                Ok(p) if p.scheme() == "imaps" => {}
                Ok(p) if p.scheme() == "imap" && has("imap_ca_file") => {
                    let l = self.key_line(t, "imap_ca_file", line);
                    self.push(l, "bounces.imap_ca_file".into(), "is set but `imap_url` is plain `imap://`, which uses no TLS".into(), Some("use `imaps://host` or remove `imap_ca_file`".into()))
                }
                Ok(p) if p.scheme() == "imap" && crate::config::is_loopback_host(p.host()) => {}
                Ok(p) if p.scheme() == "imap" => self.push(
                    l,
                    "bounces.imap_url".into(),
                    format!("plain IMAP to {} would send the password in clear", p.host_str().unwrap_or("?")),
                    Some("use `imaps://host` (TLS); plain `imap://` is accepted on loopback only".into()),
                ),
                Ok(p) => self.push(l, "bounces.imap_url".into(), format!("unknown scheme `{}`", p.scheme()), Some("write `imaps://host[:port]`".into())),
                Err(e) => self.push(l, "bounces.imap_url".into(), format!("not a URL ({e})"), Some("write `imaps://host[:port]`".into())),
            }
        }
    }

    fn secret_pairs(&mut self, t: &dyn TableLike, path: &str, keys: &[&str], line: Option<usize>) {
        for k in keys {
            let file = format!("{k}_file");
            if t.contains_key(k) && t.contains_key(&file) {
                let l = self.key_line(t, &file, line);
                self.push(l, format!("{path}.{file}"), format!("both `{k}` and `{file}` are set"), Some(format!("keep one: `{k} = \"${{ENV_VAR}}\"` or `{file} = \"/path\"`")));
            }
        }
    }

    fn schedules(&mut self, item: &Item, line: Option<usize>, channels: &BTreeSet<String>) {
        let tables: Vec<(Option<usize>, &dyn TableLike)> = match item {
            Item::ArrayOfTables(a) => a.iter().map(|t| (self.line(t.span()), t as &dyn TableLike)).collect(),
            Item::Value(Value::Array(a)) if a.iter().all(|v| v.as_inline_table().is_some()) => {
                a.iter().filter_map(|v| v.as_inline_table().map(|t| (self.line(v.span()), t as &dyn TableLike))).collect()
            }
            _ => {
                self.push(line, "schedule".into(), format!("must be a list of `[[schedule]]` tables, found {}", type_of(item)), Some(SCHEDULE_EXAMPLE.into()));
                return;
            }
        };
        let mut names: BTreeMap<String, Option<usize>> = BTreeMap::new();
        for (i, (tline, t)) in tables.into_iter().enumerate() {
            let path = format!("schedule[{i}]");
            let tline = tline.or(line);
            self.keys(t, &path, SCHEDULE, &[], tline, None, &[]);
            if let Some(name) = t.get("name").and_then(Item::as_str) {
                let l = self.key_line(t, "name", tline);
                if let Some(first) = names.get(name) {
                    let at = first.map(|n| format!(" (first on line {n})")).unwrap_or_default();
                    self.push(l, format!("{path}.name"), format!("duplicate schedule name `{name}`{at}"), Some("every [[schedule]] needs its own name: fires are recorded by name".into()));
                } else {
                    names.insert(name.to_string(), l);
                }
            }
            if let Some(list) = t.get("channels").and_then(Item::as_array) {
                let l = self.key_line(t, "channels", tline);
                for c in list.iter().filter_map(Value::as_str) {
                    if !channels.contains(c) {
                        let known: Vec<&str> = channels.iter().map(String::as_str).collect();
                        let hint = match suggest(c, &known) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None if known.is_empty() => "no channels are configured".into(),
                            None => format!("configured channels: {}", known.join(", ")),
                        };
                        self.push(l, format!("{path}.channels"), format!("unknown channel `{}`", escape_key(c)), Some(hint));
                    }
                }
            }
        }
    }

    fn channel(&mut self, name: &str, item: &Item, line: Option<usize>) {
        let path = format!("channels.{name}");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            self.push(line, path.clone(), "channel names use only letters, digits, '-' and '_'".into(), Some("the name is part of every delivery key".into()));
        }
        let Some(t) = item.as_table_like() else {
            self.push(line, path.clone(), format!("must be a table, found {}", type_of(item)), Some(format!("write `[channels.{name}]` then `type = \"…\"` below it")));
            return;
        };
        let tline = self.table_line(item).or(line);
        let types = registry::CHANNEL_TYPES;
        let ty = match t.get("type") {
            None => {
                let hint = match types.iter().find(|t| **t == name).copied().or_else(|| type_alias(name)) {
                    Some(t) => format!("add `type = \"{t}\"`; types: {}", types.join(", ")),
                    None => format!("one of: {}", types.join(", ")),
                };
                self.push(tline, format!("{path}.type"), "is required".into(), Some(hint));
                return;
            }
            Some(i) => match i.as_str() {
                Some(s) if registry::type_info(s).is_some() => registry::type_info(s).expect("registered"),
                other => {
                    let l = self.key_line(t, "type", tline);
                    let message = match other {
                        Some(s) => format!("unknown channel type `{s}`"),
                        None => format!("must be a string, found {}", type_of(i)),
                    };
                    let mut hint = format!("valid types: {}", types.join(", "));
                    if let Some(s) = other.and_then(|s| type_alias(s).or_else(|| suggest(s, types))) {
                        hint = format!("did you mean `{s}`? {hint}");
                    }
                    self.push(l, format!("{path}.type"), message, Some(hint));
                    return;
                }
            },
        };
        let info = ty;
        let ty = info.name;
        let mut specs: Vec<KeySpec> = COMMON.to_vec();
        if info.post {
            specs.extend_from_slice(POST);
        }
        specs.extend_from_slice(info.keys);
        self.keys(t, &path, &specs, &["type"], tline, Some(ty), info.examples);
        let secrets: Vec<&str> = specs.iter().filter(|s| matches!(s.kind, Kind::Secret)).map(|s| s.name).collect();
        self.secret_pairs(t, &path, &secrets, tline);
        (info.check)(&mut ChannelCheck { v: self, t, name, path, tline, ty });
    }
}

/// A channel type's own checks on its raw table ([`registry::ChannelType::check`]): what it
/// reports keeps the file, the line (of the key, else of the table) and the dotted key.
pub struct ChannelCheck<'v, 'a> {
    v: &'v mut Validator<'a>,
    t: &'v dyn TableLike,
    name: &'v str,
    path: String,
    tline: Option<usize>,
    ty: &'static str,
}

impl ChannelCheck<'_, '_> {
    /// The channel's table, as written.
    pub fn table(&self) -> &dyn TableLike {
        self.t
    }
    /// The channel's name.
    pub fn name(&self) -> &str {
        self.name
    }
    /// A string value of the table.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.t.get(key).and_then(Item::as_str)
    }
    /// Whether the table sets `key`.
    pub fn has(&self, key: &str) -> bool {
        self.t.contains_key(key)
    }
    /// A problem with `key`, on the key's line (the table's when it is missing).
    pub fn problem_at(&mut self, key: &str, message: String, hint: Option<String>) {
        let l = self.v.key_line(self.t, key, self.tline);
        self.v.push(l, format!("{}.{key}", self.path), message, hint);
    }
    /// A problem with the table as a whole (a missing key), on the table's line.
    pub fn problem(&mut self, key: &str, message: String, hint: Option<String>) {
        self.v.push(self.tline, format!("{}.{key}", self.path), message, hint);
    }
    /// A credential the type cannot work without: `key` or `key_file` must be set. `why` is
    /// appended to the message (e.g. ` (auth = "oauth1")`).
    pub fn require_secret(&mut self, key: &str, why: &str) {
        if !self.has(key) && !self.has(&format!("{key}_file")) {
            let env = format!("{}_{}", self.name, key).replace('-', "_").to_ascii_uppercase();
            let ty = self.ty;
            self.problem(key, format!("is required for a `{ty}` channel{why}"), Some(format!("write `{key} = \"${{{env}}}\"` or `{key}_file = \"/path/to/file\"`")));
        }
    }
}

/// What a bound on a count or duration means, for the error's hint.
fn bound_hint(key: &str, max: i64) -> Option<String> {
    Some(match key {
        k if k.ends_with("_secs") && max >= 86_400 => format!("seconds; the bound is {} days", max / 86_400),
        k if k.ends_with("_secs") => format!("seconds; the bound is {max} s"),
        "concurrency" => "parallel connections; a few are usually enough (the default is 8 for SMTP, 2 for an API)".into(),
        _ => return None,
    })
}

/// The keys of the file's root table.
const TOP_KEYS: &[&str] = &["store", "issues_dir", "retry", "http", "schedule", "channels", "publish_at_catch_up_secs", "credentials", "bounces"];

/// Header names that carry credentials.
fn is_credential_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "authorization" || n == "proxy-authorization" || n == "cookie" || ["token", "secret", "api-key", "apikey", "password"].iter().any(|w| n.contains(w))
}

const SCHEDULE_EXAMPLE: &str = "[[schedule]]\nname = \"weekly\"\ncron = \"0 0 9 * * Mon\"";

/// Check a string value against its kind. Error: (message, hint).
fn check_str(kind: Kind, s: &str) -> Result<(), (String, Option<String>)> {
    let err = |m: String, h: &str| Err((m, (!h.is_empty()).then(|| h.to_string())));
    match kind {
        Kind::Path if s.trim().is_empty() => err("must not be empty".into(), "a path, relative to the config file"),
        Kind::Path => Ok(()),
        Kind::NonEmptyStr if s.trim().is_empty() => err("must not be empty".into(), ""),
        Kind::NonEmptyStr => Ok(()),
        Kind::HttpUrl => match url::Url::parse(s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                if !u.username().is_empty() || u.password().is_some() {
                    err("must not carry credentials".into(), SECRET_SYNTAX)
                } else {
                    Ok(())
                }
            }
            Ok(u) => err(format!("must be an http(s) URL, found scheme `{}`", u.scheme()), "e.g. `https://api.example.com`"),
            // The value is not echoed: a webhook URL often carries its own token.
            Err(e) => err(format!("is not a URL ({e})"), "an absolute URL with scheme and host, e.g. `https://api.example.com`"),
        },
        Kind::SmtpUrl => {
            if s.trim_start().starts_with("${") {
                return Secret::parse(s).map(|_| ()).or_else(|_| err("is not a valid `${ENV_VAR}` reference".into(), "e.g. `smtp_url = \"${SMTP_URL}\"`"));
            }
            // Do not echo the value: it may carry a password.
            match url::Url::parse(s) {
                Ok(u) if matches!(u.scheme(), "smtp" | "smtps") && u.host_str().is_some_and(|h| !h.is_empty()) => {
                    if u.password().is_some() {
                        err(
                            "inline secret refused: the URL carries a password".into(),
                            "put the whole URL in the environment: `smtp_url = \"${SMTP_URL}\"`",
                        )
                    } else {
                        Ok(())
                    }
                }
                Ok(u) => err(format!("must be an smtp:// or smtps:// URL, found scheme `{}`", u.scheme()), "e.g. `smtp://127.0.0.1:2525` or `smtps://mail.example.com`"),
                Err(e) => err(format!("is not a URL ({e})"), "e.g. `smtp://127.0.0.1:2525` or `smtps://mail.example.com`"),
            }
        }
        Kind::Mailbox => match lettre::message::Mailbox::from_str(s) {
            Ok(_) => Ok(()),
            Err(_) => err(format!("`{s}` is not an email address"), "e.g. `ana@example.com` or `Ana Lima <ana@example.com>`"),
        },
        Kind::Mailto => {
            let addr = s.strip_prefix("mailto:").unwrap_or(s);
            let addr = addr.split('?').next().unwrap_or(addr);
            match addr.parse::<lettre::Address>() {
                Ok(_) => Ok(()),
                Err(_) => err(format!("`{s}` is not an email address"), "e.g. `mailto:unsubscribe@example.com`"),
            }
        }
        Kind::Enum(words) => {
            if words.contains(&s) {
                Ok(())
            } else {
                let mut hint = format!("one of: {}", words.join(", "));
                if let Some(w) = suggest(s, words) {
                    hint = format!("did you mean `{w}`? {hint}");
                }
                Err((format!("unknown value `{}`", escape_key(s)), Some(hint)))
            }
        }
        Kind::Rfc3339 => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(_) => Ok(()),
            Err(e) => err(format!("`{s}` is not an RFC 3339 time ({e})"), "e.g. `2026-12-31T23:59:00Z`"),
        },
        Kind::Listen => match s.parse::<std::net::SocketAddr>() {
            Ok(_) => Ok(()),
            Err(_) => err(format!("`{s}` is not an address and port"), "e.g. `127.0.0.1:8025` or `0.0.0.0:8025`"),
        },
        Kind::StoreUrl => match url::Url::parse(s) {
            Ok(u) if u.scheme() == "sqlite" => Ok(()),
            Ok(u) if matches!(u.scheme(), "postgres" | "postgresql") => {
                if u.password().is_some() {
                    err("inline secret refused: the URL carries a password".into(), "leave the password out and set PGPASSWORD, or use ~/.pgpass")
                } else {
                    Ok(())
                }
            }
            Ok(u) => err(format!("unsupported store scheme `{}`", u.scheme()), "use `sqlite://data/herald.db` or `postgres://user@host/db`"),
            Err(e) => err(format!("is not a URL ({e})"), "use `sqlite://data/herald.db` or `postgres://user@host/db`"),
        },
        Kind::Cron => check_cron(s),
        Kind::TimeZone => match s.parse::<chrono_tz::Tz>() {
            Ok(_) => Ok(()),
            Err(_) => err(format!("unknown time zone `{s}`"), "an IANA name such as `UTC`, `Europe/Madrid` or `America/New_York`"),
        },
        Kind::LinkedinUrn => {
            let id = s.strip_prefix("urn:li:person:").or_else(|| s.strip_prefix("urn:li:organization:"));
            match id {
                Some(id) if !id.is_empty() => Ok(()),
                _ => err(format!("`{s}` is not a LinkedIn author URN"), "`urn:li:person:<id>` or `urn:li:organization:<id>`"),
            }
        }
        Kind::YearMonth => {
            let ok = s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) && (1..=12).contains(&s[4..].parse::<u32>().unwrap_or(0));
            if ok { Ok(()) } else { err(format!("`{s}` is not a version in YYYYMM form"), "e.g. `202511`") }
        }
        _ => Ok(()),
    }
}

/// A cron expression with a seconds field, as the `cron` crate reads it.
fn check_cron(s: &str) -> Result<(), (String, Option<String>)> {
    match cron::Schedule::from_str(s) {
        Ok(_) => Ok(()),
        Err(e) => {
            let fields = s.split_whitespace().count();
            let hint = if fields == 5 {
                format!("cron here has a seconds field first: `0 {s}`")
            } else {
                "six or seven fields: `sec min hour day-of-month month day-of-week [year]`, e.g. `0 0 9 * * Mon`".into()
            };
            // The crate's message draws a caret under the expression on extra lines; keep the reason.
            let shown = e.to_string();
            let reason = shown.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("not understood").to_string();
            Err((format!("`{s}` is not a valid cron expression: {reason}"), Some(hint)))
        }
    }
}

/// The hint for an unknown key: a near miss, a key of another channel type, a secret written the wrong way,
/// or the keys this section accepts.
fn unknown_key_hint(key: &str, names: &[&str], ty: Option<&str>) -> String {
    if let Some(s) = suggest(key, names) {
        return format!("did you mean `{s}`?");
    }
    if TOP_KEYS.contains(&key) {
        return format!("`{key}` is a top-level key: in TOML it belongs above the first `[table]` header, or every key after a header lands in that table");
    }
    if let Some(stem) = key.strip_suffix("_env").or_else(|| key.strip_suffix("_var"))
        && names.contains(&stem)
    {
        return format!("secrets come from the environment as `{stem} = \"${{ENV_VAR}}\"`");
    }
    if let Some(ty) = ty {
        let others: Vec<&str> = registry::TYPES
            .iter()
            .filter(|t| t.name != ty)
            .filter(|t| t.keys.iter().any(|s| s.name == key) || (t.post && POST.iter().any(|s| s.name == key)))
            .map(|t| t.name)
            .collect();
        if !others.is_empty() {
            return format!("`{key}` belongs to {} channels, not `{ty}`; valid keys here: {}", others.join(", "), names.join(", "));
        }
    }
    format!("valid keys here: {}", names.join(", "))
}

fn key_hint(key: &str, names: &[&str]) -> Option<String> {
    Some(match suggest(key, names) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("valid keys here: {}", names.join(", ")),
    })
}

/// The longest key or value echoed in a message, in characters.
const MAX_SHOWN: usize = 120;
/// The longest word compared for "did you mean": no key is near a word longer than this.
const MAX_SUGGEST_LEN: usize = 64;

/// Text from the input as shown in a message: control characters escaped (no terminal
/// escapes reach the screen) and cut to [`MAX_SHOWN`] characters, with the full length said.
pub(crate) fn escape_key(s: &str) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == MAX_SHOWN {
            out.push_str(&format!("… ({} characters)", s.chars().count()));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The closest candidate within a small edit distance.
pub(crate) fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    // The distance costs length × length: a huge unknown key is near nothing.
    if word.len() > MAX_SUGGEST_LEN {
        return None;
    }
    let w = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (levenshtein(&w, c), *c))
        .filter(|(d, c)| *d > 0 && *d <= (c.len().max(w.len()) / 3).clamp(1, 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
        .or_else(|| candidates.iter().copied().find(|c| *c == w && w != word))
}

/// Edit distance (insertions, deletions, substitutions, adjacent swaps).
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// True for a name a shell would accept as a variable: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_env_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_') && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// An example line for a missing required key: the channel type's own example, else one for
/// the key's kind.
fn example_for(spec: &KeySpec, examples: &[(&str, &str)]) -> String {
    let own = examples.iter().find(|(k, _)| *k == spec.name).map(|(_, e)| *e);
    let v = match (spec.name, spec.kind) {
        (_, Kind::Cron) => "\"0 0 9 * * Mon\"",
        (_, Kind::Mailbox) => "\"Ana Lima <ana@example.com>\"",
        (_, Kind::HttpUrl) => "\"https://example.com/hook\"",
        (_, Kind::LinkedinUrn) => "\"urn:li:person:AbC123\"",
        (_, Kind::Command) => "[\"python3\", \"examples/plugin.py\"]",
        ("name", _) => "\"weekly\"",
        _ => "\"…\"",
    };
    let v = own.unwrap_or(v);
    format!("add `{} = {v}`", spec.name)
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Bool => "true or false",
        Kind::UInt | Kind::UIntUpTo(_) | Kind::Range(..) => "a whole number",
        Kind::Fraction => "a number",
        Kind::Schedule | Kind::StrList | Kind::IdList | Kind::Command | Kind::EnvNames => "a list",
        Kind::StrMap => "a table",
        _ => "a string",
    }
}

fn type_of(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(v) => value_type(v),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
    }
}

fn value_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "an inline table",
    }
}

/// Something in the config that only the machine can confirm: a path that must exist or a secret
/// that must resolve. Found by [`references`] for `herald check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    /// Dotted key.
    pub key: String,
    /// 1-based line.
    pub line: Option<usize>,
    /// The channel it belongs to, and whether that channel is enabled.
    pub channel: Option<(String, bool)>,
    /// What to check.
    pub what: Refers,
}

/// What a [`Reference`] points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refers {
    /// A folder (issues_dir, a template folder).
    Dir(std::path::PathBuf),
    /// A readable file holding a secret.
    SecretFile(std::path::PathBuf),
    /// A secret from the environment.
    Env(String),
    /// The program an exec channel runs.
    Program(String),
    /// `[store] url`: a SQLite file's folder must exist or be creatable.
    Store(String),
}

/// List the paths and secrets of a config text that validated. Pure.
pub(crate) fn references(text: &str) -> Vec<Reference> {
    let v = Validator::new(Path::new(""), text);
    let Ok(doc) = Document::parse(text) else { return Vec::new() };
    let root = doc.as_table();
    let mut out = Vec::new();
    let mut add = |key: String, line: Option<usize>, channel: Option<(String, bool)>, what: Refers| out.push(Reference { key, line, channel, what });
    match root.get("issues_dir").and_then(Item::as_str) {
        Some(d) => add("issues_dir".into(), v.key_line(root, "issues_dir", None), None, Refers::Dir(d.into())),
        None => add("issues_dir".into(), None, None, Refers::Dir("issues".into())),
    }
    if let Some(t) = root.get("store").and_then(Item::as_table_like)
        && let Some(u) = t.get("url").and_then(Item::as_str)
    {
        add("store.url".into(), v.key_line(t, "url", None), None, Refers::Store(u.into()));
    }
    if let Some(t) = root.get("http").and_then(Item::as_table_like) {
        if let Some(s) = t.get("token").and_then(Item::as_str).and_then(|s| Secret::parse(s).ok())
            && let Secret::Env(n) = s
        {
            add("http.token".into(), v.key_line(t, "token", None), None, Refers::Env(n));
        }
        if let Some(f) = t.get("token_file").and_then(Item::as_str) {
            add("http.token_file".into(), v.key_line(t, "token_file", None), None, Refers::SecretFile(f.into()));
        }
    }
    let Some(channels) = root.get("channels").and_then(Item::as_table_like) else { return out };
    for (name, item) in channels.iter() {
        let Some(t) = item.as_table_like() else { continue };
        let Some((own, post)) = t.get("type").and_then(Item::as_str).and_then(type_keys) else { continue };
        let enabled = t.get("enabled").and_then(Item::as_bool).unwrap_or(true);
        let ch = Some((name.to_string(), enabled));
        let specs = COMMON.iter().chain(if post { POST } else { &[] }).chain(own.iter());
        for spec in specs {
            let Some(item) = t.get(spec.name) else { continue };
            let key = format!("channels.{name}.{}", spec.name);
            let line = v.key_line(t, spec.name, None);
            if let (Kind::StrMap, Some(h)) = (spec.kind, item.as_table_like()) {
                // Header values that come from a secret (`Authorization = "${HOOK_TOKEN}"`).
                for (k, val) in h.iter() {
                    let Some((_, _, s)) = val.as_str().and_then(|v| Secret::header_reference(k, v)) else { continue };
                    let what = match s {
                        Secret::Env(n) => Refers::Env(n),
                        Secret::File(p) => Refers::SecretFile(p),
                    };
                    add(format!("{key}.{k}"), v.key_line(h, k, line), ch.clone(), what);
                }
                continue;
            }
            let what = match (spec.kind, item.as_str()) {
                (Kind::Secret | Kind::SmtpUrl, Some(s)) => match Secret::parse(s) {
                    Ok(Secret::Env(n)) => Refers::Env(n),
                    _ => continue,
                },
                (Kind::Path, Some(p)) if spec.name == "template" => Refers::Dir(p.into()),
                (Kind::Path, Some(p)) => Refers::SecretFile(p.into()),
                (Kind::Command, _) => match item.as_array().and_then(|a| a.get(0)).and_then(Value::as_str) {
                    Some(p) => Refers::Program(p.to_string()),
                    None => continue,
                },
                _ => continue,
            };
            add(key, line, ch.clone(), what);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(text: &str) -> Vec<ConfigError> {
        validate(Path::new("t.toml"), text).err().map(|e| e.0).unwrap_or_default()
    }

    /// Issue 17: `[bounces]` values are bounded, the mailbox needs its login, and plain IMAP
    /// is refused beyond loopback.
    #[test]
    fn bounces_section_is_checked() {
        assert!(errs("[bounces]\nsoft_bounce_limit = 3\nsoft_bounce_days = 30\nwebhook_password = \"${PM_HOOK}\"\n").is_empty());
        assert!(errs("[bounces]\nimap_url = \"imap://127.0.0.1:1143\"\nimap_user = \"b\"\nimap_password = \"${IMAP_PW}\"\n").is_empty());
        let e = errs("[bounces]\nsoft_bounce_limit = 0\nsoft_bounce_days = 9999\n");
        assert!(e.iter().any(|e| e.key == "bounces.soft_bounce_limit" && e.line == Some(2)), "{e:?}");
        assert!(e.iter().any(|e| e.key == "bounces.soft_bounce_days" && e.line == Some(3)), "{e:?}");
        let e = errs("[bounces]\nimap_url = \"imap://mail.example.com\"\nimap_password = \"hunter2\"\n");
        assert!(e.iter().any(|e| e.key == "bounces.imap_url" && e.message.contains("clear")), "{e:?}");
        assert!(e.iter().any(|e| e.key == "bounces.imap_user"), "{e:?}");
        assert!(e.iter().any(|e| e.key == "bounces.imap_password"), "a secret written inline is refused: {e:?}");
        assert!(e.iter().all(|e| !e.message.contains("hunter2")), "{e:?}");
        // `imap_ca_file` is a path, and means nothing without TLS.
        assert!(errs("[bounces]\nimap_url = \"imaps://mail.example.com\"\nimap_user = \"b\"\nimap_password = \"${IMAP_PW}\"\nimap_ca_file = \"ca.pem\"\n").is_empty());
        let e = errs("[bounces]\nimap_url = \"imap://127.0.0.1\"\nimap_user = \"b\"\nimap_password = \"${IMAP_PW}\"\nimap_ca_file = \"ca.pem\"\n");
        assert!(e.iter().any(|e| e.key == "bounces.imap_ca_file" && e.line == Some(5)), "{e:?}");
        assert!(errs("[bounces]\nimap_url = \"imaps://mail.example.com\"\nimap_user = \"b\"\nimap_password = \"${IMAP_PW}\"\nimap_ca_file = \"\"\n").iter().any(|e| e.key == "bounces.imap_ca_file"));
        let e = errs("[bounces]\nwebhook_password = \"${A}\"\nwebhook_password_file = \"p\"\n");
        assert!(e.iter().any(|e| e.key == "bounces.webhook_password_file"), "{e:?}");
        assert!(!errs("[bounces]\nsoft_bounce_limt = 3\n").is_empty());
    }

    #[test]
    fn near_misses_are_suggested() {
        assert_eq!(suggest("api_bse", &["api_base", "access_token"]), Some("api_base"));
        assert_eq!(suggest("acces_token", &["api_base", "access_token"]), Some("access_token"));
        assert_eq!(suggest("zzz", &["api_base"]), None);
        assert_eq!(levenshtein("ab", "ba"), 1);
    }

    #[test]
    fn empty_file_is_the_defaults() {
        let c = validate(Path::new("t.toml"), "").unwrap();
        assert_eq!(c.store.url, "sqlite://herald.db");
        assert!(c.channels.is_empty());
    }

    #[test]
    fn ledger_flush_is_bounded() {
        let c = validate(Path::new("t.toml"), "").unwrap();
        assert_eq!(c.store.ledger_flush_ms, 10, "the default");
        assert_eq!(validate(Path::new("t.toml"), "[store]\nledger_flush_ms = 0\n").unwrap().store.ledger_flush_ms, 0);
        let e = errs("[store]\nurl = \"sqlite://x.db\"\nledger_flush_ms = 5000\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].line, e[0].key.as_str()), (Some(3), "store.ledger_flush_ms"));
        assert!(e[0].message.contains("from 0 to 1000, found 5000"), "{}", e[0].message);
    }

    #[test]
    fn lines_and_keys_are_reported() {
        let e = errs("[store]\nurl = \"sqlite://x.db\"\n\n[channels.m]\ntype = \"mastodon\"\napi_bse = \"https://m.example\"\naccess_token = \"${T}\"\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].line, Some(6));
        assert_eq!(e[0].key, "channels.m.api_bse");
        assert_eq!(e[0].hint.as_deref(), Some("did you mean `api_base`?"));
    }

    #[test]
    fn inline_secret_is_never_echoed() {
        let e = errs("[channels.m]\ntype = \"mastodon\"\naccess_token = \"sekrit-value-123\"\n");
        assert_eq!(e.len(), 1, "{e:?}");
        let shown = e[0].to_string();
        assert!(shown.contains("inline secret"), "{shown}");
        assert!(!shown.contains("sekrit"), "{shown}");
        assert!(shown.contains("${M_ACCESS_TOKEN}") || shown.contains("${M_ACCESS_TOKEN}"), "{shown}");
    }

    #[test]
    fn a_channel_named_after_its_type_gets_the_type_suggested() {
        let e = errs("[channels.mastodon]\naccess_token = \"${T}\"\n[channels.twitter]\n");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].hint.as_deref().unwrap().starts_with("add `type = \"mastodon\"`"), "{}", e[0]);
        assert!(e[1].hint.as_deref().unwrap().starts_with("add `type = \"x\"`"), "{}", e[1]);
    }

    #[test]
    fn url_values_are_not_echoed() {
        let e = errs("[channels.h]\ntype = \"webhook\"\nurl = \"hooks.example/T0/B0/tok-SECRET\"\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(!e[0].to_string().contains("tok-SECRET"), "{}", e[0]);
    }

    #[test]
    fn credential_headers_are_refused() {
        let e = errs("[channels.h]\ntype = \"webhook\"\nurl = \"https://h.example\"\nheaders = { Authorization = \"Bearer abc-SECRET\", X-Source = \"herald\" }\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].key, "channels.h.headers.Authorization");
        assert!(!e[0].to_string().contains("abc-SECRET"));
    }

    #[test]
    fn postmark_reconcile_settle_secs_is_bounded() {
        let base = "[channels.p]\ntype = \"email_api\"\nserver_token = \"${T}\"\nfrom = \"a@example.com\"\nunsubscribe_base_url = \"https://e.example/u\"\n";
        let e = errs(&format!("{base}reconcile_settle_secs = 601\n"));
        assert_eq!(e.iter().map(|e| (e.key.as_str(), e.line)).collect::<Vec<_>>(), vec![("channels.p.reconcile_settle_secs", Some(6))], "{e:#?}");
        assert!(e[0].message.contains("from 0 to 600, found 601"), "{}", e[0]);
        validate(Path::new("t.toml"), &format!("{base}reconcile_settle_secs = 600\n")).unwrap();
        validate(Path::new("t.toml"), &format!("{base}reconcile_settle_secs = 0\n")).unwrap();
    }

    #[test]
    fn durations_and_counts_are_bounded() {
        // Each of these panicked, wrapped or aborted at run time (issue 15 §3).
        let e = errs(&format!(
            "[retry]\nrate_limit_floor_secs = {max}\n\n[[schedule]]\nname = \"w\"\ncron = \"0 0 9 * * Mon\"\ncatch_up_secs = 100000000000000000\n\n\
             [channels.h]\ntype = \"webhook\"\nurl = \"https://h.example\"\ntimeout_secs = {max}\nretry_schedule_secs = [{max}]\n\n\
             [channels.m]\ntype = \"email\"\nsmtp_url = \"smtp://127.0.0.1:2525\"\nfrom = \"a@example.com\"\nunsubscribe_base_url = \"https://e.example/u\"\nconcurrency = 1000000000000\n",
            max = i64::MAX
        ));
        let keys: Vec<(&str, Option<usize>)> = e.iter().map(|e| (e.key.as_str(), e.line)).collect();
        assert_eq!(
            keys,
            vec![
                ("retry.rate_limit_floor_secs", Some(2)),
                ("schedule[0].catch_up_secs", Some(7)),
                ("channels.h.timeout_secs", Some(12)),
                ("channels.h.retry_schedule_secs", Some(13)),
                ("channels.m.concurrency", Some(20)),
            ],
            "{e:#?}"
        );
        assert!(e[1].message.contains("from 0 to 31622400, found 100000000000000000"), "{}", e[1]);
        assert!(e[2].message.contains("from 1 to 3600"), "{}", e[2]);
        assert!(e[3].message.contains("longer than the most Herald waits"), "{}", e[3]);
        assert!(e[4].message.contains("from 1 to 1000, found 1000000000000"), "{}", e[4]);
        // A float is not a count.
        let e = errs("[[schedule]]\nname = \"w\"\ncron = \"0 0 9 * * Mon\"\ncatch_up_secs = 1e17\n");
        assert!(e.len() == 1 && e[0].message.contains("whole number"), "{e:?}");
        // The bounds themselves are accepted.
        validate(Path::new("t.toml"), &format!("[channels.h]\ntype = \"webhook\"\nurl = \"https://h.example\"\ntimeout_secs = {MAX_TIMEOUT_SECS}\nretry_schedule_secs = [{MAX_DELAY_SECS}]\n")).unwrap();
    }

    #[test]
    fn a_huge_unknown_key_is_cut_and_compared_quickly() {
        let key = "ab ".repeat(2_000_000);
        let start = std::time::Instant::now();
        let e = errs(&format!("\"{key}\" = 1\n\"\\u001b[31m\" = 2\n"));
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "{:?}", start.elapsed());
        assert_eq!(e.len(), 2, "{e:?}");
        let shown = e[0].to_string();
        assert!(shown.len() < 1_000 && shown.contains("(6000000 characters)"), "{}", &shown[..shown.len().min(300)]);
        assert!(e[1].to_string().contains("\\u{1b}[31m") && !e[1].to_string().contains('\u{1b}'), "{}", e[1]);
        assert_eq!(suggest(&"x".repeat(100), &["x"]), None);
    }

    #[test]
    fn credential_headers_may_come_from_secrets() {
        let base = "[channels.h]\ntype = \"webhook\"\nurl = \"https://h.example\"\n";
        for ok in [
            "headers = { Authorization = \"${HOOK_TOKEN}\" }",
            "headers = { Authorization = \"Bearer ${HOOK_TOKEN}\" }",
            "headers = { Authorization_file = \"/run/secrets/hook\", X-Api-Key = \"${K}\" }",
        ] {
            validate(Path::new("t.toml"), &format!("{base}{ok}\n")).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["headers = { Authorization = \"Bearer abc\" }", "headers = { Authorization = \"${A} ${B}\" }", "headers = { X-Token_file = \"\" }"] {
            let e = errs(&format!("{base}{bad}\n"));
            assert!(e.len() == 1 && e[0].message.contains("inline secret refused"), "{bad}: {e:?}");
        }
        let refs = references(&format!("{base}headers = {{ Authorization = \"Bearer ${{HOOK_TOKEN}}\", Cookie_file = \"c.txt\" }}\n"));
        let what: Vec<&Refers> = refs.iter().filter(|r| r.key.contains("headers")).map(|r| &r.what).collect();
        assert_eq!(what, vec![&Refers::Env("HOOK_TOKEN".into()), &Refers::SecretFile("c.txt".into())]);
    }

    #[test]
    fn integer_jitter_deserializes() {
        let c = validate(Path::new("t.toml"), "[retry]\njitter = 0\n").unwrap();
        assert_eq!(c.retry.jitter, 0.0);
    }
}
