//! The OAuth callback's query string, parsed by the route's own extractor, then checked: what
//! passes the checks is bounded and safe to echo into a URL.
#![no_main]

use connect_appliance::connections::ProviderAnswer;
use connect_appliance::http::pages::parse_callback_query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(params) = parse_callback_query(query) else {
        return;
    };
    if let Some(state) = params.state() {
        assert!((1..=256).contains(&state.len()));
    }
    match params.answer() {
        ProviderAnswer::Refused { code, description } => {
            assert!(!code.is_empty() && code.len() <= 64, "{code:?}");
            assert!(code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));
            assert!(description.is_none_or(|d| d.chars().count() <= 300));
            assert!(params.error.is_some());
        }
        ProviderAnswer::Code(code) => {
            assert!((1..=4096).contains(&code.len()));
            assert!(params.error.is_none());
        }
        ProviderAnswer::Nothing => assert!(params.error.is_none()),
    }
});
