//! Config::parse on arbitrary text: never panics (error messages slice the text around the
//! error's position), and accepting is deterministic.
#![no_main]

use std::path::Path;

use connect_appliance::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |k: &str| (k == "FUZZ_SECRET").then(|| "from-env".to_string());
    let first = Config::parse(text, "fuzz.toml", Path::new("/etc/ca"), &env);
    let again = Config::parse(text, "fuzz.toml", Path::new("/etc/ca"), &env);
    assert_eq!(first.is_ok(), again.is_ok());
    if let Ok(config) = first {
        // Relative paths are resolved against the config's directory.
        assert!(config.storage.path.is_absolute());
        assert!(config.vault.identity_file.is_absolute());
    }
});
