//! `{name}` templates in provider URLs (Shopify's shop, Microsoft's tenant, an Okta domain) and
//! the values that fill them.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use url::Url;

/// A declared template value: what it means and the pattern a value must match.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    pub pattern: String,
    pub description: String,
    pub example: String,
    #[serde(skip)]
    compiled: OnceLock<Option<regex::Regex>>,
}

impl ParamSpec {
    fn regex(&self) -> Option<&regex::Regex> {
        self.compiled
            .get_or_init(|| regex::Regex::new(&self.pattern).ok())
            .as_ref()
    }

    /// The pattern compiles, is anchored at both ends, and accepts the example.
    pub fn validate(&self) -> Result<(), String> {
        if !self.pattern.starts_with('^') || !self.pattern.ends_with('$') {
            return Err("pattern must be anchored with ^ and $".into());
        }
        if self.regex().is_none() {
            return Err(format!("pattern {:?} does not compile", self.pattern));
        }
        if !self.accepts(&self.example) {
            return Err(format!(
                "example {:?} does not match the pattern",
                self.example
            ));
        }
        Ok(())
    }

    /// Both the declared pattern and the URL-safe character set (so no value can change a URL's
    /// structure, whatever the pattern allows).
    pub fn accepts(&self, value: &str) -> bool {
        check_param_value(value).is_ok() && self.regex().is_some_and(|r| r.is_match(value))
    }
}

/// Values are host labels, domains, ids: letters, digits, `.`, `-`, `_`, at most 253 characters.
pub fn check_param_value(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && !value.starts_with('.')
        && !value.contains("..")
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err("expected 1-253 letters, digits, '.', '-' or '_'".into())
    }
}

/// The `{name}` placeholders of a template, in order.
pub fn placeholders(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push(rest[start + 1..start + len].to_string());
        rest = &rest[start + len + 1..];
    }
    out
}

/// Fills every placeholder from `values` and parses the result.
pub fn expand(template: &str, values: &BTreeMap<String, String>) -> Result<Url, String> {
    let mut text = template.to_string();
    for name in placeholders(template) {
        let value = values
            .get(&name)
            .ok_or_else(|| format!("{{{name}}} is not declared in params"))?;
        check_param_value(value).map_err(|m| format!("params.{name}: {m}"))?;
        text = text.replace(&format!("{{{name}}}"), value);
    }
    if text.contains('{') || text.contains('}') {
        return Err("unbalanced { } in URL template".into());
    }
    Url::parse(&text).map_err(|e| format!("expected an absolute http(s) URL, got {text:?} ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(pattern: &str, example: &str) -> ParamSpec {
        ParamSpec {
            pattern: pattern.into(),
            description: "d".into(),
            example: example.into(),
            compiled: OnceLock::new(),
        }
    }

    #[test]
    fn templates_expand_with_safe_values_only() {
        let mut v = BTreeMap::new();
        v.insert("shop".to_string(), "acme".to_string());
        let url = expand("https://{shop}.myshopify.com/admin/{shop}", &v).expect("expands");
        assert_eq!(url.as_str(), "https://acme.myshopify.com/admin/acme");
        for bad in ["evil.test/x?", "a@b", "a/b", "", "..", "a b"] {
            v.insert("shop".into(), bad.into());
            assert!(
                expand("https://{shop}.myshopify.com/", &v).is_err(),
                "{bad:?}"
            );
        }
        assert!(expand("https://{other}.test/", &v)
            .unwrap_err()
            .contains("not declared"));
    }

    #[test]
    fn patterns_must_be_anchored_and_match_their_example() {
        assert!(spec("^[a-z]+$", "acme").validate().is_ok());
        assert!(spec("[a-z]+", "acme").validate().is_err());
        assert!(spec("^[a-z]+$", "ACME").validate().is_err());
        assert!(spec("^([a-z]+$", "acme").validate().is_err());
        let s = spec("^[a-z0-9.-]+$", "acme.okta.com");
        assert!(s.accepts("acme.okta.com"));
        assert!(!s.accepts("acme.okta.com/evil"));
    }
}
