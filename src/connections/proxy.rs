//! Where a proxied request may go: always under the plugin's `api_base_url` (S14).

use url::Url;

use super::model::Connection;
use super::{ConnectError, Connections};
use crate::oauth::Placement;

/// A request to forward: the caller's method, the path after `/proxy/`, query, the headers the
/// caller may pass on, and the body.
pub struct ProxyRequest {
    pub method: reqwest::Method,
    pub path: String,
    pub query: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: ProxyBody,
}

pub enum ProxyBody {
    /// Held in memory, so a 401 can be retried once after a refresh.
    Buffered(Vec<u8>),
    /// Passed through as it arrives (large uploads); it cannot be replayed, so a 401 is
    /// answered as is.
    Streaming(reqwest::Body),
}

impl Connections {
    /// The upstream URL for `path` (the part after `/proxy/`, still percent-encoded) and `query`:
    /// under the connection's own API base when the provider gave one, else the plugin's.
    pub fn proxy_target(
        &self,
        connection: &Connection,
        path: &str,
        query: &str,
    ) -> Result<Url, ConnectError> {
        let plugin = &connection.plugin;
        let provider = self.provider(plugin)?;
        let own = connection
            .api_base_url
            .as_deref()
            .and_then(|u| Url::parse(u).ok());
        let base = match own {
            Some(url) => url,
            None => provider
                .api_base(&connection.params)
                .map_err(|e| ConnectError::ProxyNotConfigured(e.to_string()))?
                .ok_or_else(|| {
                    ConnectError::ProxyNotConfigured(format!(
                        "plugin \"{plugin}\" has no api_base_url"
                    ))
                })?,
        };
        build_target(&base, path, query)
    }

    /// Forwards with the connection's access token. On a 401 a buffered request is retried
    /// once after one refresh.
    pub async fn proxy(
        &self,
        id: &str,
        req: ProxyRequest,
    ) -> Result<reqwest::Response, ConnectError> {
        let connection = self.get(id).await?;
        let target = self.proxy_target(&connection, &req.path, &req.query)?;
        let placement = self.provider(&connection.plugin)?.placement();
        let token = self.access_token(id, false).await?;
        let send = |token: String, body: reqwest::Body| {
            self.forward(&target, &req.method, &req.headers, body, &placement, token)
        };
        let buffered = match req.body {
            ProxyBody::Streaming(body) => return send(token.access_token, body).await,
            ProxyBody::Buffered(ref bytes) => bytes.clone(),
        };
        let response = send(token.access_token.clone(), buffered.clone().into()).await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let fresh = self.access_token(id, true).await?;
        if fresh.access_token == token.access_token {
            return Ok(response);
        }
        send(fresh.access_token, buffered.into()).await
    }

    async fn forward(
        &self,
        target: &Url,
        method: &reqwest::Method,
        headers: &reqwest::header::HeaderMap,
        body: reqwest::Body,
        placement: &Placement<'_>,
        token: String,
    ) -> Result<reqwest::Response, ConnectError> {
        let mut url = target.clone();
        let mut headers = headers.clone();
        match placement {
            Placement::Query(name) => {
                url.query_pairs_mut().append_pair(name, &token);
            }
            Placement::Header { name, prefix } => {
                let value = reqwest::header::HeaderValue::from_str(&format!("{prefix}{token}"))
                    .map_err(|_| {
                        ConnectError::Internal(
                            "the stored credential is not a valid header value".into(),
                        )
                    })?;
                let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| ConnectError::Internal("invalid api_key_header".into()))?;
                headers.insert(name, value);
            }
        }
        self.backchannel
            .streaming()
            .request(method.clone(), url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                let why = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                ConnectError::Upstream(why.into())
            })
    }
}

/// Joins without URL resolution: no segment may climb (`..`, also percent-encoded), no
/// backslashes, no empty segments (`//host`), no scheme; the result must keep the base's origin
/// and path prefix.
pub fn build_target(base: &Url, path: &str, query: &str) -> Result<Url, ConnectError> {
    let bad = |why: &str| ConnectError::InvalidProxyPath(why.to_string());
    if path.is_empty() {
        return Err(bad("the path after /proxy/ is empty"));
    }
    let scheme_like = path.split('/').next().is_some_and(|s| s.contains(':'));
    if path.contains('\\') || path.contains('#') || scheme_like {
        return Err(bad(
            "absolute URLs, fragments and backslashes are not allowed",
        ));
    }
    // URL parsers drop tabs and newlines, so "..\t" would pass the segment checks below and
    // then become "..": refuse control characters outright (found by fuzzing).
    if path.chars().chain(query.chars()).any(char::is_control) {
        return Err(bad("control characters are not allowed"));
    }
    for segment in path.split('/') {
        let decoded = percent_decode(segment);
        if segment.is_empty()
            || decoded == "."
            || decoded == ".."
            || decoded.contains('/')
            || decoded.contains('\\')
        {
            return Err(bad(
                "the path may not contain empty, '.' or '..' segments or encoded slashes",
            ));
        }
    }
    let prefix = base.path().trim_end_matches('/');
    let mut url = base.clone();
    url.set_path(&format!("{prefix}/{path}"));
    url.set_query((!query.is_empty()).then_some(query));
    url.set_fragment(None);
    let same_origin = url.scheme() == base.scheme()
        && url.host() == base.host()
        && url.port_or_known_default() == base.port_or_known_default();
    if !same_origin || !url.path().starts_with(&format!("{prefix}/")) {
        return Err(bad("the path leaves the plugin's api_base_url"));
    }
    Ok(url)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_under_the_base() {
        let base = Url::parse("https://api.example.com/v2/").unwrap();
        let ok = build_target(&base, "users/me", "a=1").unwrap();
        assert_eq!(ok.as_str(), "https://api.example.com/v2/users/me?a=1");
        let ok = build_target(&base, "files/a%20b.txt", "").unwrap();
        assert_eq!(ok.as_str(), "https://api.example.com/v2/files/a%20b.txt");
        for evil in [
            "../admin",
            "a/../../admin",
            "%2e%2e/admin",
            "%2E%2E/admin",
            "a/%2e%2e%2fadmin",
            "/evil.com/x",
            "//evil.com/x",
            "http://evil.com/x",
            "https:evil.com",
            "a\\..\\b",
            "a/./b",
            "a//b",
            "",
            "x#frag",
            "\t",
            "a/.\t./b",
            "..\t/..\t/admin",
            "a\n/b",
        ] {
            assert!(
                build_target(&base, evil, "").is_err(),
                "{evil} was accepted"
            );
        }
        // '@' is just a character in a path segment; the host cannot change.
        let at = build_target(&base, "@evil.com", "").unwrap();
        assert_eq!(at.host_str(), Some("api.example.com"));
    }
}
