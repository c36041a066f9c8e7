//! Throttling of failed logins, per module and username.
//!
//! Two layers. In memory (per instance, per Worker isolate): after
//! [`FREE_FAILURES`] consecutive failures, each further one locks the
//! username out for twice as long as the one before, from 1 s up to
//! [`MAX_LOCK_MS`]; a success clears it. In the shared counter store (every
//! instance, the Durable Objects at the edge): at most
//! [`MAX_FAILURES_PER_DAY`] failures per username and UTC day, whatever the
//! instance guessed against. The admin API checks both before it spends
//! the work of an argon2 verification.

use std::collections::HashMap;
use std::sync::Mutex;

/// Failures allowed in a row before a username is locked out.
pub const FREE_FAILURES: u32 = 5;
/// The longest lock-out after repeated failures (15 minutes).
pub const MAX_LOCK_MS: u64 = 15 * 60 * 1000;
/// Failures allowed per username and UTC day across every instance.
pub const MAX_FAILURES_PER_DAY: u64 = 100;
/// A username without failure for this long is forgotten.
const FORGET_MS: u64 = 60 * 60 * 1000;
/// Most usernames tracked at once (older ones are forgotten first).
const MAX_TRACKED: usize = 10_000;

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last_ms: u64,
    locked_until_ms: u64,
}

/// Consecutive failed logins per username, in memory.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, Failures>>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginThrottle")
    }
}

impl LoginThrottle {
    /// `Err(ms)`: `key` is locked out for `ms` more milliseconds.
    pub fn check(&self, key: &str, now_ms: u64) -> Result<(), u64> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failures.get(key) {
            Some(f) if f.locked_until_ms > now_ms => Err(f.locked_until_ms - now_ms),
            _ => Ok(()),
        }
    }

    /// Counts a failure of `key`; `Some(ms)` when it is now locked out.
    pub fn failed(&self, key: &str, now_ms: u64) -> Option<u64> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= MAX_TRACKED && !failures.contains_key(key) {
            failures.retain(|_, f| now_ms.saturating_sub(f.last_ms) < FORGET_MS);
            if failures.len() >= MAX_TRACKED {
                if let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, f)| f.last_ms)
                    .map(|(k, _)| k.clone())
                {
                    failures.remove(&oldest);
                }
            }
        }
        let entry = failures.entry(key.to_owned()).or_insert(Failures {
            count: 0,
            last_ms: now_ms,
            locked_until_ms: 0,
        });
        if now_ms.saturating_sub(entry.last_ms) >= FORGET_MS {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last_ms = now_ms;
        if entry.count <= FREE_FAILURES {
            return None;
        }
        let doublings = (entry.count - FREE_FAILURES - 1).min(20);
        let lock_ms = (1000u64 << doublings).min(MAX_LOCK_MS);
        entry.locked_until_ms = now_ms + lock_ms;
        Some(lock_ms)
    }

    /// A success: `key` starts over.
    pub fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_lock_out_for_longer_and_longer() {
        let t = LoginThrottle::default();
        for i in 0..FREE_FAILURES {
            assert_eq!(t.failed("staff/alice", 1_000 + u64::from(i)), None);
            assert!(t.check("staff/alice", 1_000 + u64::from(i)).is_ok());
        }
        assert_eq!(t.failed("staff/alice", 2_000), Some(1_000));
        assert_eq!(t.check("staff/alice", 2_500), Err(500));
        assert!(t.check("staff/bob", 2_500).is_ok(), "others are not locked");
        assert!(t.check("staff/alice", 3_000).is_ok());
        assert_eq!(t.failed("staff/alice", 3_000), Some(2_000));
        assert_eq!(t.failed("staff/alice", 5_000), Some(4_000));
        for i in 0..30 {
            t.failed("staff/alice", 10_000 + i);
        }
        assert_eq!(t.check("staff/alice", 10_030), Err(MAX_LOCK_MS - 1));
        t.succeeded("staff/alice");
        assert!(t.check("staff/alice", 10_030).is_ok());
    }

    #[test]
    fn failures_are_forgotten_after_an_hour() {
        let t = LoginThrottle::default();
        for i in 0..FREE_FAILURES {
            t.failed("k", u64::from(i));
        }
        assert_eq!(t.failed("k", FORGET_MS + 10), None);
    }
}
