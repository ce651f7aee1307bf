//! The retry schedule: config data, not code (svix `calculate_retry_delay`).
//!
//! `schedule_secs[k]` is the delay before retry k+1, so a schedule of n entries allows n+1
//! attempts. Each delay gets ±`jitter`. A rate limit (429) or a timeout waits at least
//! `rate_limit_floor_secs`; a `Retry-After` or reset hint is honoured, clamped to
//! `rate_limit_ceiling_secs`, and jitter only ever lengthens it (never earlier than asked).
//! A rate-limit wait does not use up an attempt.

use std::time::Duration;

use crate::config::validate::MAX_DELAY_SECS;
use crate::config::{ChannelConfig, RetryConfig};

/// The longest wait, whatever the config says: validation refuses more, and this keeps every
/// deadline computed from a delay (`now + delay` in milliseconds) from overflowing.
const MAX_DELAY: Duration = Duration::from_secs(MAX_DELAY_SECS as u64);
/// The shortest rate-limit wait, whatever `rate_limit_floor_secs` says.
pub const MIN_RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);

/// The resolved schedule for one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    /// Delay before each retry.
    pub delays: Vec<Duration>,
    /// ±fraction applied to each delay.
    pub jitter: f64,
    /// Minimum wait after a 429 or a timeout.
    pub floor: Duration,
    /// Maximum wait a hint can impose.
    pub ceiling: Duration,
}

impl RetrySchedule {
    /// `[retry]`, with the channel's `retry_schedule_secs` replacing the delays if set.
    pub fn for_channel(retry: &RetryConfig, channel: Option<&ChannelConfig>) -> Self {
        let secs = channel.and_then(|c| c.common().retry_schedule_secs.clone()).unwrap_or_else(|| retry.schedule_secs.clone());
        Self {
            delays: secs.into_iter().map(|s| Duration::from_secs(s).min(MAX_DELAY)).collect(),
            jitter: retry.jitter.clamp(0.0, 1.0),
            floor: Duration::from_secs(retry.rate_limit_floor_secs).min(MAX_DELAY),
            ceiling: Duration::from_secs(retry.rate_limit_ceiling_secs.max(retry.rate_limit_floor_secs)).min(MAX_DELAY),
        }
    }

    /// The most attempts a delivery gets (one more than the number of retries).
    pub fn max_attempts(&self) -> usize {
        self.delays.len() + 1
    }

    /// After `attempts_made` counted attempts failed retryably: the delay before the next one,
    /// or None when the schedule is exhausted. `unit` is a uniform sample in [0, 1).
    pub fn next_delay(&self, attempts_made: usize, unit: f64) -> Option<Duration> {
        let base = *self.delays.get(attempts_made.checked_sub(1)?)?;
        Some(jittered(base, self.jitter, unit))
    }

    /// The wait after a rate limit or a timeout: the hint clamped to [floor, ceiling], then
    /// lengthened by up to `jitter`; never under [`MIN_RATE_LIMIT_WAIT`], even with a floor of
    /// 0 (a rate limit retried at once only meets the same limit).
    pub fn rate_limit_delay(&self, hint: Option<Duration>, unit: f64) -> Duration {
        let base = hint.unwrap_or(Duration::ZERO).clamp(self.floor, self.ceiling).max(MIN_RATE_LIMIT_WAIT);
        scaled(base, 1.0 + self.jitter * unit.clamp(0.0, 1.0))
    }
}

/// `base` scaled by a factor in [1-jitter, 1+jitter], chosen by `unit` in [0, 1).
pub fn jittered(base: Duration, jitter: f64, unit: f64) -> Duration {
    let f = 1.0 + jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
    scaled(base, f.max(0.0))
}

/// `base × f`, saturating at [`Duration::MAX`] instead of panicking (a schedule of centuries).
fn scaled(base: Duration, f: f64) -> Duration {
    Duration::try_from_secs_f64(base.as_secs_f64() * f).unwrap_or(Duration::MAX)
}

/// A uniform sample in [0, 1).
pub fn unit_random() -> f64 {
    use rand::Rng;
    rand::thread_rng().r#gen::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(secs: &[u64], jitter: f64) -> RetrySchedule {
        let retry = RetryConfig { schedule_secs: secs.to_vec(), jitter, rate_limit_floor_secs: 60, rate_limit_ceiling_secs: 3600 };
        RetrySchedule::for_channel(&retry, None)
    }

    #[test]
    fn default_schedule_walks_the_list_then_stops() {
        let s = RetrySchedule::for_channel(&RetryConfig::default(), None);
        assert_eq!(s.max_attempts(), 9);
        let exact: Vec<u64> = (1..=8).map(|k| s.next_delay(k, 0.5).unwrap().as_secs()).collect();
        assert_eq!(exact, vec![0, 5, 300, 1800, 7200, 18000, 36000, 36000]);
        assert_eq!(s.next_delay(9, 0.5), None, "exhausted after 9 attempts");
        assert_eq!(s.next_delay(0, 0.5), None);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let s = sched(&[100], 0.2);
        assert_eq!(s.next_delay(1, 0.0).unwrap(), Duration::from_secs(80));
        assert_eq!(s.next_delay(1, 0.5).unwrap(), Duration::from_secs(100));
        assert!(s.next_delay(1, 0.999_999).unwrap() <= Duration::from_secs(120));
        for _ in 0..1000 {
            let d = s.next_delay(1, unit_random()).unwrap();
            assert!(d >= Duration::from_secs(80) && d <= Duration::from_secs(120), "{d:?}");
        }
    }

    #[test]
    fn rate_limits_are_floored_clamped_and_never_early() {
        let s = sched(&[0, 5], 0.2);
        assert_eq!(s.rate_limit_delay(None, 0.0), Duration::from_secs(60), "no hint: the floor");
        assert_eq!(s.rate_limit_delay(Some(Duration::from_secs(5)), 0.0), Duration::from_secs(60), "below the floor");
        assert_eq!(s.rate_limit_delay(Some(Duration::from_secs(120)), 0.0), Duration::from_secs(120), "hint honoured");
        assert_eq!(s.rate_limit_delay(Some(Duration::from_secs(99_999)), 0.0), Duration::from_secs(3600), "clamped to the ceiling");
        assert_eq!(s.rate_limit_delay(Some(Duration::from_secs(120)), 1.0), Duration::from_secs(144), "jitter only lengthens");
    }

    #[test]
    fn at_after_saturates_instead_of_wrapping() {
        assert_eq!(crate::jobs::decide::at_after(1_000, Duration::MAX), i64::MAX, "never wraps into the past");
        assert_eq!(crate::jobs::decide::at_after(1_000, Duration::from_millis(500)), 1_500);
    }

    #[test]
    fn huge_delays_never_wrap_into_the_past() {
        let retry = RetryConfig { schedule_secs: vec![i64::MAX as u64], jitter: 0.2, rate_limit_floor_secs: u64::MAX, rate_limit_ceiling_secs: u64::MAX };
        let s = RetrySchedule::for_channel(&retry, None);
        let now: i64 = 1_800_000_000_000;
        for d in [s.next_delay(1, 0.999).unwrap(), s.rate_limit_delay(Some(Duration::MAX), 0.999)] {
            // deliver.rs computes `now + delay.as_millis() as i64`.
            let at = now + d.as_millis() as i64;
            assert!(at > now, "a delay of {d:?} wrapped to {at}");
            assert!(d <= MAX_DELAY.mul_f64(1.2), "{d:?}");
        }
    }

    #[test]
    fn per_channel_schedule_replaces_the_default() {
        let cfg: ChannelConfig = toml::from_str("type = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\nretry_schedule_secs = [1, 2]").unwrap();
        let s = RetrySchedule::for_channel(&RetryConfig::default(), Some(&cfg));
        assert_eq!(s.delays, vec![Duration::from_secs(1), Duration::from_secs(2)]);
        assert_eq!(s.max_attempts(), 3);
    }
}
