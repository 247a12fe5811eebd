//! Property tests: envelope encryption, the connection state machine and URL templates, each
//! over generated inputs rather than a handful of examples.

use std::collections::BTreeMap;

use connect_appliance::catalog::{catalog, check_param_value, expand, placeholders};
use connect_appliance::connections::model::{Connection, Status, TokenSet};
use connect_appliance::vault::Keyring;
use proptest::prelude::*;
use proptest::sample::Index;

/// Failures print their minimal input; proptest cannot find a source root for files under
/// tests/ to persist them in.
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Row keys and table names never contain NUL (they are constants, ids and hex hashes): the
/// associated data separates its fields with NUL, so only NUL-free names are distinct AAD.
fn name() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,40}"
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn sealed_values_round_trip_and_open_only_unchanged_in_their_row(
        table in name(),
        key in name(),
        other in name(),
        plain in prop::collection::vec(any::<u8>(), 0..600),
        at in any::<Index>(),
        bit in 0u8..8,
    ) {
        let ring = Keyring::generate("db_prop");
        let sealed = ring.seal(&table, &key, &plain).expect("seal");
        let opened = ring.open(&table, &key, &sealed).expect("open");
        prop_assert_eq!(opened.as_slice(), &plain[..]);

        let mut tampered = sealed.clone();
        tampered[at.index(sealed.len())] ^= 1 << bit;
        prop_assert!(ring.open(&table, &key, &tampered).is_err());
        prop_assert!(ring.open(&table, &key, &sealed[..at.index(sealed.len())]).is_err());
        let mut longer = sealed.clone();
        longer.push(0);
        prop_assert!(ring.open(&table, &key, &longer).is_err());

        if other != key {
            prop_assert!(ring.open(&table, &other, &sealed).is_err());
        }
        if other != table {
            prop_assert!(ring.open(&other, &key, &sealed).is_err());
        }
        // Same table and key, another vault's keys.
        prop_assert!(Keyring::generate("db_prop").open(&table, &key, &sealed).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_open(table in name(), key in name(), junk in prop::collection::vec(any::<u8>(), 0..200)) {
        prop_assert!(Keyring::generate("db_prop").open(&table, &key, &junk).is_err());
    }
}

#[derive(Debug, Clone)]
enum Op {
    Connected(Tokens),
    Refreshed(Tokens),
    Failed(String),
    Expired(String),
    Revoked,
}

#[derive(Debug, Clone)]
struct Tokens {
    refresh: bool,
    expires_at: Option<i64>,
    scopes: Vec<String>,
}

impl Tokens {
    fn set(&self) -> TokenSet {
        TokenSet {
            access_token: "a".into(),
            token_type: "Bearer".into(),
            refresh_token: self.refresh.then(|| "r".into()),
            expires_at: self.expires_at,
            scopes: self.scopes.clone(),
            id_token: None,
            extra: serde_json::Map::new(),
            obtained_at: 0,
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    let tokens = (
        any::<bool>(),
        proptest::option::of(0i64..4_000_000_000),
        prop::collection::vec("[a-z:.]{1,12}", 0..3),
    )
        .prop_map(|(refresh, expires_at, scopes)| Tokens {
            refresh,
            expires_at,
            scopes,
        });
    prop_oneof![
        tokens.clone().prop_map(Op::Connected),
        tokens.prop_map(Op::Refreshed),
        "[a-z_]{1,16}".prop_map(Op::Failed),
        "[a-z_]{1,16}".prop_map(Op::Expired),
        Just(Op::Revoked),
    ]
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn connection_state_machine_keeps_its_invariants(ops in prop::collection::vec(op(), 0..24)) {
        let mut c = Connection::new_pending("tenant", "plugin", vec!["initial".into()]);
        let mut refreshable = false;
        let mut expires_at = None;
        let mut scopes = c.scopes.clone();
        for op in &ops {
            // Only connected connections are refreshed: callers check under the per-connection
            // lock that revocation also takes (the model itself does not refuse).
            if matches!(op, Op::Refreshed(_)) && c.status != Status::Connected {
                continue;
            }
            let before = c.clone();
            match op {
                Op::Connected(t) => c.mark_connected(&t.set()),
                Op::Refreshed(t) => c.mark_refreshed(&t.set()),
                Op::Failed(code) => c.mark_failed(code, "m"),
                Op::Expired(code) => c.mark_expired(code, "m"),
                Op::Revoked => c.mark_revoked(),
            }
            // What the last token set (or a revocation) says.
            match op {
                Op::Connected(t) | Op::Refreshed(t) => {
                    refreshable = t.refresh;
                    expires_at = t.expires_at;
                    if !t.scopes.is_empty() {
                        scopes.clone_from(&t.scopes);
                    }
                    prop_assert!(c.last_error.is_none());
                }
                Op::Revoked => {
                    refreshable = false;
                    expires_at = None;
                }
                Op::Failed(code) | Op::Expired(code) => {
                    prop_assert_eq!(&c.last_error.as_ref().expect("last_error").code, code);
                }
            }
            prop_assert_eq!(c.refreshable, refreshable, "after {:?}", op);
            prop_assert_eq!(c.expires_at, expires_at, "after {:?}", op);
            prop_assert_eq!(&c.scopes, &scopes);
            prop_assert!(c.updated_at >= before.updated_at && c.updated_at >= c.created_at);
            let expected = match op {
                Op::Connected(_) => Status::Connected,
                Op::Refreshed(_) => before.status,
                // A failed re-authorisation never takes a working connection away.
                Op::Failed(_) if before.status == Status::Connected => Status::Connected,
                Op::Failed(_) => Status::Failed,
                Op::Expired(_) => Status::Expired,
                Op::Revoked => Status::Revoked,
            };
            prop_assert_eq!(c.status, expected, "after {:?}", op);
            match c.status {
                Status::Connected => prop_assert!(c.connected_at.is_some()),
                Status::Expired => prop_assert!(c.expired_at.is_some()),
                Status::Revoked => prop_assert!(c.revoked_at.is_some() && !c.refreshable),
                Status::Pending | Status::Failed => {}
            }
            if let Op::Connected(_) = op {
                prop_assert!(c.revoked_at.is_none() && c.expired_at.is_none());
            }
        }
    }
}

/// (scheme, authority, path, query) of a URL template, split as text.
fn parts(template: &str) -> (&str, &str, &str, Option<&str>) {
    let (scheme, rest) = template.split_once("://").expect("absolute template");
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(end);
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    (
        scheme,
        authority,
        if path.is_empty() { "/" } else { path },
        query,
    )
}

fn fill(text: &str, values: &BTreeMap<String, String>) -> String {
    values.iter().fold(text.to_string(), |t, (k, v)| {
        t.replace(&format!("{{{k}}}"), v)
    })
}

/// Every URL in the built-in catalog and some made-up shapes, each with a placeholder.
fn templates() -> Vec<String> {
    let mut out: Vec<String> = catalog()
        .iter()
        .flat_map(|(_, e)| {
            [
                &e.authorization_url,
                &e.token_url,
                &e.revocation_url,
                &e.userinfo_url,
                &e.api_base_url,
            ]
            .into_iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
        })
        .filter(|u| u.contains('{'))
        .collect();
    out.extend(
        [
            "https://{a}/x",
            "https://api.{a}.example.com/v1/{b}?tenant={b}",
            "https://{a}-{b}.example.com:8443/{a}/",
            "http://127.0.0.1:9/{a}",
        ]
        .map(String::from),
    );
    assert!(out.len() > 10, "the catalog has templated URLs");
    out
}

/// Values that pass `check_param_value`: plain labels, and strings that mix in characters which
/// would move a host or a path if they were let through (filtered out by the check itself).
fn value() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z][a-z0-9]{0,11}", r"[A-Za-z0-9._@/:?#%\\-]{1,16}"]
        .prop_filter("passes check_param_value", |v| check_param_value(v).is_ok())
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn template_values_cannot_move_a_url_off_its_host(
        which in any::<Index>(),
        vals in prop::collection::vec(value(), 3),
    ) {
        let all = templates();
        let template = &all[which.index(all.len())];
        let mut names = placeholders(template);
        names.sort();
        names.dedup();
        let values: BTreeMap<String, String> =
            names.iter().cloned().zip(vals.iter().cloned()).collect();
        let (scheme, authority, path, query) = parts(template);
        // (A label starting with a letter: a numeric last label would read as an IPv4 address.)
        let simple = values.values().all(|v| {
            v.starts_with(|c: char| c.is_ascii_lowercase())
                && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
        let url = match expand(template, &values) {
            Ok(url) => url,
            // Refusing is always safe, but plain labels must work.
            Err(e) => {
                prop_assert!(!simple, "{} with {:?}: {}", template, values, e);
                return Ok(());
            }
        };
        prop_assert_eq!(url.scheme(), scheme);
        prop_assert!(url.username().is_empty() && url.password().is_none(), "{}", url);
        prop_assert!(url.fragment().is_none());
        let host = url.host_str().unwrap_or_default();
        let literal_host = authority.split(':').next().unwrap_or_default();
        let prefix = &literal_host[..literal_host.find('{').unwrap_or(literal_host.len())];
        let suffix = &literal_host[literal_host.rfind('}').map_or(0, |i| i + 1)..];
        prop_assert!(
            host.starts_with(&prefix.to_ascii_lowercase()) && host.ends_with(&suffix.to_ascii_lowercase()),
            "{} expanded to host {}", template, host
        );
        let port = authority.split_once(':').map(|(_, p)| p.parse::<u16>().expect("port"));
        prop_assert_eq!(url.port(), port);
        prop_assert_eq!(url.path(), fill(path, &values));
        prop_assert_eq!(url.query().map(String::from), query.map(|q| fill(q, &values)));
    }

    #[test]
    fn values_failing_the_character_check_are_refused(bad in ".{0,40}") {
        prop_assume!(check_param_value(&bad).is_err());
        let values = BTreeMap::from([("a".to_string(), bad)]);
        let (in_host, in_path) = ("https://{a}.example.com/x", "https://api.example.com/{a}");
        prop_assert!(expand(in_host, &values).is_err());
        prop_assert!(expand(in_path, &values).is_err());
    }
}
