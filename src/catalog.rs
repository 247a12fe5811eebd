//! The built-in provider catalog: endpoints, scopes and quirks of well-known providers, compiled
//! into the binary (`catalog/providers.toml`) so `provider = "github"` works air-gapped.

mod template;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

pub use template::{check_param_value, expand, placeholders, ParamSpec};

use crate::config::AuthMethod;

/// How a provider shapes its token response beyond RFC 6749.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenResponseKind {
    #[default]
    Standard,
    /// Slack: user tokens arrive nested in `authed_user`.
    Slack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum HttpMethod {
    #[default]
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
}

/// One provider. Every field is optional here because entries inherit (`extends`) and plugins
/// override; [`Catalog::get`] returns entries with inheritance applied.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: Option<String>,
    pub docs_url: Option<String>,
    pub extends: Option<String>,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub revocation_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub userinfo_method: Option<HttpMethod>,
    pub userinfo_headers: Option<BTreeMap<String, String>>,
    pub account_name: Option<Vec<String>>,
    pub account_name_from_token: Option<Vec<String>>,
    pub api_base_url: Option<String>,
    pub api_base_from_token: Option<String>,
    pub token_header: Option<String>,
    pub token_prefix: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub scopes_required: Option<bool>,
    pub scope_separator: Option<String>,
    pub scope_param: Option<String>,
    pub pkce: Option<bool>,
    pub token_auth_method: Option<AuthMethod>,
    pub authorize_params: Option<BTreeMap<String, String>>,
    pub token_response: Option<TokenResponseKind>,
    pub params: Option<BTreeMap<String, ParamSpec>>,
}

/// Copies every field of `$from` into `$into` where `$into` has none.
macro_rules! inherit {
    ($into:expr, $from:expr; $($field:ident),* $(,)?) => {
        $( if $into.$field.is_none() { $into.$field = $from.$field.clone(); } )*
    };
}
pub(crate) use inherit;

/// Applies `parent` under `child`: the child's own values win.
macro_rules! inherit_provider_fields {
    ($into:expr, $from:expr) => {
        $crate::catalog::inherit!($into, $from;
            authorization_url, token_url, revocation_url, userinfo_url, userinfo_method,
            userinfo_headers, account_name, account_name_from_token, api_base_url,
            api_base_from_token, token_header, token_prefix, scopes, scopes_required,
            scope_separator, scope_param, pkce, token_auth_method, authorize_params,
            token_response)
    };
}
pub(crate) use inherit_provider_fields;

#[derive(Debug)]
pub struct Catalog {
    entries: BTreeMap<String, Entry>,
}

static CATALOG: LazyLock<Catalog> = LazyLock::new(|| {
    // The data is compiled in and validated by the tests below; a failure here is a build bug.
    Catalog::parse(include_str!("catalog/providers.toml"))
        .unwrap_or_else(|e| panic!("the built-in provider catalog is invalid: {e}"))
});

/// The built-in catalog.
pub fn catalog() -> &'static Catalog {
    &CATALOG
}

impl Catalog {
    pub fn parse(text: &str) -> Result<Catalog, String> {
        let raw: BTreeMap<String, Entry> = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut entries = BTreeMap::new();
        for (id, entry) in &raw {
            let mut resolved = entry.clone();
            let mut seen = vec![id.as_str()];
            let mut parent = entry.extends.as_deref();
            while let Some(p) = parent {
                if seen.contains(&p) {
                    return Err(format!("{id}: `extends` forms a cycle through {p}"));
                }
                seen.push(p);
                let base = raw
                    .get(p)
                    .ok_or_else(|| format!("{id}: extends unknown entry \"{p}\""))?;
                inherit_provider_fields!(resolved, base);
                inherit!(resolved, base; name, docs_url);
                let mut params = base.params.clone().unwrap_or_default();
                params.extend(resolved.params.take().unwrap_or_default());
                resolved.params = (!params.is_empty()).then_some(params);
                parent = base.extends.as_deref();
            }
            validate(id, &resolved)?;
            entries.insert(id.clone(), resolved);
        }
        Ok(Catalog { entries })
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Entry {
    pub fn param_specs(&self) -> &BTreeMap<String, ParamSpec> {
        static EMPTY: BTreeMap<String, ParamSpec> = BTreeMap::new();
        self.params.as_ref().unwrap_or(&EMPTY)
    }
}

/// What every entry must give, and that every template it uses is declared.
fn validate(id: &str, e: &Entry) -> Result<(), String> {
    let need = |v: &Option<String>, key: &str| {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .map(|_| ())
            .ok_or_else(|| format!("{id}: missing {key}"))
    };
    need(&e.name, "name")?;
    need(&e.docs_url, "docs_url")?;
    need(&e.authorization_url, "authorization_url")?;
    need(&e.token_url, "token_url")?;
    if e.token_auth_method.is_none() {
        return Err(format!("{id}: missing token_auth_method"));
    }
    if e.scopes.is_none() {
        return Err(format!("{id}: missing scopes"));
    }
    for (name, spec) in e.param_specs() {
        spec.validate()
            .map_err(|m| format!("{id}: params.{name}: {m}"))?;
    }
    let urls = [
        ("docs_url", &e.docs_url),
        ("authorization_url", &e.authorization_url),
        ("token_url", &e.token_url),
        ("revocation_url", &e.revocation_url),
        ("userinfo_url", &e.userinfo_url),
        ("api_base_url", &e.api_base_url),
    ];
    let examples: BTreeMap<String, String> = e
        .param_specs()
        .iter()
        .map(|(k, s)| (k.clone(), s.example.clone()))
        .collect();
    for (key, url) in urls {
        let Some(url) = url else { continue };
        if !url.starts_with("https://") {
            return Err(format!("{id}: {key} must be https"));
        }
        expand(url, &examples).map_err(|m| format!("{id}: {key}: {m}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_catalog_is_valid_and_broad() {
        let c = Catalog::parse(include_str!("catalog/providers.toml")).expect("valid catalog");
        assert!(c.len() >= 50, "only {} providers", c.len());
        for id in [
            "github",
            "google",
            "slack",
            "shopify",
            "salesforce",
            "stripe",
        ] {
            assert!(c.get(id).is_some(), "{id} missing");
        }
        let drive = c.get("google-drive").expect("google-drive");
        assert_eq!(
            drive.token_url.as_deref(),
            Some("https://oauth2.googleapis.com/token")
        );
        let shopify = c.get("shopify").expect("shopify");
        assert!(shopify.param_specs().contains_key("shop"));
    }

    #[test]
    fn inheritance_cycles_and_undeclared_templates_are_refused() {
        let base = "name = \"X\"\ndocs_url = \"https://x.test\"\nauthorization_url = \"https://x.test/a\"\ntoken_url = \"https://x.test/t\"\nscopes = []\ntoken_auth_method = \"client_secret_post\"\n";
        let cycle = format!("[a]\nextends = \"b\"\n[b]\nextends = \"a\"\n{base}");
        assert!(Catalog::parse(&cycle).unwrap_err().contains("cycle"));
        let undeclared = format!("[a]\n{base}api_base_url = \"https://{{host}}/api\"\n");
        assert!(Catalog::parse(&undeclared)
            .unwrap_err()
            .contains("{host} is not declared"));
        let plain_http = format!(
            "[a]\n{}",
            base.replace("https://x.test/t", "http://x.test/t")
        );
        assert!(Catalog::parse(&plain_http).unwrap_err().contains("https"));
    }
}
