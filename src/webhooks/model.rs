//! The outbox record of one event for one webhook, and what an attempt does to it. Rows hold
//! ids, times and outcomes only: the payload is built from the (sealed) event at send time.

use serde::{Deserialize, Serialize};

use crate::connections::model::Timestamp;

/// Retry delays double from the first one up to this.
const MAX_DELAY_MS: i64 = 3_600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Retries ran out (or the event is gone); `POST .../replay` queues it again.
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    /// `msg_{event id:016x}_{webhook id}`: also the `webhook-id` header, the same on every
    /// attempt and replay so receivers can de-duplicate.
    pub id: String,
    pub webhook: String,
    pub event_id: u64,
    pub event_type: String,
    pub status: DeliveryStatus,
    /// Every attempt ever made.
    pub attempts: u32,
    /// Attempts since it was (re)queued: the exponent of the backoff.
    pub window_attempts: u32,
    pub created_at: Timestamp,
    /// Start of the retry window: creation, or the last replay.
    pub queued_at: Timestamp,
    /// Unix milliseconds of the next attempt; set while pending.
    pub next_attempt_ms: Option<i64>,
    pub last_attempt_at: Option<Timestamp>,
    pub last_status_code: Option<u16>,
    /// A short fixed code (`timeout`, `connection_failed`, `http_status`, ...), never a
    /// receiver's text.
    pub last_error: Option<String>,
    pub delivered_at: Option<Timestamp>,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx status.
    Delivered(u16),
    /// Any other status: retried.
    Status(u16),
    /// No answer (`timeout`, `connection_failed`, ...): retried.
    Unreachable(&'static str),
    /// Cannot ever succeed (e.g. `event_gone`): failed at once.
    Permanent(&'static str),
}

/// A webhook's retry settings.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub first_retry_ms: i64,
    pub max_retry_ms: i64,
}

pub fn delivery_id(event_id: u64, webhook: &str) -> String {
    format!("msg_{event_id:016x}_{webhook}")
}

/// Whether `s` has the form of a delivery id (for validating the listing's cursor).
pub fn looks_like_delivery_id(s: &str) -> bool {
    s.strip_prefix("msg_")
        .and_then(|rest| rest.split_once('_'))
        .is_some_and(|(hex, hook)| {
            hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && !hook.is_empty()
        })
}

impl Delivery {
    pub fn new(event_id: u64, event_type: &str, webhook: &str, now_ms: i64) -> Self {
        let now = now_ms.div_euclid(1000);
        Delivery {
            id: delivery_id(event_id, webhook),
            webhook: webhook.to_string(),
            event_id,
            event_type: event_type.to_string(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            window_attempts: 0,
            created_at: now,
            queued_at: now,
            next_attempt_ms: Some(now_ms),
            last_attempt_at: None,
            last_status_code: None,
            last_error: None,
            delivered_at: None,
        }
    }

    /// Applies an attempt's outcome. `jitter` in [0, 1) spreads retries over ±25% of the delay,
    /// so receivers coming back are not hit by every sender at once.
    pub fn record(&mut self, outcome: &Outcome, now_ms: i64, policy: RetryPolicy, jitter: f64) {
        let now = now_ms.div_euclid(1000);
        self.attempts += 1;
        self.window_attempts += 1;
        self.last_attempt_at = Some(now);
        let (code, error) = match outcome {
            Outcome::Delivered(code) => {
                self.status = DeliveryStatus::Delivered;
                self.delivered_at = Some(now);
                self.next_attempt_ms = None;
                self.last_status_code = Some(*code);
                self.last_error = None;
                return;
            }
            Outcome::Status(code) => (Some(*code), "http_status"),
            Outcome::Unreachable(e) | Outcome::Permanent(e) => (None, *e),
        };
        self.last_status_code = code;
        self.last_error = Some(error.to_string());
        let next = now_ms + retry_delay_ms(self.window_attempts, policy.first_retry_ms, jitter);
        let window_end = self.queued_at * 1000 + policy.max_retry_ms;
        if matches!(outcome, Outcome::Permanent(_)) || next > window_end {
            self.status = DeliveryStatus::Failed;
            self.next_attempt_ms = None;
        } else {
            self.next_attempt_ms = Some(next);
        }
    }

    /// Queues a delivered or failed delivery again with a fresh retry window. `false` when it
    /// is still pending.
    pub fn requeue(&mut self, now_ms: i64) -> bool {
        if self.status == DeliveryStatus::Pending {
            return false;
        }
        self.status = DeliveryStatus::Pending;
        self.queued_at = now_ms.div_euclid(1000);
        self.window_attempts = 0;
        self.next_attempt_ms = Some(now_ms);
        true
    }
}

/// The delay after the `n`th failed attempt: `first * 2^(n-1)`, capped at an hour, ±25%.
pub fn retry_delay_ms(n: u32, first_ms: i64, jitter: f64) -> i64 {
    let base = first_ms
        .saturating_mul(1i64 << n.saturating_sub(1).min(30))
        .min(MAX_DELAY_MS);
    // Milliseconds fit f64 exactly far beyond an hour.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let spread = (base as f64 * (jitter.clamp(0.0, 1.0) - 0.5) / 2.0) as i64;
    base + spread
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        first_retry_ms: 5_000,
        max_retry_ms: 60_000,
    };

    #[test]
    fn delays_double_with_jitter_and_cap() {
        assert_eq!(retry_delay_ms(1, 5_000, 0.5), 5_000);
        assert_eq!(retry_delay_ms(2, 5_000, 0.5), 10_000);
        assert_eq!(retry_delay_ms(3, 5_000, 0.0), 15_000);
        assert_eq!(retry_delay_ms(3, 5_000, 1.0), 25_000);
        assert_eq!(retry_delay_ms(40, 5_000, 0.5), MAX_DELAY_MS);
    }

    #[test]
    fn retries_until_the_window_ends_then_fails_and_replay_reopens_it() {
        let t0 = 1_000_000_000;
        let mut d = Delivery::new(7, "connection.connected", "hook", t0);
        assert_eq!(d.id, "msg_0000000000000007_hook");
        assert!(looks_like_delivery_id(&d.id));
        assert!(!d.clone().requeue(t0), "pending cannot be replayed");
        let mut t = t0;
        let mut attempts = 0;
        while d.status == DeliveryStatus::Pending {
            t = d.next_attempt_ms.unwrap();
            d.record(&Outcome::Status(500), t, POLICY, 0.5);
            attempts += 1;
        }
        // 0, +5 s, +10 s, +20 s; the next (+40 s) would end after 60 s.
        assert_eq!(attempts, 4);
        assert_eq!(t - t0, 35_000);
        assert_eq!(d.status, DeliveryStatus::Failed);
        assert_eq!(d.last_status_code, Some(500));
        assert_eq!(d.last_error.as_deref(), Some("http_status"));

        assert!(d.requeue(t + 1_000));
        assert_eq!(d.next_attempt_ms, Some(t + 1_000));
        d.record(&Outcome::Delivered(204), t + 1_000, POLICY, 0.5);
        assert_eq!(d.status, DeliveryStatus::Delivered);
        assert_eq!(d.attempts, 5);
        assert_eq!(d.last_error, None);
    }

    #[test]
    fn a_permanent_error_fails_at_once() {
        let mut d = Delivery::new(1, "link.created", "hook", 0);
        d.record(&Outcome::Permanent("event_gone"), 0, POLICY, 0.5);
        assert_eq!(d.status, DeliveryStatus::Failed);
        assert_eq!(d.next_attempt_ms, None);
    }
}
