//! `/v1/webhooks/deliveries`: the outbox as the admin sees it (outcomes, never payloads), and
//! replay.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::rfc3339;
use crate::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::webhooks::model::{Delivery, DeliveryStatus};
use crate::webhooks::DeliveryQuery;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// Only this webhook's deliveries (its configured `id`).
    webhook: Option<String>,
    status: Option<DeliveryStatus>,
    /// Continue after this delivery id (the previous page's `next_cursor`).
    after: Option<String>,
    /// 1 to 500 (default 100).
    limit: Option<usize>,
}

/// One delivery of one event to one webhook.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    /// Also the `webhook-id` header: the same on every attempt and replay.
    id: String,
    webhook: String,
    event_id: u64,
    event_type: String,
    status: DeliveryStatus,
    attempts: u32,
    created_at: String,
    last_attempt_at: Option<String>,
    /// The receiver's last HTTP status, if it answered.
    last_status_code: Option<u16>,
    /// `http_status`, `timeout`, `connection_failed`, `request_failed`, `event_gone`, ...
    last_error: Option<String>,
    next_attempt_at: Option<String>,
    delivered_at: Option<String>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        DeliveryView {
            id: d.id,
            webhook: d.webhook,
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            created_at: rfc3339(d.created_at),
            last_attempt_at: d.last_attempt_at.map(rfc3339),
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            next_attempt_at: d.next_attempt_ms.map(|ms| rfc3339(ms.div_euclid(1000))),
            delivered_at: d.delivered_at.map(rfc3339),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveriesResponse {
    data: Vec<DeliveryView>,
    /// Pass as `after` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/webhooks/deliveries", tag = "webhooks", params(DeliveriesQuery),
    responses((status = 200, body = DeliveriesResponse), (status = 400, body = ErrorBody),
        (status = 401, description = "missing or wrong admin key", body = ErrorBody)))]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    query: web::Query<DeliveriesQuery>,
) -> Result<HttpResponse, AppError> {
    let q = query.into_inner();
    let limit = super::page_limit(q.limit, 100, 500)?;
    let page = state
        .webhooks
        .deliveries(DeliveryQuery {
            webhook: q.webhook,
            status: q.status,
            after: q.after,
            limit,
        })
        .await?;
    Ok(HttpResponse::Ok().json(DeliveriesResponse {
        data: page.data.into_iter().map(DeliveryView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(post, path = "/v1/webhooks/deliveries/{id}/replay", tag = "webhooks",
    params(("id" = String, Path, description = "delivery id")),
    responses((status = 202, description = "queued again", body = DeliveryView),
        (status = 401, description = "missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 409, description = "delivery_pending (already queued) or webhook_not_configured", body = ErrorBody)))]
pub async fn replay_delivery(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let delivery = state.webhooks.replay(&path.into_inner()).await?;
    Ok(HttpResponse::Accepted().json(DeliveryView::from(delivery)))
}
