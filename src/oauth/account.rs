//! What a connection learns about the account behind it: a display name (the GitHub login, the
//! Slack workspace, the Shopify domain) and, for Salesforce-like providers, a per-account API
//! base URL from the token response.

use serde_json::Value;
use url::Url;

use super::{Backchannel, Params, Placement, Provider};
use crate::catalog::HttpMethod;
use crate::connections::model::TokenSet;

const MAX_NAME: usize = 200;

impl Provider {
    /// The account's display name: from the token response when the provider puts it there,
    /// else from its userinfo endpoint. Best effort: `None` on any failure.
    pub async fn account_name(
        &self,
        backchannel: &Backchannel,
        tokens: &TokenSet,
        params: &Params,
    ) -> Option<String> {
        if let Some(pointers) = &self.config.account_name_from_token {
            let extra = Value::Object(tokens.extra.clone());
            if let Some(name) = first_string(&extra, pointers) {
                return Some(name);
            }
        }
        let pointers = self.config.account_name.as_ref()?;
        let mut url = self.endpoints(params).ok()?.userinfo?;
        let method = match self.config.userinfo_method.unwrap_or_default() {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Post => reqwest::Method::POST,
        };
        let mut header = None;
        match self.placement() {
            Placement::Query(name) => {
                url.query_pairs_mut()
                    .append_pair(name, &tokens.access_token);
            }
            Placement::Header { name, prefix } => {
                header = Some((name, format!("{prefix}{}", tokens.access_token)));
            }
        }
        let mut request = backchannel
            .client()
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        for (name, value) in self.config.userinfo_headers.iter().flatten() {
            request = request.header(name.as_str(), value.as_str());
        }
        match backchannel.json(request).await {
            Ok(body) => first_string(&body, pointers),
            Err(e) => {
                tracing::info!(plugin = %self.id, error = %e, "userinfo lookup failed; no display name");
                None
            }
        }
    }

    /// The API base this connection's token names (`api_base_from_token`), when it is a URL we
    /// would accept in config.
    pub fn api_base_from(&self, tokens: &TokenSet) -> Option<Url> {
        let field = self.config.api_base_from_token.as_deref()?;
        let url = Url::parse(tokens.extra.get(field)?.as_str()?).ok()?;
        crate::config::check_http_url(&url, true).ok()?;
        Some(url)
    }
}

/// The first pointer that names a string (or number), cleaned for display.
fn first_string(value: &Value, pointers: &[String]) -> Option<String> {
    pointers.iter().find_map(|p| {
        let text = match value.pointer(p)? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let clean: String = text
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_NAME)
            .collect();
        let clean = clean.trim();
        (!clean.is_empty()).then(|| clean.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_first_matching_pointer() {
        let v = serde_json::json!({"shop": {"name": "Acme\n", "id": 7}, "login": ""});
        let ptrs = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            first_string(&v, &ptrs(&["/login", "/shop/name"])),
            Some("Acme".into())
        );
        assert_eq!(first_string(&v, &ptrs(&["/shop/id"])), Some("7".into()));
        assert_eq!(first_string(&v, &ptrs(&["/nope"])), None);
    }
}
