//! Sign-in with an admin key, and sign-out. The sign-in form is protected like every other form:
//! its token is an HMAC of a random nonce held in a short-lived cookie, so it needs no
//! server-side state before anyone has proven anything.

use std::time::Instant;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use sha2::Digest;

use super::error::DashError;
use super::guard::{
    cookie, cookie_name, removal, same_origin, session_max_age, signed_in, Admin, Form,
    SESSION_COOKIE, SIGN_IN_COOKIE,
};
use super::session::random_token;
use super::{render, Chrome};
use crate::error::AppError;
use crate::state::AppState;

/// How long a sign-in form stays usable.
const FORM_TTL: i64 = 15 * 60;

#[derive(Template)]
#[template(path = "admin/sign_in.html")]
struct SignInPage<'a> {
    chrome: Chrome<'a>,
    form_token: &'a str,
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct SignInQuery {
    signed_out: Option<String>,
}

/// `GET /admin/sign-in`.
pub async fn form(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<SignInQuery>,
) -> HttpResponse {
    if signed_in(&req).is_some() {
        return see_other("/admin");
    }
    let notice = query.signed_out.is_some().then_some("You are signed out.");
    form_page(&state, StatusCode::OK, notice, None)
}

fn form_page(
    state: &AppState,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
) -> HttpResponse {
    let nonce = random_token();
    let token = state.dashboard.sign_in_token(&nonce);
    let page = SignInPage {
        chrome: Chrome {
            brand: &state.branding,
            csrf: "",
            active: "",
        },
        form_token: &token,
        notice,
        error,
    };
    match render(status, &page) {
        Ok(mut response) => {
            let _ = response.add_cookie(&cookie(state, SIGN_IN_COOKIE, nonce, FORM_TTL));
            response
        }
        Err(e) => e.render(&state.branding),
    }
}

/// `POST /admin/sign-in`: `csrf`, `admin_key`.
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let form = Form::parse(&body);
    let nonce = req
        .cookie(&cookie_name(&state, SIGN_IN_COOKIE))
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    if !same_origin(&req, &state) || !state.dashboard.sign_in_token_ok(&nonce, form.get("csrf")) {
        tracing::warn!("dashboard sign-in form refused: bad origin or CSRF token");
        return DashError::Forbidden.render(&state.branding);
    }
    let ip = state.limits.client_ip(&req);
    let now = Instant::now();
    // A locked-out address learns nothing, not even whether its key was right.
    if state.dashboard.locked(ip, now) {
        return DashError::from(AppError::RateLimited).render(&state.branding);
    }
    let key = form.get("admin_key").trim();
    if key.is_empty() || !state.admin_key_ok(key) {
        if !state.limits.failed_auth_allowed(ip) {
            state.dashboard.lock_out(ip, now);
            tracing::warn!(?ip, "dashboard sign-in locked out after repeated failures");
            return DashError::from(AppError::RateLimited).render(&state.branding);
        }
        tracing::warn!(?ip, "dashboard sign-in refused: wrong admin key");
        return form_page(
            &state,
            StatusCode::UNAUTHORIZED,
            None,
            Some("That admin key is not valid."),
        );
    }
    let actor = crate::audit::key_id(&sha2::Sha256::digest(key.as_bytes()).into());
    let id = state.dashboard.create(now, format!("dashboard:{actor}"));
    tracing::info!(?ip, "dashboard sign-in");
    let mut response = see_other("/admin");
    let _ = response.add_cookie(&cookie(&state, SESSION_COOKIE, id, session_max_age()));
    let _ = response.add_cookie(&removal(&state, SIGN_IN_COOKIE));
    response
}

/// `POST /admin/sign-out`: ends the session on the server, then in the browser.
pub async fn sign_out(admin: Admin, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Err(e) = admin.check_form(&req, &Form::parse(&body)) {
        return e.render(&admin.state.branding);
    }
    admin.state.dashboard.remove(&admin.session_id);
    tracing::info!("dashboard sign-out");
    let mut response = see_other("/admin/sign-in?signed_out=1");
    let _ = response.add_cookie(&removal(&admin.state, SESSION_COOKIE));
    response
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}
