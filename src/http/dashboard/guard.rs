//! The dashboard's edge: session and sign-in cookies, the signed-in extractor, and the checks
//! every POST passes (origin, then the CSRF token in constant time).

use std::collections::HashMap;
use std::time::Instant;

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};

use super::error::DashError;
use super::session::{tokens_equal, ABSOLUTE};
use super::Chrome;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "ca_admin";
pub const SIGN_IN_COOKIE: &str = "ca_admin_signin";

/// `__Host-` + name on https (the browser then insists on Secure, Path=/ and no Domain).
pub fn cookie_name(state: &AppState, base: &str) -> String {
    if state.connections.settings().secure_cookies {
        format!("__Host-{base}")
    } else {
        base.to_string()
    }
}

/// HttpOnly, SameSite=Strict, Path=/, Secure on https.
pub fn cookie(state: &AppState, base: &str, value: String, max_age: i64) -> Cookie<'static> {
    Cookie::build(cookie_name(state, base), value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.connections.settings().secure_cookies)
        .max_age(CookieDuration::seconds(max_age))
        .finish()
}

pub fn removal(state: &AppState, base: &str) -> Cookie<'static> {
    let mut c = cookie(state, base, String::new(), 0);
    c.make_removal();
    c
}

/// A signed-in admin: the request's live session.
pub struct Admin {
    pub state: web::Data<AppState>,
    pub session_id: String,
    pub csrf: String,
    /// `dashboard:key:<id>`, for the audit log.
    pub actor: String,
}

impl FromRequest for Admin {
    type Error = DashError;
    type Future = std::future::Ready<Result<Self, DashError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(signed_in(req).ok_or(DashError::SignIn))
    }
}

pub fn signed_in(req: &HttpRequest) -> Option<Admin> {
    let state = req.app_data::<web::Data<AppState>>()?.clone();
    let id = req
        .cookie(&cookie_name(&state, SESSION_COOKIE))?
        .value()
        .to_string();
    let csrf = state.dashboard.csrf_for(&id, Instant::now())?;
    let actor = state.dashboard.actor(&id).unwrap_or_default();
    Some(Admin {
        state,
        session_id: id,
        csrf,
        actor,
    })
}

impl Admin {
    pub fn chrome(&self, active: &'static str) -> Chrome<'_> {
        Chrome {
            brand: &self.state.branding,
            csrf: &self.csrf,
            active,
        }
    }

    /// A form may change something only when it comes from our origin with this session's token.
    pub fn check_form(&self, req: &HttpRequest, form: &Form) -> Result<(), DashError> {
        if same_origin(req, &self.state) && tokens_equal(form.get("csrf"), &self.csrf) {
            Ok(())
        } else {
            tracing::warn!("dashboard form refused: bad origin or CSRF token");
            Err(DashError::Forbidden)
        }
    }

    /// Records a dashboard action in the audit log, like the API's own requests.
    pub fn audit(&self, action: &str, status: u16, target: crate::audit::AuditTarget) {
        self.state.auditor.record(crate::audit::AuditRecord {
            id: 0,
            at: crate::connections::model::now(),
            actor: self.actor.clone(),
            action: action.to_string(),
            status,
            connection_id: target.connection_id,
            tenant_id: target.tenant_id,
            plugin: target.plugin,
        });
    }

    /// A handler's outcome, its error (if any) rendered with the brand.
    pub fn respond(&self, result: Result<HttpResponse, DashError>) -> HttpResponse {
        result.unwrap_or_else(|e| e.render(&self.state.branding))
    }
}

/// The session cookie's lifetime in the browser (the server enforces its own deadlines).
pub fn session_max_age() -> i64 {
    i64::try_from(ABSOLUTE.as_secs()).unwrap_or(43_200)
}

/// Whether a POST comes from our own pages. Browsers that send `Sec-Fetch-Site` must say
/// `same-origin`; `Origin` (or else `Referer`), when present, must be our public origin or
/// the origin the request was addressed to. Requests with neither rely on the token alone.
pub fn same_origin(req: &HttpRequest, state: &AppState) -> bool {
    let headers = req.headers();
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if text("sec-fetch-site").is_some_and(|s| s != "same-origin") {
        return false;
    }
    let presented = match (text("origin"), text("referer")) {
        (Some(origin), _) => origin.to_string(),
        (None, Some(referer)) => match url::Url::parse(referer) {
            Ok(u) => u.origin().ascii_serialization(),
            Err(_) => return false,
        },
        (None, None) => return true,
    };
    let public = state
        .connections
        .settings()
        .public_url
        .origin()
        .ascii_serialization();
    let info = req.connection_info();
    let addressed = format!("{}://{}", info.scheme(), info.host());
    presented == public || presented == addressed
}

/// A urlencoded form body; missing fields read as empty.
pub struct Form(HashMap<String, String>);

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        Form(url::form_urlencoded::parse(body).into_owned().collect())
    }

    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }
}
