//! Proxy path normalisation (S14): whatever the caller's path and query, an accepted target
//! keeps the base's origin, stays under its path, climbs nowhere, and survives a reparse
//! unchanged (the upstream parses what we send).
#![no_main]

use connect_appliance::connections::build_target;
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;
use url::Url;

const BASES: [&str; 4] = [
    "https://api.example.com/v2/",
    "https://api.example.com",
    "http://127.0.0.1:8080/base/path",
    "https://acme.myshopify.com/admin/api/2024-10",
];

// Input: one byte choosing the base, then the request's `path?query` after `/proxy/`.
fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(rest) = std::str::from_utf8(rest) else {
        return;
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let base = Url::parse(BASES[usize::from(which) % BASES.len()]).expect("base");
    let Ok(url) = build_target(&base, path, query) else {
        return;
    };
    assert_eq!(url.scheme(), base.scheme());
    assert_eq!(url.host(), base.host());
    assert_eq!(url.port_or_known_default(), base.port_or_known_default());
    assert!(url.username().is_empty() && url.password().is_none());
    assert!(url.fragment().is_none());
    let prefix = base.path().trim_end_matches('/');
    let under = url
        .path()
        .strip_prefix(&format!("{prefix}/"))
        .unwrap_or_else(|| panic!("{url} left {base}"));
    for segment in under.split('/') {
        let decoded = percent_decode_str(segment).decode_utf8_lossy();
        assert!(
            !segment.is_empty() && decoded != "." && decoded != "..",
            "{url}"
        );
    }
    assert_eq!(Url::parse(url.as_str()).expect("reparse"), url);
});
