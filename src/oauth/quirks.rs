//! Token responses as providers really send them, rewritten into RFC 6749 §5.1/§5.2 JSON
//! before the oauth2 crate parses them: form-encoded bodies (GitHub without `Accept`,
//! Facebook's old API), errors sent with HTTP 200 (GitHub, Slack), Slack's user tokens nested
//! in `authed_user`, `expires_in` as a string, scopes separated by commas or given as arrays.

use serde_json::{Map, Value};

use crate::catalog::TokenResponseKind;

/// A rewritten response: status and a JSON body (unchanged when it was neither JSON nor a form).
pub struct Normalized {
    pub status: u16,
    pub body: Vec<u8>,
    pub is_json: bool,
}

pub fn normalize(
    kind: TokenResponseKind,
    status: u16,
    content_type: &str,
    body: Vec<u8>,
) -> Normalized {
    let Some(mut object) = parse(content_type, &body) else {
        return Normalized {
            status,
            body,
            is_json: false,
        };
    };
    if kind == TokenResponseKind::Slack {
        lift_slack_user_token(&mut object);
    }
    let mut status = status;
    let has_token = object.get("access_token").is_some_and(Value::is_string);
    let has_error = object.get("error").is_some_and(Value::is_string);
    if (200..300).contains(&status) && !has_token && has_error {
        status = 400; // an error in a 200: make it the error response it is
    }
    clean_token_fields(&mut object);
    Normalized {
        status,
        body: serde_json::to_vec(&Value::Object(object)).unwrap_or_default(),
        is_json: true,
    }
}

/// A JSON object, or a form-encoded body that carries a token or an error.
fn parse(content_type: &str, body: &[u8]) -> Option<Map<String, Value>> {
    if let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(body) {
        return Some(o);
    }
    let form_like = content_type.starts_with("application/x-www-form-urlencoded")
        || content_type.starts_with("text/plain")
        || content_type.is_empty();
    if !form_like {
        return None;
    }
    let pairs: Map<String, Value> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    (pairs.contains_key("access_token") || pairs.contains_key("error")).then_some(pairs)
}

/// Slack's `oauth.v2.access` puts a user token under `authed_user`; a bot token, if any, stays
/// at the top. `ok: false` is Slack's error flag.
fn lift_slack_user_token(object: &mut Map<String, Value>) {
    if object.get("ok") == Some(&Value::Bool(false)) && !object.contains_key("error") {
        object.insert("error".into(), Value::String("slack_error".into()));
    }
    if object.contains_key("access_token") {
        return;
    }
    let Some(Value::Object(user)) = object.get("authed_user").cloned() else {
        return;
    };
    for field in [
        "access_token",
        "token_type",
        "scope",
        "refresh_token",
        "expires_in",
    ] {
        if let Some(v) = user.get(field) {
            object.insert(field.into(), v.clone());
        }
    }
}

fn clean_token_fields(object: &mut Map<String, Value>) {
    object.retain(|_, v| !v.is_null());
    // Some providers send numbers as strings, and Facebook's old API calls it `expires`.
    let expires = object
        .get("expires_in")
        .or_else(|| object.get("expires"))
        .cloned();
    match expires {
        Some(Value::String(s)) => match s.trim().parse::<u64>() {
            Ok(n) => {
                object.insert("expires_in".into(), n.into());
            }
            Err(_) => {
                object.remove("expires_in");
            }
        },
        Some(Value::Number(n)) if n.as_u64().is_some() => {
            object.insert("expires_in".into(), Value::Number(n));
        }
        Some(_) => {
            object.remove("expires_in");
        }
        None => {}
    }
    let scope = match object.get("scope") {
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Some(Value::String(s)) => Some(
            s.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    };
    match scope {
        Some(s) if !s.is_empty() => {
            object.insert("scope".into(), Value::String(s));
        }
        _ => {
            object.remove("scope");
        }
    }
    // The oauth2 crate requires token_type; Slack says "user" or "bot", some omit it.
    if object.contains_key("access_token") {
        object.insert("token_type".into(), Value::String("bearer".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: TokenResponseKind, status: u16, ct: &str, body: &str) -> (u16, Value) {
        let n = normalize(kind, status, ct, body.as_bytes().to_vec());
        assert!(n.is_json);
        (n.status, serde_json::from_slice(&n.body).expect("JSON"))
    }

    #[test]
    fn github_form_encoded_token_and_error_in_200() {
        let (status, v) = run(
            TokenResponseKind::Standard,
            200,
            "application/x-www-form-urlencoded; charset=utf-8",
            "access_token=gho_16C7e42F292c6912E7710c838347Ae178B4a&scope=repo%2Cgist&token_type=bearer",
        );
        assert_eq!(status, 200);
        assert_eq!(
            v["access_token"],
            "gho_16C7e42F292c6912E7710c838347Ae178B4a"
        );
        assert_eq!(v["scope"], "repo gist");
        let (status, v) = run(
            TokenResponseKind::Standard,
            200,
            "application/json; charset=utf-8",
            r#"{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired.","error_uri":"https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"}"#,
        );
        assert_eq!(status, 400);
        assert_eq!(v["error"], "bad_verification_code");
    }

    #[test]
    fn slack_user_tokens_are_lifted_and_ok_false_is_an_error() {
        let body = r#"{"ok":true,"app_id":"A0KRD7HC3","authed_user":{"id":"U1234","scope":"chat:write,users:read","access_token":"xoxp-1234","token_type":"user","refresh_token":"xoxe-1-abc","expires_in":43200},"team":{"id":"T9TK3CUKW","name":"Slack Softball Team"},"enterprise":null,"is_enterprise_install":false}"#;
        let (status, v) = run(TokenResponseKind::Slack, 200, "application/json", body);
        assert_eq!(status, 200);
        assert_eq!(v["access_token"], "xoxp-1234");
        assert_eq!(v["refresh_token"], "xoxe-1-abc");
        assert_eq!(v["expires_in"], 43200);
        assert_eq!(v["scope"], "chat:write users:read");
        assert_eq!(v["team"]["name"], "Slack Softball Team");
        let (status, v) = run(
            TokenResponseKind::Slack,
            200,
            "application/json",
            r#"{"ok":false,"error":"invalid_code"}"#,
        );
        assert_eq!((status, v["error"].as_str()), (400, Some("invalid_code")));
    }

    #[test]
    fn odd_fields_are_made_standard() {
        let (_, v) = run(
            TokenResponseKind::Standard,
            200,
            "application/json",
            r#"{"access_token":"a","expires_in":"3600","scope":["read","write"],"refresh_token":null}"#,
        );
        assert_eq!(v["expires_in"], 3600);
        assert_eq!(v["scope"], "read write");
        assert_eq!(v["token_type"], "bearer");
        assert!(v.get("refresh_token").is_none());
        let (_, v) = run(
            TokenResponseKind::Standard,
            200,
            "text/plain",
            "access_token=a&expires=5183998",
        );
        assert_eq!(v["expires_in"], 5183998);
    }

    #[test]
    fn other_bodies_pass_through() {
        let n = normalize(
            TokenResponseKind::Standard,
            502,
            "text/html",
            b"<html>bad gateway</html>".to_vec(),
        );
        assert!(!n.is_json);
        assert_eq!(n.status, 502);
    }
}
