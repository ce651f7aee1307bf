//! The retry policy as one pure function: what the adapter answered, what happened before, and
//! the channel's schedule in; the next state, the attempt row and the next run out (svix's
//! `calculate_retry_delay` idea, as a table its tests can walk).

use std::time::Duration;

use super::schedule::RetrySchedule;
use crate::channel::{Delivered, DeliveryError, Kind};
use crate::store::{AttemptOutcome, State, Trigger};

/// Rate-limit waits allowed before a delivery is given up (they don't use up attempts).
pub const MAX_RATE_LIMIT_WAITS: i64 = 50;
/// The shortest wait a `Continue` with a wait gets: a pass that found nobody due never comes
/// back sooner than this, however close the first due recipient is.
pub const MIN_CONTINUE_WAIT: Duration = Duration::from_millis(250);

/// What the adapter answered: the typed answer, or a classified error (a timeout or a panic is
/// an unknown outcome the pipeline made up for it).
pub type Answer = Result<Delivered, DeliveryError>;

/// What the pipeline knows of the delivery before this attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    /// Attempts already counted against the schedule (not this one).
    pub attempts: usize,
    /// Rate-limit waits so far.
    pub rate_limited_waits: i64,
    /// Who started this attempt: a manual one gets no automatic retry chain.
    pub trigger: Trigger,
}

/// When the delivery runs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Not without the operator (settled, failed, or waiting for them).
    Never,
    /// Go on at once, in the same job (a mailing's next pass).
    Now,
    /// A new Deliver job after this delay.
    After(Duration),
}

/// The attempt row a decision writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Its outcome.
    pub outcome: AttemptOutcome,
    /// Does it use up one of the schedule's attempts?
    pub counts: bool,
    /// Is it a rate-limit wait?
    pub rate_limited: bool,
    /// Its message (an error excerpt, or why it stopped).
    pub error: Option<String>,
    /// HTTP or SMTP status.
    pub status: Option<i64>,
}

/// What follows an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The delivery's new state.
    pub state: State,
    /// The attempt row; `None` for a `Continue`, which is not an attempt.
    pub row: Option<Row>,
    /// For a `Continue`: the progress line `status` shows.
    pub note: Option<String>,
    /// When it runs next.
    pub next: Next,
}

/// Decide what follows `answer`. `unit` is a uniform sample in [0, 1) for the jitter.
pub fn decide(answer: &Answer, history: &History, schedule: &RetrySchedule, unit: f64) -> Decision {
    let manual = history.trigger == Trigger::Manual;
    let e = match answer {
        Ok(Delivered::Sent(_)) => return done(State::Sent, AttemptOutcome::Sent),
        Ok(Delivered::AwaitingConfirmation(_)) => return done(State::AwaitingConfirmation, AttemptOutcome::AwaitingConfirmation),
        // More work, nothing failed: whoever triggered it, it goes on; never an attempt, never capped.
        Ok(Delivered::Continue { after: None, note }) => return Decision { state: State::Sending, row: None, note: Some(note.clone()), next: Next::Now },
        Ok(Delivered::Continue { after: Some(wait), note }) => {
            return Decision { state: State::Retrying, row: None, note: Some(note.clone()), next: Next::After((*wait).max(MIN_CONTINUE_WAIT)) };
        }
        Err(e) => e,
    };
    let attempts_made = history.attempts + 1;
    let row = |outcome: AttemptOutcome, error: String| Row {
        outcome,
        counts: true,
        rate_limited: false,
        error: Some(error),
        status: e.status().map(i64::from),
    };
    let failed = |outcome: AttemptOutcome, error: String| Decision { state: State::Failed, row: Some(row(outcome, error)), note: None, next: Next::Never };
    let manual_msg = || format!("{} (manual attempt: no automatic retry)", e.message());
    match e.kind() {
        Kind::Permanent | Kind::Auth | Kind::Forbidden => failed(outcome_of(e.kind()), e.message().to_string()),
        Kind::Retryable => match schedule.next_delay(attempts_made, unit) {
            _ if manual => failed(AttemptOutcome::Retryable, manual_msg()),
            Some(delay) => Decision { state: State::Retrying, row: Some(row(AttemptOutcome::Retryable, e.message().to_string())), note: None, next: Next::After(delay) },
            None => failed(AttemptOutcome::Exhausted, format!("gave up after {attempts_made} attempts: {}", e.message())),
        },
        Kind::RateLimited => {
            let waits = history.rate_limited_waits + 1;
            let (outcome, error, state, next) = if manual {
                (AttemptOutcome::RateLimited, manual_msg(), State::Failed, Next::Never)
            } else if waits >= MAX_RATE_LIMIT_WAITS {
                (AttemptOutcome::Exhausted, format!("gave up after {waits} rate-limit waits: {}", e.message()), State::Failed, Next::Never)
            } else {
                (AttemptOutcome::RateLimited, e.message().to_string(), State::Retrying, Next::After(schedule.rate_limit_delay(e.retry_after(), unit)))
            };
            Decision { state, row: Some(Row { counts: false, rate_limited: true, ..row(outcome, error) }), note: None, next }
        }
        Kind::UnknownOutcome => {
            // Reconciled on the next run. A timeout waits at least the rate-limit floor. Past
            // the schedule (or by hand) it waits for the operator, still unconfirmed.
            let next = if !manual && attempts_made < schedule.max_attempts() {
                let base = schedule.next_delay(attempts_made, unit).unwrap_or_default();
                Next::After(base.max(schedule.rate_limit_delay(None, unit)))
            } else {
                Next::Never
            };
            Decision { state: State::Unconfirmed, row: Some(row(AttemptOutcome::UnknownOutcome, e.message().to_string())), note: None, next }
        }
    }
}

/// The outcome a failure of this class is logged as.
pub fn outcome_of(kind: Kind) -> AttemptOutcome {
    match kind {
        Kind::Retryable => AttemptOutcome::Retryable,
        Kind::RateLimited => AttemptOutcome::RateLimited,
        Kind::Permanent => AttemptOutcome::Permanent,
        Kind::Auth => AttemptOutcome::NeedsAuth,
        Kind::Forbidden => AttemptOutcome::Forbidden,
        Kind::UnknownOutcome => AttemptOutcome::UnknownOutcome,
    }
}

fn done(state: State, outcome: AttemptOutcome) -> Decision {
    Decision { state, row: Some(Row { outcome, counts: true, rate_limited: false, error: None, status: None }), note: None, next: Next::Never }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::Receipt;
    use crate::config::RetryConfig;

    fn schedule() -> RetrySchedule {
        // Two retries: 10 s then 100 s; 429s wait 60 s..3600 s; no jitter.
        let retry = RetryConfig { schedule_secs: vec![10, 100], jitter: 0.0, rate_limit_floor_secs: 60, rate_limit_ceiling_secs: 3600 };
        RetrySchedule::for_channel(&retry, None)
    }

    fn err(kind: Kind) -> Answer {
        Err(DeliveryError::new(kind, "boom").with_status(500))
    }

    fn rate_limited(hint: Option<u64>) -> Answer {
        Err(DeliveryError::rate_limited("slow down", hint.map(Duration::from_secs)).with_status(429))
    }

    fn sent() -> Answer {
        Ok(Delivered::Sent(Receipt { remote_id: "1".into(), ..Receipt::default() }))
    }

    fn cont(after: Option<u64>) -> Answer {
        Ok(Delivered::Continue { after: after.map(Duration::from_millis), note: "3 owed".into() })
    }

    const S: Trigger = Trigger::Schedule;
    const M: Trigger = Trigger::Manual;

    /// One line of the policy: the answer, the attempts and rate-limit waits before it, the
    /// trigger; then the state, the row's outcome (None: no row), whether it counts, and the
    /// next run.
    type Case = (&'static str, Answer, usize, i64, Trigger, State, Option<AttemptOutcome>, bool, Next);

    #[test]
    fn the_retry_policy_as_a_table() {
        use AttemptOutcome as O;
        let secs = Duration::from_secs;
        let cases: Vec<Case> = vec![
            ("sent", sent(), 0, 0, S, State::Sent, Some(O::Sent), true, Next::Never),
            ("sent on the last attempt", sent(), 2, 0, S, State::Sent, Some(O::Sent), true, Next::Never),
            ("draft", Ok(Delivered::AwaitingConfirmation(Receipt::default())), 0, 0, S, State::AwaitingConfirmation, Some(O::AwaitingConfirmation), true, Next::Never),
            ("budget ran out: at once", cont(None), 0, 0, S, State::Sending, None, false, Next::Now),
            ("budget ran out past the schedule", cont(None), 40, 49, S, State::Sending, None, false, Next::Now),
            ("budget ran out, by hand", cont(None), 0, 0, M, State::Sending, None, false, Next::Now),
            ("nobody due for 30 s", cont(Some(30_000)), 0, 0, S, State::Retrying, None, false, Next::After(secs(30))),
            ("nobody due, by hand: still scheduled", cont(Some(30_000)), 0, 0, M, State::Retrying, None, false, Next::After(secs(30))),
            ("nobody due, past every cap", cont(Some(5_000)), 99, 99, S, State::Retrying, None, false, Next::After(secs(5))),
            ("due at once never spins", cont(Some(0)), 0, 0, S, State::Retrying, None, false, Next::After(MIN_CONTINUE_WAIT)),
            ("retryable, first", err(Kind::Retryable), 0, 0, S, State::Retrying, Some(O::Retryable), true, Next::After(secs(10))),
            ("retryable, second", err(Kind::Retryable), 1, 0, S, State::Retrying, Some(O::Retryable), true, Next::After(secs(100))),
            ("retryable, last: exhausted", err(Kind::Retryable), 2, 0, S, State::Failed, Some(O::Exhausted), true, Next::Never),
            ("retryable by hand", err(Kind::Retryable), 0, 0, M, State::Failed, Some(O::Retryable), true, Next::Never),
            ("permanent", err(Kind::Permanent), 0, 0, S, State::Failed, Some(O::Permanent), true, Next::Never),
            ("needs auth", err(Kind::Auth), 0, 0, S, State::Failed, Some(O::NeedsAuth), true, Next::Never),
            ("forbidden", err(Kind::Forbidden), 1, 0, S, State::Failed, Some(O::Forbidden), true, Next::Never),
            ("429, no hint: the floor", rate_limited(None), 0, 0, S, State::Retrying, Some(O::RateLimited), false, Next::After(secs(60))),
            ("429, hint honoured", rate_limited(Some(120)), 0, 0, S, State::Retrying, Some(O::RateLimited), false, Next::After(secs(120))),
            ("429, hint clamped", rate_limited(Some(99_999)), 0, 0, S, State::Retrying, Some(O::RateLimited), false, Next::After(secs(3600))),
            ("429 after the schedule's attempts: still waits", rate_limited(None), 2, 0, S, State::Retrying, Some(O::RateLimited), false, Next::After(secs(60))),
            ("429, last wait allowed: exhausted", rate_limited(None), 0, MAX_RATE_LIMIT_WAITS - 1, S, State::Failed, Some(O::Exhausted), false, Next::Never),
            ("429 by hand", rate_limited(None), 0, 0, M, State::Failed, Some(O::RateLimited), false, Next::Never),
            ("unknown: reconcile after the floor", err(Kind::UnknownOutcome), 0, 0, S, State::Unconfirmed, Some(O::UnknownOutcome), true, Next::After(secs(60))),
            ("unknown: the schedule when longer", err(Kind::UnknownOutcome), 1, 0, S, State::Unconfirmed, Some(O::UnknownOutcome), true, Next::After(secs(100))),
            ("unknown, last: the operator", err(Kind::UnknownOutcome), 2, 0, S, State::Unconfirmed, Some(O::UnknownOutcome), true, Next::Never),
            ("unknown by hand: the operator", err(Kind::UnknownOutcome), 0, 0, M, State::Unconfirmed, Some(O::UnknownOutcome), true, Next::Never),
        ];
        for (name, answer, attempts, waits, trigger, state, outcome, counts, next) in cases {
            let d = decide(&answer, &History { attempts, rate_limited_waits: waits, trigger }, &schedule(), 0.5);
            assert_eq!(d.state, state, "{name}: state");
            assert_eq!(d.row.as_ref().map(|r| r.outcome), outcome, "{name}: outcome");
            assert_eq!(d.row.as_ref().is_some_and(|r| r.counts), counts, "{name}: counts");
            assert_eq!(d.next, next, "{name}: next");
            if let Some(r) = &d.row {
                assert_eq!(r.rate_limited, matches!(&answer, Err(e) if e.kind() == Kind::RateLimited), "{name}: rate_limited");
                if r.outcome != O::Sent && r.outcome != O::AwaitingConfirmation {
                    assert!(r.error.is_some() && r.status.is_some(), "{name}: the error and its status are kept");
                }
            } else {
                assert_eq!(d.note.as_deref(), Some("3 owed"), "{name}: a Continue keeps its progress line");
            }
        }
    }

    #[test]
    fn an_exhausted_row_says_how_many_attempts() {
        let d = decide(&err(Kind::Retryable), &History { attempts: 2, rate_limited_waits: 0, trigger: S }, &schedule(), 0.5);
        let row = d.row.expect("a row");
        assert_eq!(row.error.as_deref(), Some("gave up after 3 attempts: boom"));
        assert_eq!(row.status, Some(500));
    }

    #[test]
    fn a_zero_floor_never_makes_a_zero_wait() {
        let retry = RetryConfig { schedule_secs: vec![0], jitter: 0.0, rate_limit_floor_secs: 0, rate_limit_ceiling_secs: 0 };
        let s = RetrySchedule::for_channel(&retry, None);
        let d = decide(&rate_limited(None), &History { attempts: 0, rate_limited_waits: 0, trigger: S }, &s, 0.5);
        assert!(matches!(d.next, Next::After(w) if w >= Duration::from_secs(1)), "{:?}", d.next);
    }
}
