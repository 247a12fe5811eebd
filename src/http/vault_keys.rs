//! `GET /v1/vault/data-key` and `POST /v1/vault/data-key/rotate`: data-key rotation while the
//! appliance serves (the work is in [`crate::vault::key_rotation`]).

use actix_web::{web, HttpResponse};

use crate::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::vault::key_rotation::RotationStatus;

#[utoipa::path(get, path = "/v1/vault/data-key", tag = "operations",
    description = "The active data key, older keys still stored, and the progress of the current or last rotation.",
    responses((status = 200, body = RotationStatus)))]
pub async fn status(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.key_rotation.status())
}

#[utoipa::path(post, path = "/v1/vault/data-key/rotate", tag = "operations",
    description = "Starts a data-key rotation in the background: new values are sealed under a fresh key at once, every stored value is re-sealed under it in short steps while the appliance keeps serving, then the old key is dropped. Resumes an unfinished rotation instead of adding another key. Poll `GET /v1/vault/data-key` for progress.",
    responses((status = 202, body = RotationStatus),
        (status = 409, description = "rotation_in_progress", body = ErrorBody)))]
pub async fn rotate(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let rotation = state.key_rotation.clone();
    let status = web::block(move || rotation.start())
        .await
        .map_err(|e| crate::connections::ConnectError::Internal(e.to_string()))??;
    Ok(HttpResponse::Accepted().json(status))
}
