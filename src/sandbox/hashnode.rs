//! The Hashnode fake: one GraphQL endpoint, built from Hashnode's own API documentation (its
//! agent skill `Hashnode/gql-skill`: `schema.graphql`, `mutations.md`, `queries.md`,
//! `auth-and-roles.md`, `errors-and-limits.md`; docs.hashnode.com "Status and error codes") and
//! the schema its `Hashnode/starter-kit` client is generated from. Apollo Server behaviour (the
//! skill: "A GraphQL API (Apollo Server)") fills in the transport answers.
//!
//! - Only `POST /` with `Content-Type: application/json` (Apollo's CSRF guard refuses others
//!   with 400) and a body of at most 100 KB ("Request body size: 100 KB" → 413 here; the status
//!   is Express's, unverified). The body is `{"query", "variables"?, "operationName"?}`: no
//!   `query` → 400 `BAD_REQUEST`; `variables` not an object → 400.
//! - The query text is parsed (operations, variables, fields, aliases, arguments; no fragments or
//!   directives, refused with a note) and checked against the schema's types, as Apollo does
//!   before it runs anything: an unknown field, a missing argument, or a variable declared with
//!   the wrong type → 400 `GRAPHQL_VALIDATION_FAILED`; a variable value that does not coerce
//!   (`PublishPostInput`: `publicationId: ObjectId!`, `title: String!`, `contentMarkdown:
//!   String!`, `tags: [{slug: String!, name}]`, no unknown field) → 400 `BAD_USER_INPUT`.
//!   Served: `mutation { publishPost(input) { post { … } } }`, `query { publication(id) { id
//!   title url post(slug) { … } } }` and `query { me { id username name } }`.
//! - Auth: every mutation and `me` need `Authorization: <PAT>` (a `Bearer ` prefix is optional
//!   and case-insensitive) → else `UNAUTHENTICATED` "You must be authenticated."; `publication`
//!   is a public read. Every mutation and `publication` need the publication on the Pro plan →
//!   else `FORBIDDEN` "Publication does not have an active Pro plan. …" ([`HashnodeFake::set_pro`]).
//!   Resolver errors come with HTTP 200, `{"errors": [{message, path, extensions: {code}}],
//!   "data": null}`; an unknown publication id → `NOT_FOUND`; more than 15 tags or 4 co-authors
//!   → `BAD_USER_INPUT`.
//! - Slugs: "Slug auto-generated from title if omitted". What Hashnode does with a slug the
//!   publication already has is not documented: [`SlugTaken::Suffix`] (the default) gives the
//!   new post `<slug>-1`, `-2`…; [`SlugTaken::Refuse`] answers `BAD_USER_INPUT`.
//! - Rate limit: 500 mutations a minute is Hashnode's published target ("not currently
//!   enforced"); the fake enforces it ([`HashnodeFake::set_mutation_limit`]) with `429`, a
//!   `Retry-After` and a GraphQL error body, so the throttled path is exercised (shape
//!   unverified).
//! - Reads "may be cached for up to ~25 seconds … a read issued immediately after a write may
//!   briefly return stale data": a query answered within [`READ_CACHE`] of the same query (same
//!   credential, text and variables) gets the same answer, even after a publish
//!   ([`HashnodeFake::set_read_cache`]).
//! - A [`FaultPlan`] in front of everything, matched against `"POST / <root field>"` (e.g.
//!   `"publishPost"` faults only the mutation), and its journal when `sandbox serve` keeps one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::fault::{FaultPlan, Served, apply, serve};

/// The Personal Access Token the fake's user has.
pub const TOKEN: &str = "sandbox-hashnode-pat";
/// The fake publication's id.
pub const PUBLICATION_ID: &str = "65a1b2c3d4e5f60718293a4b";
/// The fake user's id.
pub const USER_ID: &str = "65a1b2c3d4e5f60718290001";
/// The publication's host (post URLs are `https://<host>/<slug>`).
pub const HOST: &str = "herald-sandbox.hashnode.dev";
/// "Request body size: 100 KB".
pub const MAX_BODY: usize = 100 * 1024;
/// "Tags per post/draft: 15 max".
pub const MAX_TAGS: usize = 15;
/// "coAuthors: max 4".
pub const MAX_CO_AUTHORS: usize = 4;
/// The published mutation target, per minute.
pub const MUTATIONS_PER_MINUTE: usize = 500;
/// How long a read may be answered from the cache.
pub const READ_CACHE: Duration = Duration::from_secs(25);
/// The Pro-plan refusal, word for word.
pub const PRO_MESSAGE: &str = "Publication does not have an active Pro plan. Upgrade in your dashboard to access this via the API.";

/// What `publishPost` does with a slug the publication already has (undocumented).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlugTaken {
    /// The new post gets `<slug>-1` (then `-2`, …).
    Suffix,
    /// `BAD_USER_INPUT`.
    Refuse,
}

/// A tag as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HashnodeTag {
    /// Slug.
    pub slug: String,
    /// Name (the slug when none was given).
    pub name: String,
}

/// A post the fake keeps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HashnodePost {
    /// Hashnode's id (an ObjectId).
    pub id: String,
    /// Title.
    pub title: String,
    /// Subtitle.
    pub subtitle: Option<String>,
    /// The Markdown.
    pub content_markdown: String,
    /// The slug it got.
    pub slug: String,
    /// `https://<host>/<slug>`.
    pub url: String,
    /// `originalArticleURL`.
    pub canonical_url: Option<String>,
    /// Tags.
    pub tags: Vec<HashnodeTag>,
    /// Series.
    pub series_id: Option<String>,
    /// When.
    pub published_at: DateTime<Utc>,
    /// The whole `PublishPostInput` as received (null for a seeded post).
    pub input: Value,
}

impl HashnodePost {
    /// The `Post` type's fields the fake serves.
    fn json(&self) -> Value {
        json!({
            "__typename": "Post",
            "id": self.id,
            "cuid": format!("cl{}", &self.id[12..]),
            "title": self.title,
            "subtitle": self.subtitle,
            "slug": self.slug,
            "url": self.url,
            "brief": self.content_markdown.chars().take(150).collect::<String>(),
            "canonicalUrl": self.canonical_url,
            "publishedAt": self.published_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "updatedAt": Value::Null,
            "readTimeInMinutes": (self.content_markdown.split_whitespace().count() / 200).max(1),
            "tags": self.tags.iter().map(|t| json!({"__typename": "Tag", "id": format!("{:0>24}", hex::encode(t.slug.as_bytes()).chars().take(24).collect::<String>()), "name": t.name, "slug": t.slug})).collect::<Vec<_>>(),
        })
    }
}

struct Inner {
    posts: Vec<HashnodePost>,
    next: u64,
    /// When each accepted mutation arrived, for the rate limit.
    mutations: Vec<Instant>,
    /// (credential, query text, variables) → (answer, when).
    cache: HashMap<(String, String, String), (Value, Instant)>,
    read_cache: Duration,
    mutation_limit: usize,
    slug_taken: SlugTaken,
    pro: bool,
    requests: Vec<String>,
}

/// A running Hashnode fake. Dropping it stops the server.
pub struct HashnodeFake {
    /// `http://127.0.0.1:<port>`: the adapter's `api_url` (the endpoint is its `/`).
    pub base_url: String,
    /// Faults to inject (route e.g. `"POST / publishPost"`, or just `"publishPost"`).
    pub faults: Arc<FaultPlan>,
    inner: Arc<Mutex<Inner>>,
    /// Held for its `Drop`: stops the server.
    _served: Served,
}

impl HashnodeFake {
    /// Start on `127.0.0.1:0` (or where [`super::fault::bind_in`] says).
    pub async fn start() -> std::io::Result<Self> {
        let inner = Arc::new(Mutex::new(Inner {
            posts: Vec::new(),
            next: 0x1000,
            mutations: Vec::new(),
            cache: HashMap::new(),
            read_cache: READ_CACHE,
            mutation_limit: MUTATIONS_PER_MINUTE,
            slug_taken: SlugTaken::Suffix,
            pro: true,
            requests: Vec::new(),
        }));
        let faults = Arc::new(FaultPlan::default());
        let app = Router::new()
            .route("/", post(graphql))
            .with_state(inner.clone())
            .layer(axum::middleware::from_fn_with_state(faults.clone(), operation_faults));
        let served = serve(app).await?;
        Ok(Self { base_url: served.base_url.clone(), faults, inner, _served: served })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("fake lock")
    }
    /// The publication's posts, in creation order.
    pub fn posts(&self) -> Vec<HashnodePost> {
        self.lock().posts.clone()
    }
    /// Every request as `"POST / <root field>"`, in order (faulted ones only when they reached
    /// the handler).
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }
    /// What a taken slug does.
    pub fn set_slug_taken(&self, s: SlugTaken) {
        self.lock().slug_taken = s;
    }
    /// How long reads are cached (0: never).
    pub fn set_read_cache(&self, d: Duration) {
        self.lock().read_cache = d;
    }
    /// Mutations allowed per minute.
    pub fn set_mutation_limit(&self, n: usize) {
        self.lock().mutation_limit = n;
    }
    /// Whether the publication is on the Pro plan (every mutation needs it).
    pub fn set_pro(&self, pro: bool) {
        self.lock().pro = pro;
    }
    /// Another post of the publication holds `slug` (with this canonical URL, if any).
    pub fn seed_post(&self, slug: &str, canonical_url: Option<&str>) {
        let mut g = self.lock();
        let id = next_id(&mut g);
        g.posts.push(HashnodePost {
            id,
            title: format!("An older post at {slug}"),
            subtitle: None,
            content_markdown: "Older.".into(),
            slug: slug.into(),
            url: format!("https://{HOST}/{slug}"),
            canonical_url: canonical_url.map(str::to_string),
            tags: vec![],
            series_id: None,
            published_at: Utc::now() - chrono::Duration::days(30),
            input: Value::Null,
        });
    }
}

fn next_id(g: &mut Inner) -> String {
    g.next += 1;
    format!("65b0c0d0e0f0{:012x}", g.next)
}

/// The fault plan, matched against `"POST / <root field>"`: the body is read first to find
/// the operation's root field.
async fn operation_faults(State(plan): State<Arc<FaultPlan>>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 4 * MAX_BODY).await.unwrap_or_default();
    let field = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["query"].as_str().and_then(|q| parse(q).ok()))
        .and_then(|op| op.selection.first().map(|f| f.name.clone()))
        .unwrap_or_default();
    let fault = plan.take(parts.method.as_str(), &format!("{} {field}", parts.uri.path()));
    let req = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
    apply(&plan, fault, req, next, || ()).await
}

// ---- answers ----------------------------------------------------------------------------

fn gql_error(status: StatusCode, message: &str, code: &str, path: Option<&str>) -> Response {
    let mut e = json!({"message": message, "extensions": {"code": code}});
    if let Some(p) = path {
        e["path"] = json!([p]);
    }
    let mut body = json!({"errors": [e]});
    if status == StatusCode::OK {
        body["data"] = Value::Null;
    }
    (status, axum::Json(body)).into_response()
}

fn validation(message: impl AsRef<str>) -> Response {
    gql_error(StatusCode::BAD_REQUEST, message.as_ref(), "GRAPHQL_VALIDATION_FAILED", None)
}

fn bad_input(message: impl AsRef<str>) -> Response {
    gql_error(StatusCode::BAD_REQUEST, message.as_ref(), "BAD_USER_INPUT", None)
}

// ---- a small GraphQL parser (operations, fields, aliases, arguments, variables) ------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    P(char),
    Name(String),
    Str(String),
    Num(String),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    while let Some(&c) = it.peek() {
        match c {
            c if c.is_whitespace() || c == ',' || c == '\u{feff}' => {
                it.next();
            }
            '#' => {
                while it.next().is_some_and(|c| c != '\n') {}
            }
            '{' | '}' | '(' | ')' | ':' | '$' | '!' | '[' | ']' | '=' | '@' => {
                out.push(Tok::P(c));
                it.next();
            }
            '.' => return Err("fragments (`...`) are not served by this sandbox".into()),
            '"' => {
                it.next();
                let mut v = String::new();
                loop {
                    match it.next() {
                        None | Some('\n') => return Err("unterminated string".into()),
                        Some('"') => break,
                        Some('\\') => match it.next() {
                            Some('n') => v.push('\n'),
                            Some('t') => v.push('\t'),
                            Some(c) => v.push(c),
                            None => return Err("unterminated string".into()),
                        },
                        Some(c) => v.push(c),
                    }
                }
                out.push(Tok::Str(v));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut v = String::new();
                while let Some(&c) = it.peek().filter(|c| c.is_ascii_alphanumeric() || **c == '_') {
                    v.push(c);
                    it.next();
                }
                out.push(Tok::Name(v));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let mut v = String::new();
                while let Some(&c) = it.peek().filter(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | 'e' | 'E')) {
                    v.push(c);
                    it.next();
                }
                out.push(Tok::Num(v));
            }
            c => return Err(format!("Syntax Error: Unexpected character: \"{c}\".")),
        }
    }
    Ok(out)
}

/// An argument's value as written.
#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Var(String),
    Str(String),
    Other,
}

#[derive(Debug, Clone)]
struct Field {
    alias: Option<String>,
    name: String,
    args: Vec<(String, Arg)>,
    selection: Vec<Field>,
}

impl Field {
    fn key(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
    fn arg(&self, name: &str) -> Option<&Arg> {
        self.args.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }
}

#[derive(Debug, Clone)]
struct Operation {
    mutation: bool,
    /// `$name` → its declared type, e.g. `PublishPostInput!`.
    vars: Vec<(String, String)>,
    selection: Vec<Field>,
}

struct Parser {
    t: Vec<Tok>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.t.get(self.i).cloned();
        self.i += 1;
        t
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::P(c)) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) { Ok(()) } else { Err(format!("Syntax Error: Expected \"{c}\", found {:?}.", self.peek())) }
    }
    fn name(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Name(n)) => Ok(n),
            t => Err(format!("Syntax Error: Expected Name, found {t:?}.")),
        }
    }
    fn ty(&mut self) -> Result<String, String> {
        let mut s = if self.eat('[') {
            let inner = self.ty()?;
            self.expect(']')?;
            format!("[{inner}]")
        } else {
            self.name()?
        };
        if self.eat('!') {
            s.push('!');
        }
        Ok(s)
    }
    fn value(&mut self) -> Result<Arg, String> {
        match self.next() {
            Some(Tok::P('$')) => Ok(Arg::Var(self.name()?)),
            Some(Tok::Str(s)) => Ok(Arg::Str(s)),
            Some(Tok::Num(_) | Tok::Name(_)) => Ok(Arg::Other),
            Some(Tok::P('[')) => {
                while !self.eat(']') {
                    self.value()?;
                }
                Ok(Arg::Other)
            }
            Some(Tok::P('{')) => {
                while !self.eat('}') {
                    self.name()?;
                    self.expect(':')?;
                    self.value()?;
                }
                Ok(Arg::Other)
            }
            t => Err(format!("Syntax Error: Unexpected {t:?}.")),
        }
    }
    fn selection(&mut self) -> Result<Vec<Field>, String> {
        self.expect('{')?;
        let mut out = Vec::new();
        while !self.eat('}') {
            if self.peek() == Some(&Tok::P('@')) {
                return Err("directives are not served by this sandbox".into());
            }
            let first = self.name()?;
            let (alias, name) = if self.eat(':') { (Some(first), self.name()?) } else { (None, first) };
            let mut args = Vec::new();
            if self.eat('(') {
                while !self.eat(')') {
                    let n = self.name()?;
                    self.expect(':')?;
                    args.push((n, self.value()?));
                }
            }
            let selection = if self.peek() == Some(&Tok::P('{')) { self.selection()? } else { Vec::new() };
            out.push(Field { alias, name, args, selection });
        }
        if out.is_empty() {
            return Err("Syntax Error: Expected Name, found \"}\".".into());
        }
        Ok(out)
    }
}

/// Parse a document of exactly one operation.
fn parse(query: &str) -> Result<Operation, String> {
    let mut p = Parser { t: lex(query)?, i: 0 };
    let mutation = match p.peek() {
        Some(Tok::P('{')) => false,
        Some(Tok::Name(n)) if n == "query" => {
            p.i += 1;
            false
        }
        Some(Tok::Name(n)) if n == "mutation" => {
            p.i += 1;
            true
        }
        Some(Tok::Name(n)) if n == "subscription" || n == "fragment" => return Err(format!("{n}s are not served by this sandbox")),
        t => return Err(format!("Syntax Error: Unexpected {t:?}.")),
    };
    if matches!(p.peek(), Some(Tok::Name(_))) {
        p.next();
    }
    let mut vars = Vec::new();
    if p.eat('(') {
        while !p.eat(')') {
            p.expect('$')?;
            let n = p.name()?;
            p.expect(':')?;
            let t = p.ty()?;
            if p.eat('=') {
                p.value()?;
            }
            vars.push((n, t));
        }
    }
    let selection = p.selection()?;
    if p.peek().is_some() {
        return Err("This sandbox takes one operation per document (no operationName selection).".into());
    }
    Ok(Operation { mutation, vars, selection })
}

// ---- the schema's fields the fake serves ---------------------------------------------------

/// `(type, field)` → the field's type, for object-valued fields; scalars are absent.
fn child_type(ty: &str, field: &str) -> Option<&'static str> {
    match (ty, field) {
        ("PublishPostPayload", "post") => Some("Post"),
        ("Post", "tags") => Some("Tag"),
        ("Publication", "post") => Some("Post"),
        _ => None,
    }
}

/// Select `sel` out of `v` (a JSON object of type `ty` holding every field the fake serves).
fn project(v: &Value, ty: &str, sel: &[Field]) -> Result<Value, String> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    if let Value::Array(items) = v {
        return items.iter().map(|i| project(i, ty, sel)).collect::<Result<Vec<_>, _>>().map(Value::Array);
    }
    let mut out = Map::new();
    for f in sel {
        let value = v.get(&f.name).ok_or_else(|| format!("Cannot query field \"{}\" on type \"{ty}\".", f.name))?;
        let value = match child_type(ty, &f.name) {
            Some(child) if f.selection.is_empty() => {
                return Err(format!("Field \"{}\" of type \"{child}\" must have a selection of subfields. Did you mean \"{} {{ ... }}\"?", f.name, f.name));
            }
            Some(child) => project(value, child, &f.selection)?,
            None if !f.selection.is_empty() => return Err(format!("Field \"{}\" must not have a selection since its type has no subfields.", f.name)),
            None => value.clone(),
        };
        out.insert(f.key().to_string(), value);
    }
    Ok(Value::Object(out))
}

// ---- the endpoint --------------------------------------------------------------------------

fn authenticated(h: &HeaderMap) -> bool {
    let v = h.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().trim();
    let token = if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") { v[7..].trim() } else { v };
    token == TOKEN
}

async fn graphql(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: Bytes) -> Response {
    let parsed_op = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["query"].as_str().and_then(|q| parse(q).ok()));
    let root = parsed_op.as_ref().and_then(|o| o.selection.first()).map(|f| f.name.clone()).unwrap_or_default();
    inner.lock().expect("fake lock").requests.push(format!("POST / {root}").trim_end().to_string());

    if body.len() > MAX_BODY {
        return gql_error(StatusCode::PAYLOAD_TOO_LARGE, "request entity too large", "BAD_REQUEST", None);
    }
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !ct.trim_start().to_ascii_lowercase().starts_with("application/json") {
        return gql_error(
            StatusCode::BAD_REQUEST,
            "This operation has been blocked as a potential Cross-Site Request Forgery (CSRF). Please either specify a 'content-type' header (with a type that is not one of application/x-www-form-urlencoded, multipart/form-data, text/plain) or provide a non-empty value for one of the following headers: x-apollo-operation-name, apollo-require-preflight",
            "BAD_REQUEST",
            None,
        );
    }
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(&body) else {
        return gql_error(StatusCode::BAD_REQUEST, "POST body must be a JSON object", "BAD_REQUEST", None);
    };
    let Some(query) = req.get("query").and_then(Value::as_str).filter(|q| !q.trim().is_empty()) else {
        return gql_error(StatusCode::BAD_REQUEST, "GraphQL operations must contain a non-empty `query` or a `persistedQuery` extension.", "BAD_REQUEST", None);
    };
    let variables = match req.get("variables") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return gql_error(StatusCode::BAD_REQUEST, "`variables` in a POST body must be an object if provided.", "BAD_REQUEST", None),
    };
    let op = match parse(query) {
        Ok(op) => op,
        Err(e) => return gql_error(StatusCode::BAD_REQUEST, &e, "GRAPHQL_PARSE_FAILED", None),
    };
    let root_type = if op.mutation { "Mutation" } else { "Query" };
    for f in &op.selection {
        let known = if op.mutation { matches!(f.name.as_str(), "publishPost") } else { matches!(f.name.as_str(), "publication" | "me") };
        if !known {
            return validation(format!("Cannot query field \"{}\" on type \"{root_type}\".", f.name));
        }
    }
    if op.mutation {
        if op.selection.len() != 1 {
            return validation("This sandbox runs one publishPost per request.");
        }
        publish(&inner, &headers, &op, &op.selection[0], &variables)
    } else {
        read(&inner, &headers, &op, query, &variables)
    }
}

/// The declared type of `$name`, or a validation error.
#[allow(clippy::result_large_err)]
fn var_of<'a>(op: &'a Operation, arg: Option<&'a Arg>, field: &str, arg_name: &str, expected: &[&str]) -> Result<Option<&'a str>, Response> {
    match arg {
        None => Ok(None),
        Some(Arg::Var(v)) => {
            let Some((_, ty)) = op.vars.iter().find(|(n, _)| n == v) else {
                return Err(validation(format!("Variable \"${v}\" is not defined.")));
            };
            if !expected.contains(&ty.as_str()) {
                return Err(validation(format!("Variable \"${v}\" of type \"{ty}\" used in position expecting type \"{}\".", expected[0])));
            }
            Ok(Some(v.as_str()))
        }
        Some(_) => Err(validation(format!("this sandbox takes `{field}`'s `{arg_name}` as a variable"))),
    }
}

fn publish(inner: &Arc<Mutex<Inner>>, headers: &HeaderMap, op: &Operation, f: &Field, vars: &Map<String, Value>) -> Response {
    // Validation and variable coercion come first, before any resolver (Apollo's order).
    for (a, _) in &f.args {
        if a != "input" {
            return validation(format!("Unknown argument \"{a}\" on field \"Mutation.publishPost\"."));
        }
    }
    let var = match var_of(op, f.arg("input"), "publishPost", "input", &["PublishPostInput!"]) {
        Ok(Some(v)) => v,
        Ok(None) => return validation("Field \"publishPost\" argument \"input\" of type \"PublishPostInput!\" is required, but it was not provided."),
        Err(r) => return r,
    };
    let payload = json!({"__typename": "PublishPostPayload", "post": Value::Null});
    if let Err(e) = project(&payload, "PublishPostPayload", &f.selection).and_then(|_| check_post_selection(&f.selection)) {
        return validation(e);
    }
    let input = match vars.get(var) {
        None | Some(Value::Null) => return bad_input(format!("Variable \"${var}\" of required type \"PublishPostInput!\" was not provided.")),
        Some(Value::Object(i)) => i.clone(),
        Some(v) => return bad_input(format!("Variable \"${var}\" got invalid value {v}; Expected type \"PublishPostInput\" to be an object.")),
    };
    if let Err(e) = coerce_input(&input) {
        return bad_input(format!("Variable \"${var}\" got invalid value {}; {e}", Value::Object(input.clone())));
    }
    // Resolver.
    let path = Some(f.key());
    if !authenticated(headers) {
        return gql_error(StatusCode::OK, "You must be authenticated.", "UNAUTHENTICATED", path);
    }
    let mut g = inner.lock().expect("fake lock");
    let now = Instant::now();
    g.mutations.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
    if g.mutations.len() >= g.mutation_limit {
        let oldest = g.mutations.first().copied().unwrap_or(now);
        let wait = Duration::from_secs(60).saturating_sub(now.duration_since(oldest)).as_secs().max(1);
        let mut r = gql_error(StatusCode::TOO_MANY_REQUESTS, "Too many requests, please try again later.", "TOO_MANY_REQUESTS", None);
        r.headers_mut().insert("retry-after", axum::http::HeaderValue::from(wait));
        return r;
    }
    g.mutations.push(now);
    let s = |k: &str| input.get(k).and_then(Value::as_str).map(str::to_string);
    if s("publicationId").as_deref() != Some(PUBLICATION_ID) {
        return gql_error(StatusCode::OK, "Publication not found", "NOT_FOUND", path);
    }
    if !g.pro {
        return gql_error(StatusCode::OK, PRO_MESSAGE, "FORBIDDEN", path);
    }
    let title = s("title").unwrap_or_default();
    if title.trim().is_empty() {
        return gql_error(StatusCode::OK, "Title is required", "BAD_USER_INPUT", path);
    }
    if s("contentMarkdown").unwrap_or_default().trim().is_empty() {
        return gql_error(StatusCode::OK, "Content is required", "BAD_USER_INPUT", path);
    }
    let tags: Vec<HashnodeTag> = input
        .get("tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|t| {
                    let slug = t["slug"].as_str().unwrap_or_default().to_string();
                    HashnodeTag { name: t["name"].as_str().unwrap_or(&slug).to_string(), slug }
                })
                .collect()
        })
        .unwrap_or_default();
    if tags.len() > MAX_TAGS {
        return gql_error(StatusCode::OK, &format!("A post can have at most {MAX_TAGS} tags"), "BAD_USER_INPUT", path);
    }
    if tags.iter().any(|t| t.slug.trim().is_empty()) {
        return gql_error(StatusCode::OK, "Tag slug cannot be empty", "BAD_USER_INPUT", path);
    }
    if input.get("coAuthors").and_then(Value::as_array).is_some_and(|a| a.len() > MAX_CO_AUTHORS) {
        return gql_error(StatusCode::OK, &format!("A post can have at most {MAX_CO_AUTHORS} co-authors"), "BAD_USER_INPUT", path);
    }
    if let Some(series) = s("seriesId") {
        return gql_error(StatusCode::OK, &format!("Series {series} not found"), "NOT_FOUND", path);
    }
    let wanted = s("slug").map(|x| slug_of(&x)).filter(|x| !x.is_empty()).unwrap_or_else(|| slug_of(&title));
    let mut slug = wanted.clone();
    if g.posts.iter().any(|p| p.slug == slug) {
        if g.slug_taken == SlugTaken::Refuse {
            return gql_error(StatusCode::OK, &format!("Slug \"{wanted}\" is already taken in this publication"), "BAD_USER_INPUT", path);
        }
        let mut n = 1;
        while g.posts.iter().any(|p| p.slug == format!("{wanted}-{n}")) {
            n += 1;
        }
        slug = format!("{wanted}-{n}");
    }
    let id = next_id(&mut g);
    let post = HashnodePost {
        id,
        title,
        subtitle: s("subtitle"),
        content_markdown: s("contentMarkdown").unwrap_or_default(),
        url: format!("https://{HOST}/{slug}"),
        slug,
        canonical_url: s("originalArticleURL").filter(|u| !u.trim().is_empty()),
        tags,
        series_id: None,
        published_at: Utc::now(),
        input: Value::Object(input),
    };
    let payload = json!({"__typename": "PublishPostPayload", "post": post.json()});
    g.posts.push(post);
    match project(&payload, "PublishPostPayload", &f.selection) {
        Ok(v) => axum::Json(json!({"data": {f.key(): v}})).into_response(),
        Err(e) => validation(e),
    }
}

/// The `post { … }` selection of a `PublishPostPayload`, checked against the fields a `Post`
/// has (validation runs before the post exists).
fn check_post_selection(sel: &[Field]) -> Result<(), String> {
    project(&json!({"__typename": "PublishPostPayload", "post": sample_post().json()}), "PublishPostPayload", sel).map(|_| ())
}

/// A post with every served field set, to validate a selection against before any post exists.
fn sample_post() -> HashnodePost {
    HashnodePost {
        id: "0".repeat(24),
        title: String::new(),
        subtitle: None,
        content_markdown: String::new(),
        slug: String::new(),
        url: String::new(),
        canonical_url: None,
        tags: vec![HashnodeTag { slug: "t".into(), name: "t".into() }],
        series_id: None,
        published_at: Utc::now(),
        input: Value::Null,
    }
}

/// Hashnode's slugs: lowercase letters and digits joined by `-`.
fn slug_of(s: &str) -> String {
    let l: String = s.to_lowercase().chars().map(|c| if c.is_alphanumeric() { c } else { '-' }).collect();
    l.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-")
}

/// `PublishPostInput`'s coercion rules (schema.graphql): required fields, scalar types, the
/// tag input's shape, no unknown field.
fn coerce_input(i: &Map<String, Value>) -> Result<(), String> {
    const STRINGS: &[&str] = &["subtitle", "coverImage", "slug", "originalArticleURL", "metaTitle", "metaDescription", "ogImage", "publishedAt"];
    const BOOLS: &[&str] = &["disableComments", "isDelisted", "enableToc"];
    const IDS: &[&str] = &["publishAs", "seriesId"];
    for (k, v) in i {
        let ok = match k.as_str() {
            "publicationId" => v.as_str().is_some_and(is_object_id),
            "title" | "contentMarkdown" => v.is_string(),
            k if STRINGS.contains(&k) => v.is_string() || v.is_null(),
            k if BOOLS.contains(&k) => v.is_boolean() || v.is_null(),
            k if IDS.contains(&k) => v.is_null() || v.as_str().is_some_and(is_object_id),
            "coAuthors" => v.is_null() || v.as_array().is_some_and(|a| a.iter().all(|x| x.as_str().is_some_and(is_object_id))),
            "tags" => {
                if let Some(a) = v.as_array() {
                    for t in a {
                        let Some(t) = t.as_object() else { return Err(format!("Expected type \"PublishPostTagInput\" to be an object at \"input.tags\"; got {t}.")) };
                        for tk in t.keys() {
                            if tk != "slug" && tk != "name" {
                                return Err(format!("Field \"{tk}\" is not defined by type \"PublishPostTagInput\"."));
                            }
                        }
                        if !t.get("slug").is_some_and(Value::is_string) {
                            return Err("Field \"slug\" of required type \"String!\" was not provided at \"input.tags\".".into());
                        }
                        if t.get("name").is_some_and(|n| !n.is_string() && !n.is_null()) {
                            return Err("String cannot represent a non string value at \"input.tags.name\".".into());
                        }
                    }
                    true
                } else {
                    v.is_null()
                }
            }
            other => return Err(format!("Field \"{other}\" is not defined by type \"PublishPostInput\".")),
        };
        if !ok {
            return Err(format!("Expected type of \"input.{k}\" not met by {v}."));
        }
    }
    for (k, ty) in [("publicationId", "ObjectId!"), ("title", "String!"), ("contentMarkdown", "String!")] {
        if i.get(k).is_none_or(Value::is_null) {
            return Err(format!("Field \"{k}\" of required type \"{ty}\" was not provided."));
        }
    }
    Ok(())
}

fn is_object_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `publication(id) { … post(slug) { … } }` and `me { … }`, answered from the read cache when
/// the same query came within its time.
fn read(inner: &Arc<Mutex<Inner>>, headers: &HeaderMap, op: &Operation, query: &str, vars: &Map<String, Value>) -> Response {
    // Per credential: a cache never hands one user's answer (`me`) to another.
    let auth = headers.get("authorization").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default();
    let key = (auth, query.to_string(), Value::Object(vars.clone()).to_string());
    let mut g = inner.lock().expect("fake lock");
    let ttl = g.read_cache;
    if let Some((answer, at)) = g.cache.get(&key)
        && at.elapsed() < ttl
    {
        return axum::Json(answer.clone()).into_response();
    }
    let mut data = Map::new();
    for f in &op.selection {
        let path = Some(f.key());
        let value = match f.name.as_str() {
            "me" => {
                if !authenticated(headers) {
                    return gql_error(StatusCode::OK, "You must be authenticated.", "UNAUTHENTICATED", path);
                }
                let me = json!({"__typename": "MyUser", "id": USER_ID, "username": "herald_sandbox", "name": "Herald Sandbox"});
                match project(&me, "MyUser", &f.selection) {
                    Ok(v) => v,
                    Err(e) => return validation(e),
                }
            }
            _ => {
                for (a, _) in &f.args {
                    if a != "id" && a != "host" {
                        return validation(format!("Unknown argument \"{a}\" on field \"Query.publication\"."));
                    }
                }
                let id = match var_of(op, f.arg("id"), "publication", "id", &["ObjectId", "ObjectId!"]) {
                    Ok(Some(v)) => vars.get(v).and_then(Value::as_str).map(str::to_string),
                    Ok(None) => None,
                    Err(r) => match f.arg("id") {
                        Some(Arg::Str(s)) => Some(s.clone()),
                        _ => return r,
                    },
                };
                if id.as_deref().is_some_and(|i| !is_object_id(i)) {
                    return bad_input(format!("Variable \"$id\" got invalid value {:?}; Expected type \"ObjectId\".", id.unwrap_or_default()));
                }
                match publication(&g, op, vars, f, id.as_deref()) {
                    Ok(Some(v)) => v,
                    Ok(None) => Value::Null,
                    Err(Ok(e)) => return validation(e),
                    Err(Err(r)) => return r,
                }
            }
        };
        data.insert(f.key().to_string(), value);
    }
    let answer = json!({"data": data});
    if !ttl.is_zero() {
        g.cache.insert(key, (answer.clone(), Instant::now()));
    }
    axum::Json(answer).into_response()
}

/// The publication with its `post(slug:)` resolved; `Err(Ok)` a validation message,
/// `Err(Err)` an answer to give as it is.
#[allow(clippy::result_large_err)]
fn publication(g: &Inner, op: &Operation, vars: &Map<String, Value>, f: &Field, id: Option<&str>) -> Result<Option<Value>, Result<String, Response>> {
    let path = Some(f.key());
    if f.selection.is_empty() {
        return Err(Ok("Field \"publication\" of type \"Publication\" must have a selection of subfields.".into()));
    }
    if id != Some(PUBLICATION_ID) {
        return Ok(None);
    }
    if !g.pro {
        return Err(Err(gql_error(StatusCode::OK, PRO_MESSAGE, "FORBIDDEN", path)));
    }
    let mut out = Map::new();
    for s in &f.selection {
        let v = match s.name.as_str() {
            "id" => json!(PUBLICATION_ID),
            "title" => json!("Herald Sandbox"),
            "url" => json!(format!("https://{HOST}")),
            "__typename" => json!("Publication"),
            "post" => {
                let slug = match s.arg("slug") {
                    Some(Arg::Str(x)) => x.clone(),
                    Some(Arg::Var(v)) => {
                        let Some((_, ty)) = op.vars.iter().find(|(n, _)| n == v) else {
                            return Err(Ok(format!("Variable \"${v}\" is not defined.")));
                        };
                        if ty != "String!" && ty != "String" {
                            return Err(Ok(format!("Variable \"${v}\" of type \"{ty}\" used in position expecting type \"String!\".")));
                        }
                        match vars.get(v) {
                            Some(Value::String(x)) => x.clone(),
                            None | Some(Value::Null) => return Err(Err(bad_input(format!("Variable \"${v}\" of required type \"String!\" was not provided.")))),
                            Some(other) => return Err(Err(bad_input(format!("Variable \"${v}\" got invalid value {other}; String cannot represent a non string value")))),
                        }
                    }
                    _ => return Err(Ok("Field \"post\" argument \"slug\" of type \"String!\" is required, but it was not provided.".into())),
                };
                if s.selection.is_empty() {
                    return Err(Ok("Field \"post\" of type \"Post\" must have a selection of subfields.".into()));
                }
                project(&sample_post().json(), "Post", &s.selection).map_err(Ok)?;
                let post = g.posts.iter().find(|p| p.slug == slug).map(HashnodePost::json).unwrap_or(Value::Null);
                project(&post, "Post", &s.selection).map_err(Ok)?
            }
            other => return Err(Ok(format!("Cannot query field \"{other}\" on type \"Publication\"."))),
        };
        out.insert(s.key().to_string(), v);
    }
    Ok(Some(Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_clients_send() {
        let op = parse(crate::channel::hashnode::PUBLISH_POST).unwrap();
        assert!(op.mutation);
        assert_eq!(op.vars, vec![("input".to_string(), "PublishPostInput!".to_string())]);
        assert_eq!(op.selection[0].name, "publishPost");
        assert_eq!(op.selection[0].selection[0].selection.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["id", "slug", "url", "canonicalUrl"]);
        let op = parse("# hi\n{ a: me { id } }").unwrap();
        assert_eq!(op.selection[0].key(), "a");
        assert!(parse("query { me { ...F } }").is_err());
        assert!(parse("query { me { id }").is_err());
        assert!(parse("query A { me { id } } query B { me { id } }").is_err());
        assert_eq!(slug_of("Week 48: Hello!"), "week-48-hello");
    }
}
