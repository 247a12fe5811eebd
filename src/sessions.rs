//! Tenant sessions: short-lived tokens a browser may hold to list its own tenant's connections
//! and create links for its own tenant, and nothing else. They are stateless (HMAC-SHA256 over
//! tenant and expiry, keyed by a secret derived from the vault), so checking one costs no read.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::connections::model::{now, Timestamp};

/// Session tokens start with this, so the auth layer tells them from admin keys at a glance.
pub const PREFIX: &str = "ts_";
pub const DEFAULT_TTL: i64 = 900;
pub const MAX_TTL: i64 = 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSession {
    pub tenant_id: String,
    pub expires_at: Timestamp,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    t: String,
    e: Timestamp,
    /// Random, so two sessions issued in the same second differ.
    n: String,
}

pub struct SessionKey {
    key: zeroize::Zeroizing<[u8; 32]>,
}

impl SessionKey {
    pub fn new(key: [u8; 32]) -> Self {
        SessionKey {
            key: zeroize::Zeroizing::new(key),
        }
    }

    fn mac(&self, payload: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_slice())
            .expect("HMAC takes keys of any length");
        mac.update(b"connect-appliance tenant session v1\0");
        mac.update(payload.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A token for `tenant_id` valid for `ttl` seconds.
    pub fn issue(&self, tenant_id: &str, ttl: i64) -> (String, Timestamp) {
        let expires_at = now() + ttl;
        let claims = Claims {
            t: tenant_id.to_string(),
            e: expires_at,
            n: hex::encode(crate::vault::random_bytes::<8>()),
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let sig = URL_SAFE_NO_PAD.encode(self.mac(&payload));
        (format!("{PREFIX}{payload}.{sig}"), expires_at)
    }

    /// The session a token carries, when its signature holds and it has not expired.
    pub fn verify(&self, token: &str) -> Option<TenantSession> {
        let (payload, sig) = token.strip_prefix(PREFIX)?.split_once('.')?;
        if payload.len() > 2048 {
            return None;
        }
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        if !bool::from(sig.ct_eq(&self.mac(payload))) {
            return None;
        }
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (claims.e > now()).then_some(TenantSession {
            tenant_id: claims.t,
            expires_at: claims.e,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_unaltered_unexpired_and_under_their_key() {
        let key = SessionKey::new([7; 32]);
        let (token, exp) = key.issue("tenant-a", 60);
        let s = key.verify(&token).expect("valid");
        assert_eq!((s.tenant_id.as_str(), s.expires_at), ("tenant-a", exp));
        assert!(SessionKey::new([8; 32]).verify(&token).is_none());
        let (payload, sig) = token.split_once('.').expect("dot");
        let forged = URL_SAFE_NO_PAD.encode(br#"{"t":"tenant-b","e":99999999999,"n":"x"}"#);
        assert!(key.verify(&format!("{PREFIX}{forged}.{sig}")).is_none());
        assert!(key.verify(&format!("{payload}x.{sig}")).is_none());
        let (expired, _) = key.issue("tenant-a", -1);
        assert!(key.verify(&expired).is_none());
        assert!(key.verify("ts_garbage").is_none());
    }
}
