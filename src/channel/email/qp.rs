//! Quoted-printable (RFC 2045 §6.7), written so a mailing's body can be encoded **once** and
//! only the merge values encoded per recipient.
//!
//! Every piece (a literal run of the template, or one filled value) is encoded on its own,
//! starting at column 0 and ending with a line break (a soft one, `=\r\n`, unless the piece
//! ended with a hard one). A soft break may stand anywhere in quoted-printable, so the pieces
//! concatenate to a valid body whose decoded text is the filled template, lines never longer
//! than 76 characters. Encoding a 20 KB part per recipient was most of the SMTP sender's CPU;
//! with this, a personal copy costs a copy of the pre-encoded bytes and a few short encodes.
//!
//! The encoder also writes a `.` at the start of a line as `=2E`, so the body needs no SMTP
//! dot-stuffing, and normalises line breaks to CRLF (`\n` and `\r\n` are hard breaks; a lone
//! `\r` is encoded).

/// The longest encoded line, without its CRLF (RFC 2045: 76, including a soft break's `=`).
const MAX_LINE: usize = 76;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Appends quoted-printable to a buffer, tracking the column.
pub struct QpWriter<'a> {
    out: &'a mut Vec<u8>,
    col: usize,
}

impl<'a> QpWriter<'a> {
    /// A writer appending to `out`, at the start of a line.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out, col: 0 }
    }

    fn token(&mut self, t: &[u8]) {
        // Leave room for the `=` of a soft break.
        if self.col + t.len() > MAX_LINE - 1 {
            self.out.extend_from_slice(b"=\r\n");
            self.col = 0;
        }
        self.out.extend_from_slice(t);
        self.col += t.len();
    }

    fn escaped(&mut self, b: u8) {
        self.token(&[b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
    }

    /// Encode `s`.
    pub fn write(&mut self, s: &[u8]) {
        let mut i = 0;
        while i < s.len() {
            let b = s[i];
            let next = s.get(i + 1).copied();
            match b {
                b'\n' => self.hard_break(),
                b'\r' if next == Some(b'\n') => {
                    self.hard_break();
                    i += 1;
                }
                b' ' | b'\t' => {
                    // Whitespace before a hard break would be trailing: encode it.
                    let before_break = matches!(next, Some(b'\n')) || (next == Some(b'\r') && s.get(i + 2) == Some(&b'\n'));
                    if before_break { self.escaped(b) } else { self.token(&[b]) }
                }
                b'.' if self.col == 0 => self.escaped(b),
                b'=' => self.escaped(b),
                33..=126 => {
                    // Copy a run of plain characters at once, up to the line's room.
                    let room = (MAX_LINE - 1).saturating_sub(self.col);
                    if room == 0 {
                        self.out.extend_from_slice(b"=\r\n");
                        self.col = 0;
                        continue;
                    }
                    let run = s[i..].iter().take(room).take_while(|&&c| matches!(c, 33..=126) && c != b'=').count();
                    self.out.extend_from_slice(&s[i..i + run]);
                    self.col += run;
                    i += run;
                    continue;
                }
                _ => self.escaped(b),
            }
            i += 1;
        }
    }

    /// A line break in the text.
    pub fn hard_break(&mut self) {
        self.out.extend_from_slice(b"\r\n");
        self.col = 0;
    }

    /// End the piece: a soft break unless already at the start of a line.
    pub fn finish(self) {
        if self.col > 0 {
            self.out.extend_from_slice(b"=\r\n");
        }
    }
}

/// `s` encoded as one piece.
pub fn encode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + s.len() / 8 + 8);
    let mut w = QpWriter::new(&mut out);
    w.write(s.as_bytes());
    w.finish();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// quoted_printable's strict mode refuses a soft break at the very end of the input, which
    /// RFC 2045 allows (and mail readers accept); its robust mode decodes the same otherwise,
    /// and [`well_formed`] checks the rest.
    fn decode(b: &[u8]) -> String {
        String::from_utf8(quoted_printable::decode(b, quoted_printable::ParseMode::Robust).expect("valid quoted-printable")).unwrap()
    }

    fn well_formed(b: &[u8]) {
        let s = std::str::from_utf8(b).expect("ASCII");
        assert!(s.is_ascii());
        for line in s.split("\r\n") {
            assert!(line.len() <= MAX_LINE, "line too long ({}): {line:?}", line.len());
            assert!(!line.ends_with(' ') && !line.ends_with('\t'), "trailing whitespace: {line:?}");
            assert!(!line.starts_with('.'), "a dot starts a line: {line:?}");
            assert!(!line.contains('\r') && !line.contains('\n'));
        }
    }

    #[test]
    fn encodes_the_specials() {
        assert_eq!(encode("a=b"), b"a=3Db=\r\n");
        assert_eq!(encode("x \ny"), b"x=20\r\ny=\r\n");
        assert_eq!(encode(".hidden\n.x"), b"=2Ehidden\r\n=2Ex=\r\n");
        assert_eq!(encode("é"), b"=C3=A9=\r\n");
        assert_eq!(encode("line\n"), b"line\r\n");
        assert_eq!(encode(""), b"");
    }

    #[test]
    fn long_lines_break_softly() {
        let s = "x".repeat(200);
        let e = encode(&s);
        well_formed(&e);
        assert_eq!(decode(&e), s);
    }

    proptest! {
        #[test]
        fn pieces_concatenate_to_the_text(pieces in proptest::collection::vec("[ a-zA-Z=.\t\n\u{e9}\u{1f600}<>&\"]{0,120}", 1..6)) {
            let mut out = Vec::new();
            for p in &pieces {
                let mut w = QpWriter::new(&mut out);
                w.write(p.as_bytes());
                w.finish();
            }
            well_formed(&out);
            let want = pieces.concat().replace("\r\n", "\n").replace('\n', "\r\n");
            prop_assert_eq!(decode(&out), want);
        }
    }
}
