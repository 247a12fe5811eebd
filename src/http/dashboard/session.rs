//! Dashboard sessions, held in memory only: the browser gets an opaque random id, the server keeps
//! its SHA-256 with a CSRF token and two deadlines (idle and absolute). A restart signs everyone
//! out, which is the safe direction for a one- or two-person admin surface. No actix here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::vault::random_bytes;

/// A session unused for this long is gone.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// No session lives longer than this, used or not.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
/// Beyond this many live sessions the least recently used one is dropped.
const MAX_SESSIONS: usize = 100;
/// How long an IP that exhausted its failed-sign-in budget may not try any key.
pub const LOCKOUT: Duration = Duration::from_secs(60);

struct Session {
    csrf: String,
    /// Who signed in (the admin key's id), for the audit log.
    actor: String,
    created: Instant,
    last_seen: Instant,
}

pub struct Sessions {
    live: Mutex<HashMap<[u8; 32], Session>>,
    /// Binds the sign-in form's token to its cookie, so the form needs no server-side state.
    form_key: zeroize::Zeroizing<[u8; 32]>,
    lockouts: Mutex<HashMap<IpAddr, Instant>>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            live: Mutex::default(),
            form_key: zeroize::Zeroizing::new(random_bytes::<32>()),
            lockouts: Mutex::default(),
        }
    }
}

/// 256 random bits, URL-safe.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Constant-time equality for tokens (lengths are not secret).
pub fn tokens_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sessions {
    /// Starts a signed-in session; returns the id for the cookie. Always a fresh id, so a
    /// session can never be fixed by whoever set a cookie before sign-in.
    pub fn create(&self, now: Instant, actor: String) -> String {
        let id = random_token();
        let mut live = lock(&self.live);
        live.retain(|_, s| alive(s, now));
        if live.len() >= MAX_SESSIONS {
            if let Some(oldest) = live
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k)
            {
                live.remove(&oldest);
            }
        }
        live.insert(
            key(&id),
            Session {
                csrf: random_token(),
                actor,
                created: now,
                last_seen: now,
            },
        );
        id
    }

    /// Who signed in to session `id`.
    pub fn actor(&self, id: &str) -> Option<String> {
        lock(&self.live).get(&key(id)).map(|s| s.actor.clone())
    }

    /// The CSRF token of the live session `id` (which counts as use), or `None`.
    pub fn csrf_for(&self, id: &str, now: Instant) -> Option<String> {
        let mut live = lock(&self.live);
        let k = key(id);
        match live.get_mut(&k) {
            Some(s) if alive(s, now) => {
                s.last_seen = now;
                Some(s.csrf.clone())
            }
            Some(_) => {
                live.remove(&k);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, id: &str) {
        lock(&self.live).remove(&key(id));
    }

    /// The sign-in form's CSRF token for the nonce in its cookie.
    pub fn sign_in_token(&self, nonce: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.form_key.as_slice())
            .expect("HMAC takes keys of any length");
        mac.update(b"connect-appliance dashboard sign-in v1\0");
        mac.update(nonce.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    pub fn sign_in_token_ok(&self, nonce: &str, presented: &str) -> bool {
        !nonce.is_empty() && tokens_equal(&self.sign_in_token(nonce), presented)
    }

    /// Whether `ip` is locked out of sign-in.
    pub fn locked(&self, ip: Option<IpAddr>, now: Instant) -> bool {
        let Some(ip) = ip else { return false };
        let mut lockouts = lock(&self.lockouts);
        lockouts.retain(|_, until| *until > now);
        lockouts.contains_key(&ip)
    }

    pub fn lock_out(&self, ip: Option<IpAddr>, now: Instant) {
        if let Some(ip) = ip {
            lock(&self.lockouts).insert(ip, now + LOCKOUT);
        }
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.saturating_duration_since(s.last_seen) < IDLE
        && now.saturating_duration_since(s.created) < ABSOLUTE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_or_old() {
        let store = Sessions::default();
        let t0 = Instant::now();
        let id = store.create(t0, "key:test".into());
        let csrf = store.csrf_for(&id, t0).expect("live");
        assert_eq!(csrf.len(), 43);
        assert_ne!(csrf, id);
        // Use keeps it alive past the idle limit...
        let mut t = t0;
        while t < t0 + ABSOLUTE - IDLE {
            t += IDLE / 2;
            assert!(store.csrf_for(&id, t).is_some());
        }
        // ...but not past the absolute one.
        assert!(store.csrf_for(&id, t0 + ABSOLUTE).is_none());
        let id = store.create(t0, "key:test".into());
        assert!(store.csrf_for(&id, t0 + IDLE).is_none(), "idle");
        assert!(store.csrf_for("forged", t0).is_none());
    }

    #[test]
    fn removal_and_capacity() {
        let store = Sessions::default();
        let t0 = Instant::now();
        let first = store.create(t0, "key:test".into());
        store.remove(&first);
        assert!(store.csrf_for(&first, t0).is_none());
        let ids: Vec<String> = (0..=MAX_SESSIONS as u64)
            .map(|i| store.create(t0 + Duration::from_secs(i), "key:test".into()))
            .collect();
        let now = t0 + Duration::from_secs(MAX_SESSIONS as u64 + 1);
        assert!(store.csrf_for(&ids[0], now).is_none(), "oldest evicted");
        assert!(store.csrf_for(&ids[MAX_SESSIONS], now).is_some());
    }

    #[test]
    fn sign_in_tokens_and_lockouts() {
        let store = Sessions::default();
        let token = store.sign_in_token("nonce-a");
        assert!(store.sign_in_token_ok("nonce-a", &token));
        assert!(!store.sign_in_token_ok("nonce-b", &token));
        assert!(!store.sign_in_token_ok("", &store.sign_in_token("")));
        assert!(!Sessions::default().sign_in_token_ok("nonce-a", &token));
        let ip = Some(IpAddr::from([192, 0, 2, 1]));
        let t0 = Instant::now();
        assert!(!store.locked(ip, t0));
        store.lock_out(ip, t0);
        assert!(store.locked(ip, t0 + LOCKOUT / 2));
        assert!(!store.locked(ip, t0 + LOCKOUT));
    }
}
