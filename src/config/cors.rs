//! `[cors]`: the web origins whose pages may call `/v1` from a browser and receive the outcome of
//! a connect popup (connect.js). Empty by default: no CORS headers at all.

use serde::Deserialize;
use url::Url;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins such as `https://app.example.com`; after [`CorsConfig::normalize`] each is in the
    /// form browsers send in `Origin` (no trailing slash, no default port).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

impl CorsConfig {
    /// Checks every entry is an origin (https, or http on loopback; no path, query, fragment,
    /// user info or wildcard) and rewrites it to its serialized form. Errors are `(key, message)`.
    pub fn normalize(&mut self) -> Result<(), (String, String)> {
        for (i, entry) in self.allowed_origins.iter_mut().enumerate() {
            let key = format!("cors.allowed_origins[{i}]");
            *entry = origin_of(entry).map_err(|m| (key, m))?;
        }
        Ok(())
    }
}

fn origin_of(text: &str) -> Result<String, String> {
    const EXPECTED: &str =
        "an origin is a scheme, a host and an optional port, such as \"https://app.example.com\"";
    let url =
        Url::parse(text).map_err(|_| format!("expected an origin, got \"{text}\"; {EXPECTED}"))?;
    super::check_http_url(&url, false).map_err(|m| format!("{m}; {EXPECTED}"))?;
    let plain_host = match url.host() {
        Some(url::Host::Domain(d)) => d
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'),
        _ => true,
    };
    if !plain_host || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "expected an origin without wildcard, query or fragment, got \"{text}\"; {EXPECTED}"
        ));
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalize(origins: &[&str]) -> Result<Vec<String>, (String, String)> {
        let mut c = CorsConfig {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
        };
        c.normalize().map(|()| c.allowed_origins)
    }

    #[test]
    fn origins_are_normalized() {
        let got = normalize(&[
            "https://app.example.com",
            "https://App.Example.com:443/",
            "https://app.example.com:8443",
            "http://127.0.0.1:3000",
            "http://localhost:5173/",
            "http://[::1]:8080",
        ])
        .unwrap();
        assert_eq!(
            got,
            [
                "https://app.example.com",
                "https://app.example.com",
                "https://app.example.com:8443",
                "http://127.0.0.1:3000",
                "http://localhost:5173",
                "http://[::1]:8080",
            ]
        );
    }

    #[test]
    fn non_origins_are_refused_with_the_key() {
        for (i, bad) in [
            "*",
            "null",
            "app.example.com",
            "http://app.example.com",
            "https://app.example.com/path",
            "https://app.example.com/?x=1",
            "https://app.example.com#f",
            "https://user:pw@app.example.com",
            "ftp://app.example.com",
            "https://*.example.com",
        ]
        .iter()
        .enumerate()
        {
            let mut list = vec!["https://ok.example.com"; i];
            list.push(bad);
            let (key, message) = normalize(&list).expect_err(bad);
            assert_eq!(key, format!("cors.allowed_origins[{i}]"), "{bad}");
            assert!(message.starts_with("expected"), "{bad}: {message}");
        }
    }
}
