//! `GET /v1/backup`: a consistent snapshot of the database, streamed. This is how
//! `connect-appliance backup` copies a running appliance (redb allows one process per file).

use actix_web::{web, HttpResponse};

use crate::error::{AppError, ErrorBody};
use crate::state::AppState;

#[utoipa::path(get, path = "/v1/backup", tag = "operations",
    description = "A consistent copy of the whole database (every value still sealed: useless without the vault identity). Writes wait while the snapshot is taken.",
    responses((status = 200, description = "the redb database file", content_type = "application/octet-stream"),
        (status = 503, description = "storage_unavailable", body = ErrorBody)))]
pub async fn download(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let path = state.connections.snapshot().await?;
    let file = tokio::fs::File::open(&path).await;
    // Unlinked at once: the open handle keeps it readable, and nothing is left behind even if
    // the client goes away mid-transfer.
    let _ = std::fs::remove_file(&path);
    let file = file.map_err(|e| {
        crate::connections::ConnectError::Vault(crate::vault::VaultError::storage(e))
    })?;
    let len = file.metadata().await.map(|m| m.len()).map_err(|e| {
        crate::connections::ConnectError::Vault(crate::vault::VaultError::storage(e))
    })?;
    let stream = tokio_util::io::ReaderStream::new(file);
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(("content-length", len.to_string()))
        .insert_header((
            "content-disposition",
            "attachment; filename=\"connect-appliance-backup.redb\"",
        ))
        .streaming(stream))
}
