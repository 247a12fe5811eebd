//! Branding at run time: what the page layouts show, the logo at `/branding/logo` and the accent
//! colour as a CSS custom property at `/branding/style.css` (a stylesheet, because the CSP allows
//! no inline styles).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse};

use crate::config::{BrandingConfig, Logo, DEFAULT_ACCENT, DEFAULT_NAME};
use crate::state::AppState;

/// Everything the layouts need, built once at start.
pub struct Branding {
    pub name: String,
    pub support_url: Option<String>,
    pub privacy_url: Option<String>,
    pub terms_url: Option<String>,
    /// The success page's "Continue" target for links without a `redirect_url`.
    pub success_redirect_url: Option<String>,
    logo: Option<Logo>,
    stylesheet: String,
}

impl Branding {
    pub fn new(config: &BrandingConfig) -> Self {
        let accent = config.accent_color.as_deref().unwrap_or(DEFAULT_ACCENT);
        Branding {
            name: config.name.clone().unwrap_or_else(|| DEFAULT_NAME.into()),
            support_url: config.support_url.as_ref().map(ToString::to_string),
            privacy_url: config.privacy_url.as_ref().map(ToString::to_string),
            terms_url: config.terms_url.as_ref().map(ToString::to_string),
            success_redirect_url: config.success_redirect_url.as_ref().map(ToString::to_string),
            logo: config.logo.clone(),
            stylesheet: format!(
                "/* Generated from [branding] accent_color. */\n:root {{ --accent: {accent}; --accent-text: {}; }}\n",
                text_on(accent)
            ),
        }
    }

    /// Whether the footer has any link to show.
    pub fn has_links(&self) -> bool {
        self.support_url.is_some() || self.privacy_url.is_some() || self.terms_url.is_some()
    }
}

impl Default for Branding {
    fn default() -> Self {
        Branding::new(&BrandingConfig::default())
    }
}

/// White or dark text on the accent colour, whichever contrasts more (WCAG relative luminance).
fn text_on(accent: &str) -> &'static str {
    let channel = |i: usize| {
        let v = f64::from(u8::from_str_radix(&accent[i..i + 2], 16).unwrap_or(0)) / 255.0;
        if v <= 0.039_28 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    let l = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
    // Contrast with white (L = 1) against contrast with the dark text colour #1c2230 (L ≈ 0.016).
    if 1.05 / (l + 0.05) >= (l + 0.05) / 0.066 {
        "#ffffff"
    } else {
        "#1c2230"
    }
}

/// `GET /branding/logo`: the configured logo, or the built-in one.
pub async fn logo(state: web::Data<AppState>) -> HttpResponse {
    let Some(logo) = &state.branding.logo else {
        return super::assets::embedded("logo.svg");
    };
    HttpResponse::Ok()
        .content_type(logo.content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        // An SVG opened on its own gets no scripts and no origin (the default CSP stays for the
        // rest; a handler's own header wins over the default).
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
        ))
        .body(logo.bytes.to_vec())
}

/// `GET /branding/style.css`: the accent colour as custom properties, after `style.css`.
pub async fn stylesheet(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(state.branding.stylesheet.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_contrasts_with_the_accent() {
        assert_eq!(text_on(DEFAULT_ACCENT), "#ffffff");
        assert_eq!(text_on("#000000"), "#ffffff");
        assert_eq!(text_on("#ffdd00"), "#1c2230");
        assert_eq!(text_on("#ffffff"), "#1c2230");
    }

    #[test]
    fn defaults_are_the_current_look() {
        let b = Branding::default();
        assert_eq!(b.name, "Connect");
        assert!(!b.has_links());
        assert!(b.stylesheet.contains("--accent: #2f5bea;"));
    }
}
