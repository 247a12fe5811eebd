//! Sealed-value decoding. Arbitrary bytes never open; a value sealed here opens to what was
//! sealed, and with any one byte changed, or in another row, it does not.
#![no_main]

use std::sync::OnceLock;

use connect_appliance::vault::Keyring;
use libfuzzer_sys::fuzz_target;

fn ring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(|| Keyring::generate("db_fuzz"))
}

fuzz_target!(|data: &[u8]| {
    let ring = ring();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        assert!(ring.open("credentials", "conn_fuzz", rest).is_err());
        return;
    }
    let sealed = ring.seal("credentials", "conn_fuzz", rest).expect("seal");
    let opened = ring
        .open("credentials", "conn_fuzz", &sealed)
        .expect("open");
    assert_eq!(opened.as_slice(), rest);
    assert!(ring.open("credentials", "conn_other", &sealed).is_err());
    let mut tampered = sealed.clone();
    let at = usize::from(mode) * 31 % tampered.len();
    tampered[at] ^= mode | 1;
    assert!(ring.open("credentials", "conn_fuzz", &tampered).is_err());
});
