//! Reconnection schedules (a lost camera, a broker that went away): exponential back-off, capped,
//! with a bounded number of attempts.

use std::time::Duration;

/// How long to wait before each attempt to reconnect: `first`, doubling up to `max`,
/// for at most `attempts` attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait before the first attempt.
    pub first: Duration,
    /// Longest wait between attempts.
    pub max: Duration,
    /// Attempts before giving up.
    pub attempts: u32,
}

impl Default for Backoff {
    /// 0.25 s, 0.5 s, 1 s, 2 s, 4 s, then every 8 s: 30 attempts, about three and a half minutes.
    fn default() -> Self {
        Self {
            first: Duration::from_millis(250),
            max: Duration::from_secs(8),
            attempts: 30,
        }
    }
}

impl Backoff {
    /// The wait before attempt `attempt` (counted from 0), or `None` once all attempts are spent.
    pub fn delay(&self, attempt: u32) -> Option<Duration> {
        if attempt >= self.attempts {
            return None;
        }
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        Some(self.first.saturating_mul(factor).min(self.max))
    }
}

/// A running count of attempts on a [`Backoff`] schedule, kept until the work it guards goes
/// through: a camera that reopens but never delivers a frame spends its attempts as surely as one
/// that does not reopen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retries {
    backoff: Backoff,
    attempt: u32,
}

impl Retries {
    /// No attempts made yet.
    pub fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            attempt: 0,
        }
    }

    /// The wait before the next attempt, counting it; `None` once all are spent (the count then
    /// starts over, so a caller that goes on gets a new round).
    pub fn next_delay(&mut self) -> Option<Duration> {
        let delay = self.backoff.delay(self.attempt);
        self.attempt = if delay.is_some() { self.attempt + 1 } else { 0 };
        delay
    }

    /// Attempts counted since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The work went through: the next failure starts from the first delay.
    pub fn succeeded(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopen_that_never_delivers_spends_the_attempts() {
        let backoff = Backoff {
            attempts: 5,
            ..Backoff::default()
        };
        let mut retries = Retries::new(backoff);
        // Each round: the reopen succeeds, the read after it fails. Only a delivered frame
        // resets the count, so the rounds end.
        let mut rounds = 0;
        while let Some(delay) = retries.next_delay() {
            assert_eq!(Some(delay), backoff.delay(rounds));
            rounds += 1;
            assert_eq!(retries.attempts(), rounds);
            assert!(rounds <= 5, "never gives up");
        }
        assert_eq!(rounds, 5);
        // A new round after giving up; a success starts the schedule over.
        assert_eq!(retries.next_delay(), backoff.delay(0));
        assert_eq!(retries.next_delay(), backoff.delay(1));
        retries.succeeded();
        assert_eq!(retries.attempts(), 0);
        assert_eq!(retries.next_delay(), backoff.delay(0));
    }

    #[test]
    fn delays_double_up_to_the_cap_then_stop() {
        let b = Backoff::default();
        let ms: Vec<u128> = (0..b.attempts)
            .map(|a| b.delay(a).unwrap().as_millis())
            .collect();
        assert_eq!(&ms[..7], &[250, 500, 1000, 2000, 4000, 8000, 8000]);
        assert!(ms[7..].iter().all(|&m| m == 8000));
        assert_eq!(b.delay(b.attempts), None);
        assert_eq!(b.delay(u32::MAX), None);
        let total: u128 = ms.iter().sum();
        assert_eq!(total, 7750 + 25 * 8000);
    }

    #[test]
    fn huge_attempt_counts_saturate_instead_of_overflowing() {
        let b = Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
            attempts: u32::MAX,
        };
        assert_eq!(b.delay(40), Some(Duration::from_secs(60)));
        assert_eq!(b.delay(u32::MAX - 1), Some(Duration::from_secs(60)));
        let none = Backoff { attempts: 0, ..b };
        assert_eq!(none.delay(0), None);
    }
}
