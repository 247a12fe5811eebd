//! Dashboard helpers for the integration tests: a signed-in "browser" whose cookies are handled
//! by hand (so tests can inspect and forge them), and small HTML readers.
#![allow(dead_code)]

use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;

use crate::common::*;

/// A signed-in browser. Cookies are handled by hand so tests can inspect and forge them.
pub struct Dash {
    pub base: String,
    pub client: Client,
    /// `name=value` of the session cookie.
    pub cookie: String,
    pub csrf: String,
}

pub fn set_cookie(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(String::from)
}

pub fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().expect("pair").to_string()
}

pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_string())
}

/// The sign-in form's cookie (`name=value`) and token.
pub fn sign_in_form(server: &Server, cookie_name: &str) -> (String, String) {
    let r = plain_client()
        .get(server.url("/admin/sign-in"))
        .send()
        .expect("GET sign-in");
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = pair(&set_cookie(&r, cookie_name).expect("sign-in cookie"));
    let token = hidden(&r.text().expect("body"), "csrf").expect("form token");
    (cookie, token)
}

pub fn try_sign_in(server: &Server, key: &str) -> Response {
    let (cookie, token) = sign_in_form(server, "ca_admin_signin");
    plain_client()
        .post(server.url("/admin/sign-in"))
        .header("cookie", cookie)
        .header("origin", &server.base)
        .form(&[("csrf", token.as_str()), ("admin_key", key)])
        .send()
        .expect("POST sign-in")
}

pub fn sign_in(server: &Server) -> Dash {
    let r = try_sign_in(server, ADMIN_KEY);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/admin");
    let cookie = pair(&set_cookie(&r, "ca_admin").expect("session cookie"));
    let mut dash = Dash {
        base: server.base.clone(),
        client: plain_client(),
        cookie,
        csrf: String::new(),
    };
    dash.csrf = hidden(&dash.page("/admin"), "csrf").expect("csrf on the overview");
    dash
}

impl Dash {
    pub fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .expect("GET")
    }

    /// GET, asserting 200; the HTML.
    pub fn page(&self, path: &str) -> String {
        let r = self.get(path);
        let status = r.status();
        let html = r.text().expect("body");
        assert_eq!(status, StatusCode::OK, "GET {path}:\n{html}");
        html
    }

    /// POST a form as our own page would (same origin).
    pub fn post(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.post_with(path, fields, &[("origin", &self.base)])
    }

    pub fn post_with(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(fields);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().expect("POST")
    }
}

/// Name-value pairs: form fields or request headers.
pub type Fields<'a> = Vec<(&'a str, &'a str)>;

pub fn status_of(server: &Server, id: &str) -> String {
    server.admin().connection(id)["status"]
        .as_str()
        .expect("status")
        .to_string()
}

pub fn connection_count(server: &Server) -> usize {
    server.admin().get_json("/v1/connections?limit=200")["data"]
        .as_array()
        .expect("data")
        .len()
}

pub fn assert_redirected_to_sign_in(r: Response) {
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/admin/sign-in");
}

pub fn rows(html: &str) -> Vec<String> {
    html.split("class=\"connection\" data-id=\"")
        .skip(1)
        .map(|s| s[..s.find('"').expect("quote")].to_string())
        .collect()
}

/// The `href` of the element with `id`, unescaped.
pub fn href(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let tag = &html[html[..at].rfind('<')?..at + html[at..].find('>')?];
    let start = tag.find("href=\"")? + "href=\"".len();
    let end = tag[start..].find('"')?;
    Some(
        tag[start..start + end]
            .replace("&#38;", "&")
            .replace("&amp;", "&"),
    )
}
