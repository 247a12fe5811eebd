//! `[branding]`: the name, logo, accent colour and links shown on the hosted pages and the
//! dashboard. The logo is read and checked here, once, so a bad file stops the start (and fails
//! `check`) instead of breaking pages later.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use url::Url;

use super::check_http_url;

/// Largest accepted logo file, in bytes.
pub const MAX_LOGO_BYTES: u64 = 256 * 1024;
pub const DEFAULT_NAME: &str = "Connect";
pub const DEFAULT_ACCENT: &str = "#2f5bea";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrandingConfig {
    /// Shown in the page header and titles (default "Connect").
    pub name: Option<String>,
    /// PNG, SVG, JPEG or WebP, at most [`MAX_LOGO_BYTES`]; relative to the config file.
    pub logo_file: Option<PathBuf>,
    /// `#rrggbb` (default [`DEFAULT_ACCENT`]).
    pub accent_color: Option<String>,
    pub support_url: Option<Url>,
    pub privacy_url: Option<Url>,
    pub terms_url: Option<Url>,
    /// Where the success page's "Continue" button goes when the link had no `redirect_url`.
    pub success_redirect_url: Option<Url>,
    /// The logo as read by [`BrandingConfig::resolve`].
    #[serde(skip)]
    pub logo: Option<Logo>,
}

/// An image held in memory and served at a fixed route.
#[derive(Clone)]
pub struct Logo {
    pub bytes: Arc<[u8]>,
    pub content_type: &'static str,
}

impl fmt::Debug for Logo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Logo({}, {} bytes)", self.content_type, self.bytes.len())
    }
}

impl BrandingConfig {
    /// Checks every value and reads the logo. Errors are `(key, message)`.
    pub(super) fn resolve(&mut self, base_dir: &Path) -> Result<(), (String, String)> {
        let err = |key: &str, m: String| (format!("branding.{key}"), m);
        if let Some(name) = &mut self.name {
            *name = name.trim().to_string();
            let chars = name.chars().count();
            if !(1..=60).contains(&chars) || name.chars().any(char::is_control) {
                return Err(err(
                    "name",
                    "expected 1 to 60 characters without control characters".into(),
                ));
            }
        }
        if let Some(color) = &mut self.accent_color {
            let ok = color.len() == 7
                && color.starts_with('#')
                && color[1..].bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return Err(err(
                    "accent_color",
                    format!("expected a colour as \"#rrggbb\" (e.g. \"{DEFAULT_ACCENT}\"), got \"{color}\""),
                ));
            }
            *color = color.to_ascii_lowercase();
        }
        for (key, url) in [
            ("support_url", &self.support_url),
            ("privacy_url", &self.privacy_url),
            ("terms_url", &self.terms_url),
            ("success_redirect_url", &self.success_redirect_url),
        ] {
            if let Some(url) = url {
                check_http_url(url, true).map_err(|m| err(key, m))?;
            }
        }
        if let Some(file) = &self.logo_file {
            let path = base_dir.join(file);
            self.logo = Some(read_logo(&path).map_err(|m| err("logo_file", m))?);
            self.logo_file = Some(path);
        }
        Ok(())
    }
}

fn read_logo(path: &Path) -> Result<Logo, String> {
    let shown = path.display();
    let expected =
        format!("expected a PNG, SVG, JPEG or WebP image of at most {MAX_LOGO_BYTES} bytes");
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}; {expected}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a file; {expected}"));
    }
    if meta.len() > MAX_LOGO_BYTES {
        return Err(format!("{shown} is {} bytes; {expected}", meta.len()));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let content_type =
        sniff(&bytes).ok_or_else(|| format!("{shown} is not a recognised image; {expected}"))?;
    Ok(Logo {
        bytes: bytes.into(),
        content_type,
    })
}

/// The image type by content, not by file name: the browser is told exactly what it gets.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else if is_svg(bytes) {
        Some("image/svg+xml")
    } else {
        None
    }
}

fn is_svg(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let text = text.trim_start_matches('\u{feff}').trim_start();
    ["<?xml", "<svg", "<!--", "<!DOCTYPE svg"]
        .iter()
        .any(|p| text.starts_with(p))
        && text.contains("<svg")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(
            sniff(b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
            Some("image/svg+xml")
        );
        assert_eq!(sniff(b"<html><svg></svg></html>"), None);
        assert_eq!(sniff(b"GIF89a"), None);
    }

    #[test]
    fn values_are_checked_and_normalised() {
        let mut b = BrandingConfig {
            name: Some("  Acme  ".into()),
            accent_color: Some("#AABBCC".into()),
            ..BrandingConfig::default()
        };
        b.resolve(Path::new("/nowhere")).expect("valid");
        assert_eq!(b.name.as_deref(), Some("Acme"));
        assert_eq!(b.accent_color.as_deref(), Some("#aabbcc"));
        for (bad, key) in [
            (
                BrandingConfig {
                    accent_color: Some("red".into()),
                    ..BrandingConfig::default()
                },
                "branding.accent_color",
            ),
            (
                BrandingConfig {
                    name: Some(" ".into()),
                    ..BrandingConfig::default()
                },
                "branding.name",
            ),
            (
                BrandingConfig {
                    terms_url: Url::parse("http://example.com/terms").ok(),
                    ..BrandingConfig::default()
                },
                "branding.terms_url",
            ),
            (
                BrandingConfig {
                    logo_file: Some("missing.png".into()),
                    ..BrandingConfig::default()
                },
                "branding.logo_file",
            ),
        ] {
            let mut bad = bad;
            let (k, _) = bad.resolve(Path::new("/nowhere")).expect_err(key);
            assert_eq!(k, key);
        }
    }
}
