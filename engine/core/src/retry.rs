//! Retry maths: whether a failed attempt is retried, and how long to wait first.
//!
//! Pure functions, so the executor's timing can be tested without clocks: the caller passes
//! the random number used for jitter.

use std::time::Duration;

use crate::model::RetryPolicy;

/// How an attempt ended, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    /// The process exited with this code (non-zero).
    Exit(i32),
    /// The attempt hit its timeout.
    TimedOut,
    /// The process could not be started, or was killed by a signal.
    Other,
}

/// Whether attempt number `attempt` (1-based) that ended with `end` gets another try.
///
/// `attempts` counts every try, the first included. With `on-exit-codes`, only those exit
/// codes are retried; a timeout or a signal is then not retried either, since the list
/// names exactly which failures are transient.
pub fn should_retry(policy: &RetryPolicy, attempt: u32, end: AttemptEnd) -> bool {
    if attempt >= policy.attempts {
        return false;
    }
    if policy.on_exit_codes.is_empty() {
        return true;
    }
    matches!(end, AttemptEnd::Exit(code) if policy.on_exit_codes.contains(&code))
}

/// The wait before attempt `attempt + 1`, after attempt `attempt` (1-based) failed.
///
/// The base delay grows geometrically, `delay × backoff^(attempt-1)`, capped by `max-delay`.
/// With jitter ("full jitter"), the wait is `unit × base` for a `unit` drawn uniformly from
/// `[0, 1)` by the caller; values outside that range are clamped.
pub fn delay(policy: &RetryPolicy, attempt: u32, unit: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(1_000) as i32;
    let base_secs = policy.delay.as_secs_f64() * policy.backoff.powi(exponent);
    let cap_secs = policy.max_delay.map_or(f64::MAX, |m| m.as_secs_f64());
    // One day bounds any wait, whatever the policy says; it also keeps the float finite.
    let secs = base_secs.min(cap_secs).min(86_400.0);
    let secs = if policy.jitter { secs * unit.clamp(0.0, 1.0) } else { secs };
    Duration::from_secs_f64(secs.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(attempts: u32, delay_ms: u64, backoff: f64, max_ms: Option<u64>, jitter: bool) -> RetryPolicy {
        RetryPolicy {
            attempts,
            delay: Duration::from_millis(delay_ms),
            backoff,
            max_delay: max_ms.map(Duration::from_millis),
            jitter,
            on_exit_codes: Vec::new(),
        }
    }

    #[test]
    fn attempts_count_every_try() {
        let p = policy(3, 100, 1.0, None, false);
        assert!(should_retry(&p, 1, AttemptEnd::Exit(1)));
        assert!(should_retry(&p, 2, AttemptEnd::TimedOut));
        assert!(!should_retry(&p, 3, AttemptEnd::Exit(1)));
        assert!(!should_retry(&policy(1, 100, 1.0, None, false), 1, AttemptEnd::Exit(1)));
    }

    #[test]
    fn on_exit_codes_restricts_retries() {
        let mut p = policy(5, 100, 1.0, None, false);
        p.on_exit_codes = vec![75];
        assert!(should_retry(&p, 1, AttemptEnd::Exit(75)));
        assert!(!should_retry(&p, 1, AttemptEnd::Exit(1)));
        assert!(!should_retry(&p, 1, AttemptEnd::TimedOut));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = policy(10, 1_000, 2.0, Some(5_000), false);
        let waits: Vec<u64> = (1..=5).map(|a| delay(&p, a, 0.5).as_millis() as u64).collect();
        assert_eq!(waits, [1_000, 2_000, 4_000, 5_000, 5_000]);
    }

    #[test]
    fn constant_delay_without_backoff() {
        let p = policy(4, 3_000, 1.0, None, false);
        assert!((1..=3).all(|a| delay(&p, a, 0.9) == Duration::from_secs(3)));
    }

    #[test]
    fn full_jitter_stays_within_zero_and_the_base() {
        let p = policy(10, 1_000, 2.0, Some(60_000), true);
        for attempt in 1..=8 {
            let base = delay(&RetryPolicy { jitter: false, ..p.clone() }, attempt, 0.0);
            for unit in [0.0, 0.25, 0.5, 0.999, 1.5, -1.0] {
                let d = delay(&p, attempt, unit);
                assert!(d <= base, "attempt {attempt} unit {unit}: {d:?} > {base:?}");
            }
            assert_eq!(delay(&p, attempt, 0.0), Duration::ZERO);
        }
    }

    #[test]
    fn huge_exponents_stay_finite() {
        let p = policy(1_000, 1_000, 100.0, None, false);
        assert_eq!(delay(&p, 999, 0.0), Duration::from_secs(86_400));
    }
}
