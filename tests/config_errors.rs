//! Configuration: every invalid config stops the start with a message naming the file and the
//! key; `check` accepts the shipped example; environment overrides work.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use reqwest::StatusCode;
use tempfile::TempDir;

const LEAK: &str = "plugin-secret-LEAKCHECK-4411";

/// A valid config with a custom `acme` plugin whose table is `acme` (inserted verbatim).
fn with_acme(acme: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"

[admin]
api_keys = ["{ADMIN_KEY}"]

[plugins.acme]
{acme}
"#
    )
}

const ACME_OK: &str = r#"authorization_url = "https://idp.acme.test/authorize"
token_url = "https://idp.acme.test/token"
client_id = "acme-client"
client_secret = "plugin-secret-LEAKCHECK-4411""#;

/// Serves `text` and expects a refusal that names the config file and every one of `needles`.
fn assert_refused(text: &str, needles: &[&str]) -> String {
    let dir = TempDir::new().expect("temp dir");
    let exit = serve_expect_exit(dir.path(), text);
    let config_path = dir.path().join("config.toml").display().to_string();
    assert!(
        !exit.status.success(),
        "a bad config must not start; stderr:\n{}",
        exit.stderr
    );
    assert_eq!(exit.status.code(), Some(2), "config errors exit 2");
    assert!(!exit.stdout.contains("listening on"), "{}", exit.stdout);
    assert!(
        exit.stderr.contains(&config_path),
        "the message names the file {config_path}:\n{}",
        exit.stderr
    );
    for needle in needles {
        assert!(
            exit.stderr.contains(needle),
            "the message names {needle:?}:\n{}",
            exit.stderr
        );
    }
    assert!(
        !exit.stderr.contains(LEAK),
        "no secret in the message:\n{}",
        exit.stderr
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing is created for a refused config"
    );
    exit.stderr
}

#[test]
fn the_base_config_used_by_these_tests_starts() {
    // Guards the refusals below: they differ from a config that works in one place only.
    let dir = TempDir::new().expect("temp dir");
    let server = Server::start_raw(dir, &with_acme(ACME_OK), TestConfig::default());
    let plugins = server.admin().get_json("/v1/plugins");
    assert_eq!(plugins["data"][0]["id"], "acme");
    assert_eq!(plugins["data"][0]["credentials_present"], true);
}

#[test]
fn unknown_keys_are_refused_with_their_name() {
    assert_refused(
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nbogus = 1\n\n[admin]\napi_keys = [\"{ADMIN_KEY}\"]\n"
        ),
        &["bogus"],
    );
    assert_refused(
        &with_acme(&format!("{ACME_OK}\ntoken_urll = \"https://x.test/\"")),
        &["token_urll"],
    );
    assert_refused(
        &format!("{}\n[telemetry]\nenabled = true\n", with_acme(ACME_OK)),
        &["telemetry"],
    );
}

/// toml's message is prefixed with the line of the offending key; it must be the right line.
#[test]
fn unknown_key_errors_point_at_the_right_line() {
    assert_refused(
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nbogus = 1\n\n[admin]\napi_keys = [\"{ADMIN_KEY}\"]\n"
        ),
        &["line 3 (", "bogus"],
    );
}

#[test]
fn missing_or_weak_admin_keys_are_refused() {
    assert_refused(
        "[server]\nlisten = \"127.0.0.1:0\"\n",
        &["admin.api_keys", "CONNECT_APPLIANCE_ADMIN_API_KEYS"],
    );
    assert_refused(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\napi_keys = []\n",
        &["admin.api_keys"],
    );
    assert_refused(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\napi_keys = [\"short\"]\n",
        &["admin.api_keys[0]"],
    );
    assert_refused(
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\napi_keys = [\"{ADMIN_KEY}\", \"sha256:abc\"]\n"
        ),
        &["admin.api_keys[1]"],
    );
}

#[test]
fn plugin_urls_must_be_https_or_loopback() {
    assert_refused(
        &with_acme(
            r#"authorization_url = "http://idp.acme.test/authorize"
token_url = "https://idp.acme.test/token"
client_id = "acme-client"
client_secret = "plugin-secret-LEAKCHECK-4411""#,
        ),
        &["plugins.acme.authorization_url", "https"],
    );
    assert_refused(
        &with_acme(
            r#"authorization_url = "https://idp.acme.test/authorize"
token_url = "http://idp.acme.test/token"
client_id = "acme-client"
client_secret = "plugin-secret-LEAKCHECK-4411""#,
        ),
        &["plugins.acme.token_url"],
    );
    assert_refused(
        &with_acme(&format!(
            "{ACME_OK}\nrevocation_url = \"ftp://idp.acme.test/revoke\""
        )),
        &["plugins.acme.revocation_url"],
    );
    assert_refused(
        &with_acme(&format!(
            "{ACME_OK}\napi_base_url = \"https://user:pw@api.acme.test/\""
        )),
        &["plugins.acme.api_base_url"],
    );
    assert_refused(
        &with_acme(
            r#"authorization_url = "not a url"
token_url = "https://idp.acme.test/token"
client_id = "acme-client"
client_secret = "plugin-secret-LEAKCHECK-4411""#,
        ),
        &["plugins.acme.authorization_url", "not a url"],
    );
    assert_refused(
        &with_acme(
            r#"token_url = "https://idp.acme.test/token"
client_id = "acme-client"
client_secret = "plugin-secret-LEAKCHECK-4411""#,
        ),
        &["plugins.acme.authorization_url"],
    );
}

#[test]
fn loopback_http_plugin_urls_are_accepted() {
    let dir = TempDir::new().expect("temp dir");
    let server = Server::start_raw(
        dir,
        &with_acme(
            r#"authorization_url = "http://127.0.0.1:9/authorize"
token_url = "http://localhost:9/token"
client_id = "acme-client"
client_secret = "plugin-secret-LEAKCHECK-4411""#,
        ),
        TestConfig::default(),
    );
    assert_eq!(server.admin().get("/v1/plugins").status(), StatusCode::OK);
}

#[test]
fn plugin_tables_are_validated() {
    assert_refused(
        &with_acme(&format!("provider = \"oktaa\"\n{ACME_OK}")),
        &["plugins.acme.provider", "oktaa", "GET /v1/providers"],
    );
    assert_refused(
        &with_acme(&format!(
            "{ACME_OK}\nauthorize_params = {{ state = \"fixed\" }}"
        )),
        &["plugins.acme.authorize_params", "state"],
    );
    assert_refused(
        &with_acme(&format!(
            "{ACME_OK}\nauthorize_params = {{ redirect_uri = \"https://evil.test/\" }}"
        )),
        &["plugins.acme.authorize_params", "redirect_uri"],
    );
    assert_refused(
        &with_acme(
            r#"authorization_url = "https://idp.acme.test/authorize"
token_url = "https://idp.acme.test/token"
client_id = "acme-client""#,
        ),
        &[
            "plugins.acme.client_secret",
            "CONNECT_APPLIANCE_PLUGIN_ACME_CLIENT_SECRET",
        ],
    );
    assert_refused(
        &with_acme(
            r#"authorization_url = "https://idp.acme.test/authorize"
token_url = "https://idp.acme.test/token"
client_secret = "plugin-secret-LEAKCHECK-4411""#,
        ),
        &["plugins.acme.client_id"],
    );
    assert_refused(
        &with_acme(&format!("{ACME_OK}\nscopes = [\"has space\"]")),
        &["plugins.acme.scopes"],
    );
    assert_refused(
        &with_acme(&format!(
            "{ACME_OK}\ntoken_auth_method = \"private_key_jwt\""
        )),
        &["private_key_jwt"],
    );
    assert_refused(
        &with_acme("provider = \"sandbox\"\nclient_id = \"c\"\nclient_secret = \"plugin-secret-LEAKCHECK-4411\""),
        &["plugins.acme.provider", "[sandbox] enabled = true"],
    );
    assert_refused(
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\napi_keys = [\"{ADMIN_KEY}\"]\n[plugins.\"Bad Id\"]\n{ACME_OK}\n"
        ),
        &["plugins.Bad Id"],
    );
}

#[test]
fn other_sections_are_validated() {
    let admin = format!("[admin]\napi_keys = [\"{ADMIN_KEY}\"]\n");
    for (text, key) in [
        (
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://appliance.example.com\"\n",
            "server.public_url",
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://a.example.com/?x=1\"\n",
            "server.public_url",
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 10\n",
            "server.max_body_bytes",
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\n[links]\nttl_seconds = 0\n",
            "links.ttl_seconds",
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\n[links]\nallowed_redirect_urls = [\"mailto:a@b.c\"]\n",
            "links.allowed_redirect_urls[0]",
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\n[sandbox]\nenabled = true\ntoken_ttl_seconds = 0\n",
            "sandbox.token_ttl_seconds",
        ),
        // A value of the wrong form is reported by toml with its line (the key is not named).
        ("[server]\nlisten = \"not-an-address\"\n", "line 2 ("),
    ] {
        assert_refused(&format!("{text}{admin}"), &[key]);
    }
}

#[test]
fn syntax_errors_and_missing_files_name_the_file() {
    assert_refused("[server\nlisten = 1\n", &["line 1"]);
    let dir = TempDir::new().expect("temp dir");
    let missing = dir.path().join("nope.toml");
    let missing = missing.to_str().expect("utf-8");
    let exit = run_to_exit(dir.path(), &["--config", missing], &[]);
    assert!(!exit.status.success());
    assert!(exit.stderr.contains(missing), "{}", exit.stderr);
    let exit = run_to_exit(dir.path(), &["check", "--config", missing], &[]);
    assert!(!exit.status.success());
    assert!(exit.stderr.contains(missing), "{}", exit.stderr);
}

#[test]
fn environment_overrides_admin_keys_and_plugin_secrets() {
    let env_key = "env-admin-key-0123456789abcdef";
    let dir = TempDir::new().expect("temp dir");
    let text = r#"[server]
listen = "127.0.0.1:0"

[plugins.acme]
authorization_url = "https://idp.acme.test/authorize"
token_url = "https://idp.acme.test/token"
client_id = "acme-client"
client_secret_env = "CA_TEST_SURELY_UNSET_ACME_VAR"
"#;
    let server = Server::start_raw(
        dir,
        text,
        TestConfig {
            env: vec![
                (
                    "CONNECT_APPLIANCE_ADMIN_API_KEYS".into(),
                    format!(" {env_key} ,"),
                ),
                (
                    "CONNECT_APPLIANCE_PLUGIN_ACME_CLIENT_SECRET".into(),
                    LEAK.into(),
                ),
            ],
            ..TestConfig::default()
        },
    );
    let r = plain_client()
        .get(server.url("/v1/plugins"))
        .bearer_auth(env_key)
        .send()
        .expect("plugins");
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().expect("body");
    assert!(text.contains("\"credentials_present\":true"), "{text}");
    assert!(!text.contains(LEAK));
    assert_eq!(
        server.admin().get("/v1/plugins").status(),
        StatusCode::UNAUTHORIZED,
        "the environment list replaces the file's keys"
    );
    assert!(!server.stderr().contains(LEAK));
}

fn example_config() -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml"))
        .expect("config.example.toml")
}

fn check(dir: &Path, text: &str) -> Exit {
    let path = write_config(dir, text);
    let path = path.to_str().expect("utf-8").to_string();
    run_to_exit(dir, &["check", "--config", &path], &[])
}

#[test]
fn check_accepts_the_shipped_example_config() {
    // Verbatim, in an empty directory, so its relative data paths stay inside the temp dir.
    let dir = TempDir::new().expect("temp dir");
    let exit = check(dir.path(), &example_config());
    assert!(
        exit.status.success(),
        "config.example.toml must pass `check`:\n{}\n{}",
        exit.stdout,
        exit.stderr
    );
    assert!(exit.stdout.contains("is valid"), "{}", exit.stdout);
    assert!(exit.stdout.contains("plugin sandbox"), "{}", exit.stdout);
    assert!(exit.stdout.contains("plugin acme"), "{}", exit.stdout);
    assert!(!dir.path().join("data").exists(), "check creates nothing");
}

#[test]
fn the_example_config_serves_with_an_ephemeral_port() {
    let text = example_config().replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"");
    assert!(text.contains("listen = \"127.0.0.1:0\""));
    let dir = TempDir::new().expect("temp dir");
    let exit = check(dir.path(), &text);
    assert!(exit.status.success(), "{}\n{}", exit.stdout, exit.stderr);

    let server = Server::start_raw(dir, &text, TestConfig::default());
    let r = plain_client()
        .get(server.url("/healthz"))
        .send()
        .expect("healthz");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        server.stderr().contains("placeholder"),
        "the example's admin key is flagged:\n{}",
        server.stderr()
    );
    let r = plain_client()
        .get(server.url("/v1/plugins"))
        .bearer_auth("change-me-to-a-long-random-admin-key")
        .send()
        .expect("plugins");
    assert_eq!(r.status(), StatusCode::OK);
}

#[test]
fn check_refuses_a_broken_config() {
    let dir = TempDir::new().expect("temp dir");
    let broken = example_config().replace(
        "authorize_params = { prompt = \"consent\" }",
        "authorize_params = { prompt = \"consent\", code_challenge_method = \"plain\" }",
    );
    assert_ne!(broken, example_config(), "the example still has that line");
    let exit = check(dir.path(), &broken);
    assert!(!exit.status.success(), "{}", exit.stdout);
    assert!(
        exit.stderr.contains("plugins.acme.authorize_params"),
        "{}",
        exit.stderr
    );
    assert!(
        exit.stderr.contains("config.toml"),
        "names the file: {}",
        exit.stderr
    );

    let exit = check(
        dir.path(),
        &example_config().replacen("\n[sandbox]\n", "\n[sandbox]\nturbo = true\n", 1),
    );
    assert!(!exit.status.success());
    assert!(exit.stderr.contains("turbo"), "{}", exit.stderr);
}

#[test]
fn init_writes_a_config_that_checks() {
    let dir = TempDir::new().expect("temp dir");
    let target = dir.path().join("fresh");
    let target_s = target.to_str().expect("utf-8");
    let exit = run_to_exit(dir.path(), &["init", "--dir", target_s], &[]);
    assert!(exit.status.success(), "{}\n{}", exit.stdout, exit.stderr);
    let config = target.join("config.toml");
    let text = fs::read_to_string(&config).expect("config written");
    assert!(!text.contains("change-me-to-a-long-random-admin-key"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [&config, &target.join("data/vault-identity.txt")] {
            let mode = fs::metadata(f).expect("metadata").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} mode {mode:o}", f.display());
        }
    }
    let exit = run_to_exit(
        dir.path(),
        &["check", "--config", config.to_str().expect("utf-8")],
        &[],
    );
    assert!(exit.status.success(), "{}\n{}", exit.stdout, exit.stderr);
    // A second init refuses to overwrite.
    let again = run_to_exit(dir.path(), &["init", "--dir", target_s], &[]);
    assert!(!again.status.success());
    assert_eq!(fs::read_to_string(&config).expect("config"), text);
}

#[test]
fn help_lists_every_command_in_one_line_each_and_bad_usage_exits_2() {
    let dir = TempDir::new().expect("temp dir");
    let help = run_to_exit(dir.path(), &["--help"], &[]);
    assert!(help.status.success(), "{}", help.stderr);
    for command in [
        "serve",
        "check",
        "rotate-key",
        "rotate-data-key",
        "backup",
        "restore",
        "compact",
        "init",
    ] {
        let line = help
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{command} ")))
            .unwrap_or_else(|| panic!("{command} missing:\n{}", help.stdout));
        assert!(line.len() < 100, "a long summary line: {line}");
    }
    let detail = run_to_exit(dir.path(), &["rotate-data-key", "--help"], &[]);
    assert!(detail.stdout.contains("--url"), "{}", detail.stdout);
    assert!(detail.stdout.contains("it resumes"), "{}", detail.stdout);
    let wrong = run_to_exit(dir.path(), &["backup"], &[]);
    assert_eq!(wrong.status.code(), Some(2), "{}", wrong.stderr);
    assert!(wrong.stderr.contains("--out"), "{}", wrong.stderr);
}
