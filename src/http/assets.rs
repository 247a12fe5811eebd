//! Static assets embedded in the binary: nothing is read from disk at run time.

use actix_web::{web, HttpResponse};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "assets/"]
struct Assets;

pub async fn serve(file: web::Path<String>) -> HttpResponse {
    embedded(&file)
}

/// One embedded file with its MIME type and a day of caching, or 404.
pub fn embedded(file: &str) -> HttpResponse {
    match Assets::get(file) {
        Some(content) => HttpResponse::Ok()
            .content_type(mime_guess::from_path(file).first_or_octet_stream().as_ref())
            .insert_header(("Cache-Control", "public, max-age=86400"))
            .body(content.data.into_owned()),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found"),
    }
}
