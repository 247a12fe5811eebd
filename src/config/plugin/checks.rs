//! Validation of one plugin table. Each check returns `(key, message)` naming what is wrong.

use std::collections::BTreeMap;

use super::{secret_env_name, PluginConfig};
use crate::catalog;
use crate::config::check_http_url;

type Checked = Result<(), (&'static str, String)>;

/// Parameters the appliance sets itself; a plugin may not override them.
const RESERVED_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
];

pub(super) fn required_urls(p: &PluginConfig) -> Checked {
    if p.authorization_url.is_none() {
        return Err((
            "authorization_url",
            "expected the provider's authorization endpoint URL (or a catalog `provider`)".into(),
        ));
    }
    if p.token_url.is_none() {
        return Err((
            "token_url",
            "expected the provider's token endpoint URL".into(),
        ));
    }
    Ok(())
}

/// Plugin-wide template values: declared by the provider (or used by a custom URL) and valid.
pub(super) fn params(p: &PluginConfig) -> Checked {
    let used = p.template_names();
    for (name, value) in &p.params {
        match p.param_specs.get(name) {
            Some(spec) if !spec.accepts(value) => {
                return Err((
                    "params",
                    format!(
                        "\"{name}\" = {value:?} is not {} (pattern {}, e.g. {:?})",
                        spec.description, spec.pattern, spec.example
                    ),
                ))
            }
            Some(_) => {}
            None if used.contains(name) => {
                catalog::check_param_value(value).map_err(|m| ("params", format!("{name}: {m}")))?
            }
            None => {
                return Err((
                    "params",
                    format!("\"{name}\" is not a template value of this provider's URLs"),
                ))
            }
        }
    }
    for name in &used {
        if !p.params.contains_key(name) && !p.param_specs.contains_key(name) {
            return Err((
                "params",
                format!("the URLs use {{{name}}}; give its value in params"),
            ));
        }
    }
    Ok(())
}

/// Every URL template expands (with plugin values, else the declared examples) to an https URL,
/// or http on loopback.
pub(super) fn urls(p: &PluginConfig) -> Checked {
    let mut values: BTreeMap<String, String> = p
        .param_specs
        .iter()
        .map(|(k, s)| (k.clone(), s.example.clone()))
        .collect();
    values.extend(p.params.clone());
    let urls = [
        ("authorization_url", &p.authorization_url),
        ("token_url", &p.token_url),
        ("revocation_url", &p.revocation_url),
        ("userinfo_url", &p.userinfo_url),
        ("api_base_url", &p.api_base_url),
    ];
    for (key, template) in urls {
        let Some(template) = template else { continue };
        let url = catalog::expand(template, &values).map_err(|m| (key, m))?;
        check_http_url(&url, true).map_err(|m| (key, m))?;
    }
    Ok(())
}

pub(super) fn credentials(
    p: &mut PluginConfig,
    id: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Checked {
    if p.client_id.as_deref().is_none_or(str::is_empty) {
        return Err(("client_id", "expected the OAuth client id".into()));
    }
    if let Some(secret) = env(&secret_env_name(id)) {
        p.client_secret = Some(secret);
    } else if let Some(var) = &p.client_secret_env {
        // Missing here is allowed: the plugin is listed as lacking credentials until set.
        p.client_secret = env(var).filter(|s| !s.is_empty());
    } else if p.client_secret.as_deref().is_none_or(str::is_empty) {
        return Err((
            "client_secret",
            format!(
                "expected the OAuth client secret, or client_secret_env naming an environment variable (or set {})",
                secret_env_name(id)
            ),
        ));
    }
    Ok(())
}

pub(super) fn scopes_and_params(p: &PluginConfig) -> Checked {
    for scope in p.scopes() {
        if !valid_scope(scope) {
            return Err((
                "scopes",
                format!(
                    "\"{scope}\" is not a valid scope token (printable ASCII, no spaces or quotes)"
                ),
            ));
        }
    }
    if p.scope_separator().is_empty() {
        return Err(("scope_separator", "expected a non-empty separator".into()));
    }
    if !is_token(p.scope_param()) {
        return Err((
            "scope_param",
            "expected a parameter name of letters, digits, '-', '_' or '.'".into(),
        ));
    }
    for key in p.authorize_params.iter().flat_map(BTreeMap::keys) {
        if RESERVED_PARAMS.contains(&key.as_str()) || key == p.scope_param() {
            return Err((
                "authorize_params",
                format!("\"{key}\" is set by the appliance and cannot be overridden"),
            ));
        }
    }
    Ok(())
}

/// How tokens are shown to APIs and where the account name is read from.
pub(super) fn presentation(p: &PluginConfig) -> Checked {
    if p.token_header.as_deref().is_some_and(|h| !is_token(h)) {
        return Err(("token_header", "expected an HTTP header name".into()));
    }
    for (key, pointers) in [
        ("account_name", &p.account_name),
        ("account_name_from_token", &p.account_name_from_token),
    ] {
        if pointers.iter().flatten().any(|ptr| !ptr.starts_with('/')) {
            return Err((
                key,
                "expected JSON pointers such as \"/login\" or \"/team/name\"".into(),
            ));
        }
    }
    if p.api_base_from_token
        .as_deref()
        .is_some_and(|f| !is_token(f))
    {
        return Err((
            "api_base_from_token",
            "expected the name of a token-response field, e.g. \"instance_url\"".into(),
        ));
    }
    for name in p.userinfo_headers.iter().flat_map(BTreeMap::keys) {
        if !is_token(name) {
            return Err((
                "userinfo_headers",
                format!("\"{name}\" is not a header name"),
            ));
        }
    }
    Ok(())
}

pub(super) fn redirect_uri(p: &PluginConfig) -> Checked {
    let Some(raw) = &p.redirect_uri else {
        return Ok(());
    };
    let url = url::Url::parse(raw).map_err(|e| {
        (
            "redirect_uri",
            format!("expected the absolute URL of your callback route, got {raw:?} ({e})"),
        )
    })?;
    check_http_url(&url, true).map_err(|m| ("redirect_uri", m))?;
    if url.fragment().is_some() {
        return Err(("redirect_uri", "a redirect URI has no #fragment".into()));
    }
    Ok(())
}

pub(super) fn api_key(p: &PluginConfig) -> Checked {
    if p.provider.is_some() || p.authorization_url.is_some() || p.token_url.is_some() {
        return Err((
            "auth",
            "an api_key plugin has no provider, authorization_url or token_url".into(),
        ));
    }
    let base = p.api_base_url.as_ref().ok_or((
        "api_base_url",
        "an api_key plugin needs the API's base URL".to_string(),
    ))?;
    let url = catalog::expand(base, &p.params).map_err(|m| ("api_base_url", m))?;
    check_http_url(&url, true).map_err(|m| ("api_base_url", m))?;
    if p.api_key_query.is_some() && (p.api_key_header.is_some() || p.api_key_prefix.is_some()) {
        return Err((
            "api_key_query",
            "give api_key_query or api_key_header/api_key_prefix, not both".into(),
        ));
    }
    if p.api_key_header.as_deref().is_some_and(|h| !is_token(h)) {
        return Err(("api_key_header", "expected an HTTP header name".into()));
    }
    if p.api_key_query.as_deref().is_some_and(|q| !is_token(q)) {
        return Err((
            "api_key_query",
            "expected a query parameter name of letters, digits, '-', '_' or '.'".into(),
        ));
    }
    Ok(())
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// RFC 6749 §3.3 scope-token characters.
pub fn valid_scope(scope: &str) -> bool {
    !scope.is_empty()
        && scope.len() <= 256
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}
