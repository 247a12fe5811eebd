//! Envelope encryption. The age X25519 identity (the KEK) wraps a keyring: the database id, the
//! data keys (by key id) and the blind-index secret. Values are sealed with XChaCha20-Poly1305
//! under the active data key; associated data binds each value to its table and row key.

use std::collections::BTreeMap;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::VaultError;

const SEAL_VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + 24;
const KEYRING_MAGIC: &str = "connect-appliance keyring v1";

type Key = Zeroizing<[u8; 32]>;

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // getrandom only fails when the OS has no entropy source at all; nothing can run safely then.
    #[allow(clippy::expect_used)]
    getrandom::getrandom(&mut buf).expect("the operating system's random source failed");
    buf
}

#[derive(Clone)]
pub struct Keyring {
    db_id: String,
    active: u32,
    keys: BTreeMap<u32, Key>,
    /// Keys dropped by a finished rotation: no longer stored, still able to open values read
    /// by transactions that began before the last re-encryption, until forgotten.
    retired: BTreeMap<u32, Key>,
    index_key: Key,
    /// HMAC keyed with HKDF(index secret, salt = db id, its own info), derived once.
    index_mac: Hmac<Sha256>,
}

fn index_mac(db_id: &str, index_key: &Key) -> Hmac<Sha256> {
    let derived = hkdf::Hkdf::<Sha256>::new(Some(db_id.as_bytes()), index_key.as_slice());
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes is always a valid HKDF-SHA256 output length, and HMAC takes any key length.
    #[allow(clippy::expect_used)]
    derived
        .expand(b"connect-appliance blind-index v1", key.as_mut_slice())
        .expect("valid HKDF length");
    #[allow(clippy::expect_used)]
    <Hmac<Sha256> as Mac>::new_from_slice(key.as_slice()).expect("any key length works")
}

/// What the age envelope carries. The db id is inside so a keyring from another database is
/// refused even when the same identity opens it (age has no associated data of its own).
#[derive(Serialize, Deserialize)]
struct WrappedKeyring {
    magic: String,
    db_id: String,
    active: u32,
    keys: BTreeMap<u32, String>,
    index_secret: String,
}

impl Keyring {
    pub fn generate(db_id: &str) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(1, Zeroizing::new(random_bytes::<32>()));
        let index_key = Zeroizing::new(random_bytes::<32>());
        Keyring {
            db_id: db_id.to_string(),
            active: 1,
            keys,
            retired: BTreeMap::new(),
            index_mac: index_mac(db_id, &index_key),
            index_key,
        }
    }

    pub fn wrap(&self, recipient: &age::x25519::Recipient) -> Result<Vec<u8>, VaultError> {
        let hex_key = |k: &Key| hex::encode(k.as_slice());
        let payload = WrappedKeyring {
            magic: KEYRING_MAGIC.into(),
            db_id: self.db_id.clone(),
            active: self.active,
            keys: self.keys.iter().map(|(id, k)| (*id, hex_key(k))).collect(),
            index_secret: hex_key(&self.index_key),
        };
        let plain = Zeroizing::new(serde_json::to_vec(&payload).map_err(VaultError::corrupt)?);
        age::encrypt(recipient, &plain).map_err(|e| VaultError::Crypto(format!("age: {e}")))
    }

    pub fn unwrap(
        identity: &age::x25519::Identity,
        wrapped: &[u8],
        expected_db_id: &str,
    ) -> Result<Self, VaultError> {
        let plain =
            Zeroizing::new(age::decrypt(identity, wrapped).map_err(|_| VaultError::WrongIdentity)?);
        let payload: WrappedKeyring =
            serde_json::from_slice(&plain).map_err(|_| VaultError::WrongIdentity)?;
        if payload.magic != KEYRING_MAGIC || payload.db_id != expected_db_id {
            return Err(VaultError::Crypto(
                "the keyring belongs to another database".into(),
            ));
        }
        let parse = |h: &str| -> Result<Key, VaultError> {
            let bytes = Zeroizing::new(hex::decode(h).map_err(VaultError::corrupt)?);
            let arr: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| VaultError::Crypto("keyring key has the wrong length".into()))?;
            Ok(Zeroizing::new(arr))
        };
        let mut keys = BTreeMap::new();
        for (id, k) in &payload.keys {
            keys.insert(*id, parse(k)?);
        }
        if !keys.contains_key(&payload.active) {
            return Err(VaultError::Crypto("keyring has no active key".into()));
        }
        let index_key = parse(&payload.index_secret)?;
        Ok(Keyring {
            index_mac: index_mac(&payload.db_id, &index_key),
            db_id: payload.db_id,
            active: payload.active,
            keys,
            retired: BTreeMap::new(),
            index_key,
        })
    }

    /// Adds a fresh data key and makes it the one new values are sealed with.
    pub fn add_data_key(&mut self) -> u32 {
        let newest = self.keys.keys().chain(self.retired.keys()).max();
        let id = newest.copied().unwrap_or(0) + 1;
        self.keys.insert(id, Zeroizing::new(random_bytes::<32>()));
        self.active = id;
        id
    }

    /// Drops every data key but the active one from what is stored (once no value is sealed
    /// under them). They stay usable for opening until [`Keyring::forget_retired`].
    pub fn retire_inactive_keys(&mut self) {
        let active = self.active;
        let old: Vec<u32> = self
            .keys
            .keys()
            .filter(|id| **id != active)
            .copied()
            .collect();
        for id in old {
            if let Some(key) = self.keys.remove(&id) {
                self.retired.insert(id, key);
            }
        }
    }

    /// Forgets retired keys for good (their memory is zeroed on drop).
    pub fn forget_retired(&mut self) {
        self.retired.clear();
    }

    pub fn active_key_id(&self) -> u32 {
        self.active
    }

    /// Stored data keys other than the active one: a rotation is unfinished while any remain.
    pub fn old_key_ids(&self) -> Vec<u32> {
        let active = self.active;
        self.keys
            .keys()
            .filter(|id| **id != active)
            .copied()
            .collect()
    }

    /// The data key id a sealed value was sealed under.
    pub fn key_id_of(sealed: &[u8]) -> Option<u32> {
        (sealed.len() >= HEADER_LEN && sealed[0] == SEAL_VERSION)
            .then(|| u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]))
    }

    fn aad(&self, table: &str, key: &str) -> Vec<u8> {
        format!("connect-appliance/v1\0{}\0{table}\0{key}", self.db_id).into_bytes()
    }

    /// Seals `plaintext` for row `key` of `table`.
    pub fn seal(&self, table: &str, key: &str, plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let dek = self
            .keys
            .get(&self.active)
            .ok_or_else(|| VaultError::Crypto("no active data key".into()))?;
        let cipher = XChaCha20Poly1305::new(dek.as_slice().into());
        let nonce = random_bytes::<24>();
        let aad = self.aad(table, key);
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Crypto("sealing failed".into()))?;
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&self.active.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens a value sealed by [`Keyring::seal`] for the same table and row key.
    pub fn open(
        &self,
        table: &str,
        key: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let fail = || VaultError::Crypto(format!("a value in table {table} failed to decrypt"));
        if sealed.len() < HEADER_LEN + 16 || sealed[0] != SEAL_VERSION {
            return Err(fail());
        }
        let key_id = u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]);
        let dek = self
            .keys
            .get(&key_id)
            .or_else(|| self.retired.get(&key_id))
            .ok_or_else(fail)?;
        let cipher = XChaCha20Poly1305::new(dek.as_slice().into());
        let aad = self.aad(table, key);
        cipher
            .decrypt(
                XNonce::from_slice(&sealed[5..HEADER_LEN]),
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| fail())
    }

    /// Keyed hash for looking rows up by an identifying value without storing it.
    pub fn blind_index(&self, domain: &str, value: &str) -> String {
        let mut mac = self.index_mac.clone();
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_binding() {
        let ring = Keyring::generate("db1");
        let sealed = ring.seal("credentials", "conn_1", b"secret-token").unwrap();
        assert_eq!(
            ring.open("credentials", "conn_1", &sealed)
                .unwrap()
                .as_slice(),
            b"secret-token"
        );
        assert!(ring.open("credentials", "conn_2", &sealed).is_err());
        assert!(ring.open("connections", "conn_1", &sealed).is_err());
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 0x01;
            assert!(
                ring.open("credentials", "conn_1", &tampered).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn keyring_wrap_checks_identity_and_db() {
        let id = age::x25519::Identity::generate();
        let ring = Keyring::generate("db1");
        let wrapped = ring.wrap(&id.to_public()).unwrap();
        let again = Keyring::unwrap(&id, &wrapped, "db1").unwrap();
        let sealed = ring.seal("t", "k", b"v").unwrap();
        assert_eq!(again.open("t", "k", &sealed).unwrap().as_slice(), b"v");
        assert_eq!(
            ring.blind_index("tenant", "a"),
            again.blind_index("tenant", "a")
        );
        assert!(Keyring::unwrap(&id, &wrapped, "db2").is_err());
        let other = age::x25519::Identity::generate();
        assert!(matches!(
            Keyring::unwrap(&other, &wrapped, "db1"),
            Err(VaultError::WrongIdentity)
        ));
    }

    #[test]
    fn retired_keys_open_until_forgotten_and_are_never_stored() {
        let id = age::x25519::Identity::generate();
        let mut ring = Keyring::generate("db1");
        let old = ring.seal("t", "k", b"v").unwrap();
        assert_eq!(ring.add_data_key(), 2);
        assert_eq!(ring.old_key_ids(), vec![1]);
        let new = ring.seal("t", "k", b"v").unwrap();
        assert_eq!(Keyring::key_id_of(&new), Some(2));
        ring.retire_inactive_keys();
        assert!(ring.old_key_ids().is_empty());
        assert_eq!(ring.open("t", "k", &old).unwrap().as_slice(), b"v");
        let stored = Keyring::unwrap(&id, &ring.wrap(&id.to_public()).unwrap(), "db1").unwrap();
        assert!(
            stored.open("t", "k", &old).is_err(),
            "a retired key is not stored"
        );
        assert_eq!(stored.open("t", "k", &new).unwrap().as_slice(), b"v");
        // A later key never reuses a retired id.
        assert_eq!(ring.add_data_key(), 3);
        ring.forget_retired();
        assert!(ring.open("t", "k", &old).is_err());
    }
}
