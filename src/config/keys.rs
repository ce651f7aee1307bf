//! What a config key's value must be, as the validator checks it. Sections and channel types
//! declare their keys as [`KeySpec`]s; `validate.rs` holds the checks, each channel type its
//! own table (`src/channel/<type>/kind.rs`).

/// What a key's value must be.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A non-blank string.
    NonEmptyStr,
    /// `true` or `false`.
    Bool,
    /// An integer ≥ 0.
    UInt,
    /// An integer from 0 to the bound.
    UIntUpTo(i64),
    /// An integer from the first bound to the second (a count or a duration Herald does
    /// arithmetic on: bounded so that no timer, date or allocation can overflow).
    Range(i64, i64),
    /// A number in `0..1`.
    Fraction,
    /// A non-empty list of integers ≥ 0 (a retry schedule, in seconds).
    Schedule,
    /// A list of strings.
    StrList,
    /// A list of ids on the service: integers ≥ 1 (WordPress category and tag ids).
    IdList,
    /// A non-empty list of non-blank strings (a command line).
    Command,
    /// A list of environment variable names (`[A-Za-z_][A-Za-z0-9_]*`).
    EnvNames,
    /// A file or folder path.
    Path,
    /// `"${ENV_VAR}"`.
    Secret,
    /// An absolute `http(s)` URL.
    HttpUrl,
    /// `smtp://` or `smtps://`, or a `${ENV}` secret holding one.
    SmtpUrl,
    /// A mailbox: `ana@example.com` or `Ana <ana@example.com>`.
    Mailbox,
    /// `mailto:` URL or a bare address.
    Mailto,
    /// One of a fixed set of words.
    Enum(&'static [&'static str]),
    /// A table of string values (HTTP headers).
    StrMap,
    /// An RFC 3339 time with an offset.
    Rfc3339,
    /// `host:port`.
    Listen,
    /// `sqlite://…` or `postgres://…`.
    StoreUrl,
    /// A cron expression with a seconds field.
    Cron,
    /// An IANA time zone.
    TimeZone,
    /// `urn:li:person:…` or `urn:li:organization:…`.
    LinkedinUrn,
    /// `YYYYMM`.
    YearMonth,
}

/// One key a section accepts.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// The key as written.
    pub name: &'static str,
    /// What its value must be.
    pub kind: Kind,
    /// Whether the table must have it.
    pub required: bool,
}

/// An optional key.
pub const fn opt(name: &'static str, kind: Kind) -> KeySpec {
    KeySpec { name, kind, required: false }
}
/// A required key.
pub const fn req(name: &'static str, kind: Kind) -> KeySpec {
    KeySpec { name, kind, required: true }
}

