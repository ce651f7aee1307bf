//! Subscriber CSV import: a header row with an `email` column, an optional `name` column, and any
//! other columns, which become `[[merge]]` variables (names normalised: `First Name` →
//! `first_name`). Invalid addresses are reported with their line numbers and skipped; an
//! address repeated in the file is merged (later non-empty values win). The file is read in
//! batches, so a large list never sits in memory at once.

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

/// Header names accepted for the address column.
const EMAIL_HEADERS: &[&str] = &["email", "e-mail", "email_address", "e-mail_address", "mail"];

/// Reads a subscriber CSV in batches.
pub struct CsvImport<R: Read> {
    reader: csv::Reader<R>,
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
        let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(input);
        let headers = reader.headers().map_err(|e| format!("line 1: cannot read the header row: {e}"))?.clone();
        let names: Vec<String> = headers.iter().map(normalize_name).collect();
        let email_col = names
            .iter()
            .position(|n| EMAIL_HEADERS.contains(&n.as_str()))
            .ok_or_else(|| format!("line 1: the header has no `email` column (found: {})", headers.iter().collect::<Vec<_>>().join(", ")))?;
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
                    errors.push(ImportError { line, message: format!("unreadable record: {e}") });
                    continue;
                }
                Ok(true) => {}
            }
            let line = self.record.position().map_or(line, |p| p.line());
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
            let name = self.name_col.and_then(|i| self.record.get(i)).unwrap_or("").to_string();
            let vars: BTreeMap<String, String> = self
                .extra
                .iter()
                .filter_map(|(i, k)| self.record.get(*i).filter(|v| !v.is_empty()).map(|v| (k.clone(), v.to_string())))
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
        _ => Err(format!("`{raw}` is not a valid email address")),
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

    #[test]
    fn a_header_without_email_is_refused() {
        let e = CsvImport::new("name,city\nAna,Porto\n".as_bytes()).err().unwrap();
        assert!(e.contains("no `email` column"), "{e}");
    }
}
