//! S7: the server log (stderr) never contains a token, link token, state, code, cookie value,
//! client secret or admin key, over a full flow with refreshes, refusals and revocation.

mod common;

use common::*;
use reqwest::StatusCode;

/// Drives everything that touches secrets and returns (log, secrets that must not be in it).
fn exercise(server: &Server) -> Vec<(String, String)> {
    let admin = server.admin();
    let mut secrets: Vec<(String, String)> = vec![
        ("client secret".into(), SANDBOX_SECRET.into()),
        ("admin key".into(), ADMIN_KEY.into()),
        ("sandbox access token prefix".into(), "sbx_at_".into()),
        ("sandbox refresh token prefix".into(), "sbx_rt_".into()),
    ];

    // A refused admin call with a wrong key: that key must not be logged either.
    let wrong_key = "wrong-admin-key-LEAKCHECK-0000";
    let r = plain_client()
        .get(server.url("/v1/connections"))
        .bearer_auth(wrong_key)
        .send()
        .expect("401");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    secrets.push(("wrong admin key".into(), wrong_key.into()));

    // A full approved flow with a redirect.
    let flow = run_flow(server, "tenant-logs", Some(REDIRECT_URL), true, "log-user");
    assert_eq!(flow.callback_status, StatusCode::FOUND);
    let code = query_param(&flow.callback_url, "code").expect("code");
    let id = flow.link.connection_id.clone();
    secrets.push(("link token".into(), flow.link.token.clone()));
    secrets.push(("state".into(), flow.authorize.state.clone()));
    secrets.push(("code".into(), code));
    secrets.push(("flow cookie".into(), flow.authorize.cookie_value.clone()));
    secrets.push((
        "code challenge".into(),
        query_param(&flow.authorize.url, "code_challenge").expect("challenge"),
    ));

    // Refused callbacks: replay, wrong cookie, unknown state.
    let replay = flow
        .browser
        .get(flow.callback_url.as_str())
        .send()
        .expect("replay");
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    let forged_state = "FORGEDSTATE-LEAKCHECK-abcdefghijklmnopqrstu";
    let r = plain_client()
        .get(server.url(&format!(
            "/oauth/callback?code=FORGEDCODE-LEAKCHECK&state={forged_state}"
        )))
        .header("cookie", "ca_flow_0000000000000000=FORGEDCOOKIE-LEAKCHECK")
        .send()
        .expect("forged");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    secrets.push(("forged state".into(), forged_state.into()));
    secrets.push(("forged code".into(), "FORGEDCODE-LEAKCHECK".into()));
    secrets.push(("forged cookie".into(), "FORGEDCOOKIE-LEAKCHECK".into()));

    // Tokens: fetch, forced refresh, then revoke.
    let t1 = admin.token(&id);
    let t2 = admin.get_json(&format!("/v1/connections/{id}/token?force_refresh=true"))
        ["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(server.sandbox_me(&t2).status(), StatusCode::OK);
    secrets.push(("access token".into(), t1));
    secrets.push(("refreshed access token".into(), t2));

    // A denied flow without redirect (the provider's error description is logged at most).
    let denied = run_flow(server, "tenant-logs", None, false, "log-user");
    assert_eq!(denied.callback_status, StatusCode::SEE_OTHER);
    secrets.push(("denied link token".into(), denied.link.token.clone()));
    secrets.push(("denied state".into(), denied.authorize.state.clone()));

    let r = admin.post(&format!("/v1/connections/{id}/revoke"));
    assert_eq!(r.status(), StatusCode::OK);
    let r = admin.delete(&format!("/v1/connections/{id}"));
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    secrets
}

fn assert_clean(log: &str, secrets: &[(String, String)]) {
    assert!(
        log.contains("/oauth/callback"),
        "the access log was captured:\n{log}"
    );
    for (what, value) in secrets {
        assert!(
            !log.contains(value.as_str()),
            "the log contains the {what} ({value}):\n{log}"
        );
    }
}

#[test]
fn the_log_holds_no_secrets_at_the_default_level() {
    let server = Server::start();
    let secrets = exercise(&server);
    let log = server.stderr();
    assert_clean(&log, &secrets);
    assert!(
        log.contains("callback refused"),
        "refusals are logged:\n{log}"
    );
}

#[test]
fn the_log_holds_no_secrets_at_debug_level() {
    let server = Server::start_with(TestConfig {
        env: vec![("CONNECT_APPLIANCE_LOG".into(), "debug".into())],
        ..TestConfig::default()
    });
    let secrets = exercise(&server);
    let log = server.stderr();
    assert!(log.contains("DEBUG"), "debug logging is on");
    assert_clean(&log, &secrets);
}
