//! The reference server for `scripts/load.sh`, plain actix-web with nothing else:
//! - `GET /v1/connections/{id}/token` answers a constant JSON body of `--body-bytes` bytes: the
//!   ceiling a real token fetch (same path shape, same body size, same client) is compared with;
//! - `GET /api/small` answers a small JSON body and `GET /api/bytes/{n}` streams `n` bytes: a
//!   local upstream for measuring the proxy.
//!
//! `cargo run --release --example ceiling -- [--body-bytes N]`; prints `listening on URL`.

use actix_web::body::SizedStream;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 160)]
    body_bytes: usize,
}

const CHUNK: usize = 64 * 1024;
static ZEROS: [u8; CHUNK] = [b'x'; CHUNK];

/// `{"access_token":"xxxx…","token_type":"Bearer"}`, padded to `len` bytes.
fn token_body(len: usize) -> Bytes {
    let frame = r#"{"access_token":"","token_type":"Bearer"}"#;
    let pad = len.saturating_sub(frame.len());
    Bytes::from(format!(
        r#"{{"access_token":"{}","token_type":"Bearer"}}"#,
        "x".repeat(pad)
    ))
}

async fn bytes(n: web::Path<u64>) -> HttpResponse {
    let total = n.into_inner();
    let chunks = futures_util::stream::unfold(total, |left| async move {
        if left == 0 {
            return None;
        }
        let len = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
        let chunk = Bytes::from_static(&ZEROS[..len]);
        Some((Ok::<_, std::io::Error>(chunk), left - len as u64))
    });
    HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(SizedStream::new(total, chunks))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let body = token_body(args.body_bytes);
    let server = HttpServer::new(move || {
        let body = body.clone();
        App::new()
            .route(
                "/v1/connections/{id}/token",
                web::get().to(move || {
                    let body = body.clone();
                    async move {
                        HttpResponse::Ok()
                            .content_type("application/json")
                            .body(body)
                    }
                }),
            )
            .route(
                "/api/small",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(r#"{"ok":true,"items":[1,2,3]}"#)
                }),
            )
            .route("/api/bytes/{n}", web::get().to(bytes))
    })
    .bind("127.0.0.1:0")?;
    let addr = server.addrs()[0];
    println!("listening on http://{addr}");
    server.run().await
}
