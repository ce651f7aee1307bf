//! Scheduling math, pure and clock-injected: cron fires in a time zone, catch-up planning after
//! downtime, and which issue "next" means. The daemon (src/jobs/) turns these into unique fire
//! rows and Publish jobs; nothing here touches the store or the queue.

use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A parsed `[[schedule]]` cron entry in its time zone.
#[derive(Debug, Clone)]
pub struct Cron {
    schedule: cron::Schedule,
    tz: Tz,
}

impl Cron {
    /// Parse `expr` (with a seconds field: `sec min hour dom mon dow [year]`) in IANA zone `tz`.
    /// A five-field expression gets `0` seconds prepended, the form most people know.
    pub fn parse(expr: &str, tz: &str) -> Result<Self, String> {
        let fields = expr.split_whitespace().count();
        let expr = if fields == 5 { format!("0 {expr}") } else { expr.to_string() };
        let schedule = cron::Schedule::from_str(&expr).map_err(|e| format!("bad cron expression {expr:?}: {e}"))?;
        let tz = Tz::from_str(tz).map_err(|_| format!("unknown time zone {tz:?} (use an IANA name such as Europe/London)"))?;
        Ok(Self { schedule, tz })
    }

    /// The cron schedule (for apalis-cron).
    pub fn schedule(&self) -> &cron::Schedule {
        &self.schedule
    }

    /// The time zone.
    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// The first fire strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.after(&t.with_timezone(&self.tz)).next().map(|d| d.with_timezone(&Utc))
    }

    /// Fires in `(after, until]`, oldest first, at most `max`.
    pub fn fires_between(&self, after: DateTime<Utc>, until: DateTime<Utc>, max: usize) -> Vec<DateTime<Utc>> {
        self.schedule
            .after(&after.with_timezone(&self.tz))
            .map(|d| d.with_timezone(&Utc))
            .take_while(|d| *d <= until)
            .take(max)
            .collect()
    }
}

/// What to do with a fire missed while no daemon ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// Inside the catch-up window: fire it now, once.
    CatchUp(DateTime<Utc>),
    /// Older than the window: record it as skipped, and log it.
    Skip(DateTime<Utc>),
}

/// Plan the fires missed in `(last_seen, now)`: those within `window` of `now` are caught up,
/// older ones are skipped. At most `max` are listed (a long outage of an every-second entry).
pub fn plan_missed(cron: &Cron, last_seen: DateTime<Utc>, now: DateTime<Utc>, window: chrono::Duration, max: usize) -> Vec<Missed> {
    // `now` itself belongs to the live scheduler, not to catch-up.
    let until = now - chrono::Duration::milliseconds(1);
    cron.fires_between(last_seen, until, max)
        .into_iter()
        .map(|t| if now - t <= window { Missed::CatchUp(t) } else { Missed::Skip(t) })
        .collect()
}

/// An issue file as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The file.
    pub path: PathBuf,
    /// Its slug.
    pub slug: String,
    /// Its version (content hash).
    pub version: String,
    /// Its date.
    pub date: chrono::NaiveDate,
    /// `draft = true`.
    pub draft: bool,
    /// Its own `publish_at`, if any.
    pub publish_at: Option<DateTime<Utc>>,
}

/// "next": the oldest issue (by date, then slug) that is not a draft, has no `publish_at` of its
/// own (those publish themselves), and has not been published yet.
pub fn next_ready<'a>(candidates: &'a [Candidate], published: &dyn Fn(&str) -> bool) -> Option<&'a Candidate> {
    candidates
        .iter()
        .filter(|c| !c.draft && c.publish_at.is_none() && !published(&c.slug))
        .min_by(|a, b| (a.date, &a.slug).cmp(&(b.date, &b.slug)))
}

/// Issues whose own `publish_at` has come and that are not published yet.
pub fn due_by_publish_at<'a>(candidates: &'a [Candidate], now: DateTime<Utc>, published: &dyn Fn(&str) -> bool) -> Vec<&'a Candidate> {
    candidates
        .iter()
        .filter(|c| !c.draft && c.publish_at.is_some_and(|t| t <= now) && !published(&c.slug))
        .collect()
}

/// A scan that re-reads only files whose size or modification time changed, so the daemon can
/// look at a folder of a thousand scheduled issues every few seconds for the cost of `stat`s.
/// Between looks it keeps per file only its stamp and when it publishes itself, and, once that
/// time has come, the issue as the scheduler sees it (a thousand issues scheduled ahead cost
/// the idle daemon a few dozen KB, not a copy of every front matter).
#[derive(Debug, Default)]
pub struct ScanCache {
    seen: std::collections::HashMap<PathBuf, Seen>,
    reads: u64,
}

#[derive(Debug)]
struct Seen {
    modified: std::time::SystemTime,
    len: u64,
    /// `publish_at` in unix ms, for an issue that is not a draft and has one.
    publish_at_ms: Option<i64>,
    /// The issue, kept once it is due.
    due: Option<Box<Candidate>>,
}

impl ScanCache {
    /// The issues in `dir` whose own `publish_at` is at or before `now` and that are not
    /// drafts (whether already published is the caller's question). Files that do not parse are
    /// left out; `herald check` reports them.
    pub fn due(&mut self, dir: &std::path::Path, now: DateTime<Utc>) -> Vec<Candidate> {
        let Ok(paths) = issue_files(dir) else { return Vec::new() };
        let now_ms = now.timestamp_millis();
        let mut out = Vec::new();
        let mut live = std::collections::HashSet::with_capacity(paths.len());
        for p in paths {
            let Ok(meta) = std::fs::metadata(&p) else { continue };
            let (modified, len) = (meta.modified().unwrap_or(std::time::UNIX_EPOCH), meta.len());
            let fresh = self.seen.get(&p).is_some_and(|s| (s.modified, s.len) == (modified, len));
            let mut parsed = None;
            if !fresh {
                self.reads += 1;
                let c = crate::issue::parse_meta_file(&p).ok().map(|m| candidate(p.clone(), m));
                let publish_at_ms = c.as_ref().filter(|c| !c.draft).and_then(|c| c.publish_at).map(|t| t.timestamp_millis());
                self.seen.insert(p.clone(), Seen { modified, len, publish_at_ms, due: None });
                parsed = c;
            }
            let seen = self.seen.get_mut(&p).expect("just looked at");
            if seen.publish_at_ms.is_some_and(|t| t <= now_ms) {
                if seen.due.is_none() {
                    // Due: read it now if this look did not already.
                    seen.due = parsed
                        .or_else(|| {
                            self.reads += 1;
                            crate::issue::parse_meta_file(&p).ok().map(|m| candidate(p.clone(), m))
                        })
                        .map(Box::new);
                }
                out.extend(seen.due.as_deref().cloned());
            }
            live.insert(p);
        }
        self.seen.retain(|p, _| live.contains(p));
        self.seen.shrink_to_fit();
        out
    }

    /// How many times a file was read (tests).
    pub fn reads(&self) -> u64 {
        self.reads
    }
}

/// The `.md` files of the issues folder, sorted.
fn issue_files(dir: &std::path::Path) -> Result<Vec<PathBuf>, String> {
    let rd = std::fs::read_dir(dir).map_err(|_| format!("cannot read the issues folder {}", dir.display()))?;
    let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "md")).collect();
    paths.sort();
    Ok(paths)
}

fn candidate(path: PathBuf, (meta, version): (crate::issue::FrontMatter, String)) -> Candidate {
    Candidate { path, slug: meta.slug, version, date: meta.date, draft: meta.draft, publish_at: meta.publish_at.map(|t| t.with_timezone(&Utc)) }
}

/// Read every issue in `dir` into candidates; files that fail to parse are returned as errors
/// (the daemon logs them and carries on).
pub fn scan(dir: &std::path::Path) -> (Vec<Candidate>, Vec<String>) {
    let paths = match issue_files(dir) {
        Ok(p) => p,
        Err(e) => return (Vec::new(), vec![e]),
    };
    let (mut out, mut errors) = (Vec::new(), Vec::new());
    for p in paths {
        match crate::issue::parse_meta_file(&p) {
            Ok(m) => out.push(candidate(p, m)),
            Err(e) => errors.push(e.to_string()),
        }
    }
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn london_0800_across_both_dst_changes() {
        let c = Cron::parse("0 0 8 * * *", "Europe/London").unwrap();
        // Spring forward: Sunday 29 March 2026 01:00 GMT → 02:00 BST.
        assert_eq!(c.next_after(utc("2026-03-28T00:00:00Z")), Some(utc("2026-03-28T08:00:00Z")));
        assert_eq!(c.next_after(utc("2026-03-28T09:00:00Z")), Some(utc("2026-03-29T07:00:00Z")));
        assert_eq!(c.next_after(utc("2026-03-29T08:00:00Z")), Some(utc("2026-03-30T07:00:00Z")));
        // Fall back: Sunday 25 October 2026 02:00 BST → 01:00 GMT.
        assert_eq!(c.next_after(utc("2026-10-24T00:00:00Z")), Some(utc("2026-10-24T07:00:00Z")));
        assert_eq!(c.next_after(utc("2026-10-24T07:30:00Z")), Some(utc("2026-10-25T08:00:00Z")));
        // Five-field form is accepted.
        let c5 = Cron::parse("0 8 * * *", "Europe/London").unwrap();
        assert_eq!(c5.next_after(utc("2026-10-24T07:30:00Z")), Some(utc("2026-10-25T08:00:00Z")));
    }

    #[test]
    fn every_second_fires_each_second() {
        let c = Cron::parse("* * * * * *", "UTC").unwrap();
        let f = c.fires_between(utc("2026-11-25T10:00:00Z"), utc("2026-11-25T10:00:05Z"), 100);
        assert_eq!(f.len(), 5);
        assert_eq!(f[0], utc("2026-11-25T10:00:01Z"));
        assert_eq!(f[4], utc("2026-11-25T10:00:05Z"));
    }

    #[test]
    fn missed_fires_inside_the_window_are_caught_up_once_older_skipped() {
        let c = Cron::parse("0 0 * * * *", "UTC").unwrap(); // hourly
        let plan = plan_missed(&c, utc("2026-11-25T06:30:00Z"), utc("2026-11-25T10:15:00Z"), chrono::Duration::minutes(90), 100);
        assert_eq!(
            plan,
            vec![
                Missed::Skip(utc("2026-11-25T07:00:00Z")),
                Missed::Skip(utc("2026-11-25T08:00:00Z")),
                Missed::CatchUp(utc("2026-11-25T09:00:00Z")),
                Missed::CatchUp(utc("2026-11-25T10:00:00Z")),
            ]
        );
        assert!(Cron::parse("61 * * * * *", "UTC").is_err());
        assert!(Cron::parse("0 0 8 * * *", "Mars/Olympus").unwrap_err().contains("time zone"));
    }

    #[test]
    fn next_ready_is_the_oldest_unpublished_non_draft() {
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let cand = |slug: &str, date: &str, draft: bool, at: Option<&str>| Candidate {
            path: PathBuf::from(format!("{slug}.md")),
            slug: slug.into(),
            version: "v1".into(),
            date: d(date),
            draft,
            publish_at: at.map(utc),
        };
        let all = vec![
            cand("w47", "2026-11-20", false, None),
            cand("w46", "2026-11-13", true, None),
            cand("w48", "2026-11-27", false, None),
            cand("w49", "2026-12-04", false, Some("2026-12-04T08:00:00Z")),
        ];
        assert_eq!(next_ready(&all, &|_| false).unwrap().slug, "w47");
        assert_eq!(next_ready(&all, &|s| s == "w47").unwrap().slug, "w48");
        assert!(next_ready(&all, &|s| s != "w46").is_none());
        assert!(due_by_publish_at(&all, utc("2026-12-04T07:59:59Z"), &|_| false).is_empty());
        assert_eq!(due_by_publish_at(&all, utc("2026-12-04T08:00:00Z"), &|_| false)[0].slug, "w49");
        assert!(due_by_publish_at(&all, utc("2026-12-05T00:00:00Z"), &|s| s == "w49").is_empty());
    }

    #[test]
    fn scan_cache_rereads_only_changed_files_and_returns_the_due() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, slug: &str, title: &str, at: &str| {
            let t = format!(
                "+++\ntitle = \"{title}\"\nslug = \"{slug}\"\ndate = 2026-01-01\nurl = \"https://a.example/{slug}\"\nsummary = \"s\"\npublish_at = \"{at}\"\n+++\nbody\n"
            );
            std::fs::write(dir.path().join(name), t).unwrap();
        };
        write("a.md", "a", "A", "2026-12-01T08:00:00Z");
        write("later.md", "later", "L", "2027-06-01T08:00:00Z");
        std::fs::write(dir.path().join("bad.md"), "no front matter").unwrap();
        let mut cache = ScanCache::default();
        assert!(cache.due(dir.path(), utc("2026-11-30T00:00:00Z")).is_empty(), "nothing due yet");
        assert_eq!(cache.reads(), 3, "each file read once");
        assert!(cache.due(dir.path(), utc("2026-11-30T00:01:00Z")).is_empty());
        assert_eq!(cache.reads(), 3, "unchanged files are not read again");
        // Due: read again for its slug and version.
        let d1 = cache.due(dir.path(), utc("2026-12-01T08:00:00Z"));
        assert_eq!(d1.iter().map(|c| c.slug.as_str()).collect::<Vec<_>>(), ["a"]);
        let v1 = d1[0].version.clone();
        let reads = cache.reads();
        assert_eq!(cache.due(dir.path(), utc("2026-12-01T08:00:00Z")).len(), 1);
        assert_eq!(cache.reads(), reads, "a due file is kept, not read at every look");
        // Changed (new size): re-read, new version.
        write("a.md", "a", "A longer title", "2026-12-01T08:00:00Z");
        let d2 = cache.due(dir.path(), utc("2026-12-01T08:00:01Z"));
        assert_ne!(d2[0].version, v1);
        // A file that goes away leaves the cache.
        std::fs::remove_file(dir.path().join("bad.md")).unwrap();
        cache.due(dir.path(), utc("2026-12-01T08:00:02Z"));
        assert_eq!(cache.seen.len(), 2);
    }
}
