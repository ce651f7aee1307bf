//! Subscriber CSV import: a header row with an `email` column, an optional `name` column, and any
//! other columns, which become `[[merge]]` variables (names normalised: `First Name` →
//! `first_name`). Invalid addresses are reported with their line numbers and skipped; an
//! address repeated in the file is merged (later non-empty values win). The file is read in
//! batches, so a large list never sits in memory at once.
//!
//! Control characters never get through: they are stripped from the name (which goes into the
//! `To:` header) and from every other column except line breaks and tabs inside a multi-line
//! cell, and every message escapes them, so a hostile file can't inject a header or drive the
//! terminal. A quote that is never closed is reported with the line it opened on.

use std::collections::BTreeMap;
use std::io::Read;

use super::merge::normalize_name;

/// One subscriber read from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// The address, lowercase.
    pub email: String,
    /// The name (may be empty).
    pub name: String,
    /// Other non-empty columns, names normalised.
    pub vars: BTreeMap<String, String>,
    /// The line the record starts on (the header is line 1).
    pub line: u64,
}

/// A record that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    /// The line the record starts on.
    pub line: u64,
    /// Why.
    pub message: String,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// `s` with every control character escaped (`\r`, `\n`, `\u{1b}`), fit for a message.
pub fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// A name fit for a `To:` header: control characters (line breaks included) become spaces,
/// runs of spaces one.
pub fn header_safe(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.split(|c: char| c.is_control()).map(str::trim).filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" ")
}

/// A merge variable's value: control characters dropped, except line breaks and tabs, which a
/// multi-line cell may hold (a variable filled into the subject has them replaced there).
fn cell_safe(s: &str) -> String {
    if !s.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return s.to_string();
    }
    s.chars().filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t')).collect()
}

/// Watches the bytes the CSV parser reads for a quoted field that never ends (the parser
/// itself reads such a field to the end of the file and says nothing).
struct QuoteWatch<R> {
    inner: R,
    state: Quote,
    line: u64,
    /// The line of the opening quote of the field still open.
    opened: u64,
    bytes: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    FieldStart,
    Unquoted,
    Quoted,
    /// A `"` inside a quoted field: the end of it, or the first half of `""`.
    QuoteInQuoted,
}

impl<R: Read> Read for QuoteWatch<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if b == b'\n' {
                self.line += 1;
            }
            self.state = match (self.state, b) {
                (Quote::Quoted, b'"') => Quote::QuoteInQuoted,
                (Quote::Quoted, _) => Quote::Quoted,
                (Quote::QuoteInQuoted, b'"') => Quote::Quoted,
                (Quote::FieldStart, b'"') => {
                    self.opened = self.line;
                    Quote::Quoted
                }
                (_, b',' | b'\n' | b'\r') => Quote::FieldStart,
                _ => Quote::Unquoted,
            };
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<R> QuoteWatch<R> {
    /// At the end of the input: the line of a quote never closed.
    fn unterminated(&self) -> Option<u64> {
        (self.state == Quote::Quoted).then_some(self.opened)
    }
}

/// Header names accepted for the address column.
const EMAIL_HEADERS: &[&str] = &["email", "e-mail", "email_address", "e-mail_address", "mail"];

/// Reads a subscriber CSV in batches.
pub struct CsvImport<R: Read> {
    reader: csv::Reader<QuoteWatch<R>>,
    email_col: usize,
    name_col: Option<usize>,
    /// (column index, normalised name) of the other columns.
    extra: Vec<(usize, String)>,
    record: csv::StringRecord,
    done: bool,
    /// Records merged into an earlier one of the same batch.
    pub merged: usize,
}

impl<R: Read> CsvImport<R> {
    /// Read the header. Fails when it has no `email` column.
    pub fn new(input: R) -> Result<Self, String> {
        let watch = QuoteWatch { inner: input, state: Quote::FieldStart, line: 1, opened: 1, bytes: 0 };
        let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(watch);
        let headers = reader.headers().map_err(|e| format!("line 1: cannot read the header row: {}", escape_controls(&e.to_string())))?.clone();
        let names: Vec<String> = headers.iter().map(normalize_name).collect();
        let email_col = names
            .iter()
            .position(|n| EMAIL_HEADERS.contains(&n.as_str()))
            .ok_or_else(|| format!("line 1: the header has no `email` column (found: {})", escape_controls(&headers.iter().collect::<Vec<_>>().join(", "))))?;
        let name_col = names.iter().position(|n| n == "name");
        let extra = names
            .iter()
            .enumerate()
            .filter(|(i, n)| *i != email_col && Some(*i) != name_col && !n.is_empty())
            .map(|(i, n)| (i, n.clone()))
            .collect();
        Ok(Self { reader, email_col, name_col, extra, record: csv::StringRecord::new(), done: false, merged: 0 })
    }

    /// The next up to `n` valid subscribers (unique within the batch) and the records skipped
    /// on the way; `None` at the end of the file.
    pub fn next_batch(&mut self, n: usize) -> Option<(Vec<ImportRow>, Vec<ImportError>)> {
        if self.done {
            return None;
        }
        let mut rows: Vec<ImportRow> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let mut errors = Vec::new();
        while rows.len() < n {
            let line = self.reader.position().line() + 1;
            match self.reader.read_record(&mut self.record) {
                Ok(false) => {
                    self.done = true;
                    break;
                }
                Err(e) => {
                    let line = e.position().map_or(line, |p| p.line());
                    errors.push(ImportError { line, message: format!("unreadable record: {}", escape_controls(&e.to_string())) });
                    continue;
                }
                Ok(true) => {}
            }
            let line = self.record.position().map_or(line, |p| p.line());
            // The record that ran to the end of the file inside a quote swallowed every line
            // after it: refuse it, naming where the quote opened.
            let watch = self.reader.get_ref();
            if let Some(opened) = watch.unterminated()
                && self.reader.position().byte() >= watch.bytes
            {
                errors.push(ImportError {
                    line: opened,
                    message: "a quote opened on this line is never closed, so every line after it was read as one cell; close the quote (a quote inside a quoted cell is written twice: \"\")".into(),
                });
                self.done = true;
                break;
            }
            if self.record.iter().all(str::is_empty) {
                continue;
            }
            let raw = self.record.get(self.email_col).unwrap_or("");
            let email = match valid_address(raw) {
                Ok(e) => e,
                Err(message) => {
                    errors.push(ImportError { line, message });
                    continue;
                }
            };
            let name = header_safe(self.name_col.and_then(|i| self.record.get(i)).unwrap_or(""));
            let vars: BTreeMap<String, String> = self
                .extra
                .iter()
                .filter_map(|(i, k)| self.record.get(*i).map(cell_safe).filter(|v| !v.is_empty()).map(|v| (k.clone(), v)))
                .collect();
            match index.get(&email) {
                Some(&at) => {
                    self.merged += 1;
                    let earlier = &mut rows[at];
                    if !name.is_empty() {
                        earlier.name = name;
                    }
                    earlier.vars.extend(vars);
                }
                None => {
                    index.insert(email.clone(), rows.len());
                    rows.push(ImportRow { email, name, vars, line });
                }
            }
        }
        if rows.is_empty() && errors.is_empty() && self.done {
            return None;
        }
        Some((rows, errors))
    }
}

/// Check and normalise one address (trimmed, lowercase, `<…>` and `mailto:` removed).
pub fn valid_address(raw: &str) -> Result<String, String> {
    let t = raw.trim().trim_start_matches("mailto:").trim_start_matches('<').trim_end_matches('>').trim();
    if t.is_empty() {
        return Err("no email address".into());
    }
    let lower = t.to_lowercase();
    match lower.parse::<lettre::Address>() {
        // A dot is required in the domain: `ana@localhost` is not a subscriber's address.
        Ok(a) if a.domain().contains('.') && !a.domain().starts_with('.') && !a.domain().ends_with('.') => Ok(lower),
        _ => Err(format!("`{}` is not a valid email address", escape_controls(raw))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(csv: &str, n: usize) -> (Vec<ImportRow>, Vec<ImportError>, usize) {
        let mut imp = CsvImport::new(csv.as_bytes()).unwrap();
        let (mut rows, mut errs) = (Vec::new(), Vec::new());
        while let Some((r, e)) = imp.next_batch(n) {
            rows.extend(r);
            errs.extend(e);
        }
        (rows, errs, imp.merged)
    }

    #[test]
    fn reads_columns_and_reports_bad_lines() {
        let csv = "Email,Name,First Name,City\n\
                   ana@example.org,Ana Lima,Ana,Porto\n\
                   not-an-address,Bob,,\n\
                   \n\
                   BEN@Example.ORG,Ben,,\n\
                   cy@nodot,Cy,,\n\
                   ,Nobody,,\n";
        let (rows, errs, _) = all(csv, 100);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].email, "ana@example.org");
        assert_eq!(rows[0].name, "Ana Lima");
        assert_eq!(rows[0].vars.get("first_name").map(String::as_str), Some("Ana"));
        assert_eq!(rows[0].vars.get("city").map(String::as_str), Some("Porto"));
        assert_eq!(rows[1].email, "ben@example.org");
        assert!(rows[1].vars.is_empty(), "empty cells are not variables");
        let lines: Vec<u64> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 6, 7], "{errs:?}");
        assert!(errs[0].to_string().starts_with("line 3: `not-an-address` is not a valid email address"));
    }

    #[test]
    fn duplicates_in_a_batch_merge() {
        let csv = "email,name,plan\na@example.org,,free\nb@example.org,B,\nA@example.org,Ann,pro\n";
        let (rows, errs, merged) = all(csv, 100);
        assert!(errs.is_empty());
        assert_eq!(merged, 1);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "Ann");
        assert_eq!(rows[0].vars.get("plan").map(String::as_str), Some("pro"));
    }

    #[test]
    fn quoted_multiline_fields_keep_line_numbers() {
        let csv = "email,note\n\"a@example.org\",\"two\nlines\"\nbad,\"x\"\n";
        let (rows, errs, _) = all(csv, 1);
        assert_eq!(rows.len(), 1);
        assert_eq!(errs[0].line, 4);
    }

    /// Issue 16 item 1: a name with CR/LF can't reach the `To:` header; other columns keep
    /// their line breaks but lose other control characters.
    #[test]
    fn control_characters_are_stripped_from_what_reaches_headers() {
        let csv = "email,name,note\neve@example.org,\"Eve\r\nBcc: victim@example.org\",\"a\x1b[31mred\nline\"\n";
        let (rows, errs, _) = all(csv, 10);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(rows[0].name, "Eve Bcc: victim@example.org");
        assert_eq!(rows[0].vars.get("note").map(String::as_str), Some("a[31mred\nline"));
    }

    /// Issue 16 item 9: control characters in a bad address are escaped in the message.
    #[test]
    fn messages_escape_control_characters() {
        let (_, errs, _) = all("email\n\"\x1b]0;pwned\x07@x\"\n", 10);
        let m = errs[0].to_string();
        assert!(!m.chars().any(char::is_control), "{m:?}");
        assert!(m.contains("\\u{1b}"), "{m}");
    }

    /// Issue 16 item 9: an unterminated quote is reported with its line, not swallowed.
    #[test]
    fn an_unterminated_quote_is_reported_with_its_line() {
        let csv = "email,name\na@example.org,Ann\nb@example.org,\"Bob\nc@example.org,Cy\nd@example.org,Di\n";
        for n in [1, 100] {
            let (rows, errs, _) = all(csv, n);
            assert_eq!(rows.iter().map(|r| r.email.as_str()).collect::<Vec<_>>(), ["a@example.org"]);
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert_eq!(errs[0].line, 3);
            assert!(errs[0].message.contains("never closed"), "{}", errs[0]);
        }
        // Quotes that close, escaped quotes and a stray quote inside an unquoted cell are fine.
        let (rows, errs, _) = all("email,name\na@example.org,\"A \"\"Q\"\" \nB\"\nb@example.org,O\"Neil\n", 1);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn a_header_without_email_is_refused() {
        let e = CsvImport::new("name,city\nAna,Porto\n".as_bytes()).err().unwrap();
        assert!(e.contains("no `email` column"), "{e}");
    }
}
