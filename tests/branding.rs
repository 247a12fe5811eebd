//! `[branding]`: name, logo, accent colour, footer links and the success page's Continue target
//! on the hosted pages and the dashboard; the defaults; and the refusals of bad values.

mod common;

use common::*;
use reqwest::StatusCode;
use tempfile::TempDir;

/// A tiny but real PNG (1×1, opaque orange).
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xdd, 0x8d, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

const BRANDING: &str = r##"[branding]
name = "Acme Cloud"
logo_file = "brand/logo.png"
accent_color = "#FF6600"
support_url = "https://acme.example/support"
privacy_url = "https://acme.example/privacy"
terms_url = "https://acme.example/terms"
success_redirect_url = "https://acme.example/welcome"
"##;

fn get(server: &Server, path: &str) -> reqwest::blocking::Response {
    plain_client().get(server.url(path)).send().expect("GET")
}

fn branded_server() -> Server {
    let dir = TempDir::new().expect("temp dir");
    std::fs::create_dir(dir.path().join("brand")).expect("mkdir");
    std::fs::write(dir.path().join("brand/logo.png"), PNG).expect("logo");
    Server::start_in(
        dir,
        TestConfig {
            extra: BRANDING.into(),
            ..TestConfig::default()
        },
    )
}

fn assert_branded(html: &str) {
    for needle in [
        "<span id=\"brand-name\">Acme Cloud</span>",
        "src=\"/branding/logo\"",
        "href=\"/branding/style.css\"",
        "id=\"support-link\" rel=\"noopener noreferrer\"",
        "https://acme.example/support",
        "https://acme.example/privacy",
        "https://acme.example/terms",
    ] {
        assert!(html.contains(needle), "{needle} missing:\n{html}");
    }
}

#[test]
fn branding_is_applied_to_hosted_pages_and_the_dashboard() {
    let server = branded_server();
    let link = server.admin().create_link("tenant-a", "sandbox", None);
    let connect = get(&server, &format!("/connect/{}", link.token));
    assert_eq!(connect.status(), StatusCode::OK);
    assert_branded(&connect.text().expect("body"));

    // Success without a redirect_url: a Continue button to success_redirect_url.
    let success = get(&server, "/connect/result?status=connected")
        .text()
        .expect("body");
    assert_branded(&success);
    assert!(
        success.contains("id=\"continue\" href=\"https://acme.example/welcome\""),
        "{success}"
    );
    // Error pages, from a handler and from a refused provider answer.
    let missing = get(&server, "/connect/no-such-link");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_branded(&missing.text().expect("body"));
    let denied = get(&server, "/connect/result?status=error&error=access_denied")
        .text()
        .expect("body");
    assert_branded(&denied);
    assert!(
        !denied.contains("id=\"continue\""),
        "Continue is for success only"
    );
    // The dashboard's header and footer.
    assert_branded(&get(&server, "/admin/sign-in").text().expect("body"));

    let logo = get(&server, "/branding/logo");
    assert_eq!(logo.status(), StatusCode::OK);
    assert_eq!(header(logo.headers(), "content-type"), "image/png");
    assert!(header(logo.headers(), "content-security-policy").contains("sandbox"));
    assert_eq!(logo.bytes().expect("bytes").as_ref(), PNG);

    let css = get(&server, "/branding/style.css");
    assert!(header(css.headers(), "content-type").starts_with("text/css"));
    let css = css.text().expect("body");
    assert!(css.contains("--accent: #ff6600;"), "{css}");
    assert!(
        css.contains("--accent-text: #1c2230;"),
        "dark text on orange: {css}"
    );
}

#[test]
fn the_defaults_keep_the_plain_look() {
    let server = Server::start();
    let link = server.admin().create_link("tenant-a", "sandbox", None);
    let html = get(&server, &format!("/connect/{}", link.token))
        .text()
        .expect("body");
    assert!(
        html.contains("<span id=\"brand-name\">Connect</span>"),
        "{html}"
    );
    assert!(!html.contains("support-link") && !html.contains("class=\"links\""));
    let success = get(&server, "/connect/result?status=connected")
        .text()
        .expect("body");
    assert!(!success.contains("id=\"continue\""));
    assert!(success.contains("You can close this window."));
    let logo = get(&server, "/branding/logo");
    assert_eq!(header(logo.headers(), "content-type"), "image/svg+xml");
    let css = get(&server, "/branding/style.css").text().expect("body");
    assert!(css.contains("--accent: #2f5bea;"), "{css}");
}

/// Serves `branding` (a `[branding]` table) and expects a refusal naming the file and `needles`.
fn assert_refused(dir: &TempDir, branding: &str, needles: &[&str]) {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[admin]\napi_keys = [\"{ADMIN_KEY}\"]\n\n{branding}"
    );
    let exit = serve_expect_exit(dir.path(), &text);
    assert_eq!(exit.status.code(), Some(2), "stderr:\n{}", exit.stderr);
    assert!(!exit.stdout.contains("listening on"));
    let config_path = dir.path().join("config.toml").display().to_string();
    assert!(exit.stderr.contains(&config_path), "{}", exit.stderr);
    for needle in needles {
        assert!(
            exit.stderr.contains(needle),
            "{needle} not named:\n{}",
            exit.stderr
        );
    }
}

#[test]
fn bad_branding_values_stop_the_start_with_a_message() {
    let dir = TempDir::new().expect("temp dir");
    std::fs::write(dir.path().join("logo.gif"), b"GIF89a\x01\x00\x01\x00").expect("gif");
    let mut big = PNG.to_vec();
    big.resize(300 * 1024, 0);
    std::fs::write(dir.path().join("big.png"), big).expect("big");
    let expectation = "expected a PNG, SVG, JPEG or WebP image of at most 262144 bytes";
    let cases: &[(&str, &[&str])] = &[
        (
            "[branding]\nlogo_file = \"missing.png\"\n",
            &["branding.logo_file", "missing.png", expectation],
        ),
        (
            "[branding]\nlogo_file = \"logo.gif\"\n",
            &[
                "branding.logo_file",
                "logo.gif",
                "not a recognised image",
                expectation,
            ],
        ),
        (
            "[branding]\nlogo_file = \"big.png\"\n",
            &["branding.logo_file", "307200 bytes", expectation],
        ),
        (
            "[branding]\naccent_color = \"orange\"\n",
            &["branding.accent_color", "#rrggbb"],
        ),
        (
            "[branding]\naccent_color = \"#12345\"\n",
            &["branding.accent_color"],
        ),
        (
            "[branding]\nsupport_url = \"http://help.example.com/\"\n",
            &["branding.support_url", "https"],
        ),
        (
            "[branding]\nsuccess_redirect_url = \"javascript:alert(1)\"\n",
            &["branding.success_redirect_url"],
        ),
        ("[branding]\nterms_url = \"not a url\"\n", &["terms_url"]),
        ("[branding]\nname = \"\"\n", &["branding.name"]),
        ("[branding]\ncolour = \"#ffffff\"\n", &["colour"]),
    ];
    for (branding, needles) in cases {
        assert_refused(&dir, branding, needles);
    }
}

#[test]
fn loopback_http_links_and_svg_logos_are_accepted() {
    let dir = TempDir::new().expect("temp dir");
    std::fs::write(
        dir.path().join("logo.svg"),
        "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"/>\n",
    )
    .expect("svg");
    let server = Server::start_in(
        dir,
        TestConfig {
            extra:
                "[branding]\nlogo_file = \"logo.svg\"\nsupport_url = \"http://127.0.0.1:9/help\"\n"
                    .into(),
            ..TestConfig::default()
        },
    );
    let logo = get(&server, "/branding/logo");
    assert_eq!(header(logo.headers(), "content-type"), "image/svg+xml");
    assert!(logo.text().expect("body").contains("<svg"));
    let html = get(&server, "/admin/sign-in").text().expect("body");
    assert!(html.contains("http://127.0.0.1:9/help"));
}
