//! HTTP on 8080: `GET /health` (JSON; 503 while starting or stopping) and
//! `GET /metrics` (Prometheus text).

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::broker::Broker;
use crate::metrics::Metrics;

#[derive(Clone)]
pub(crate) struct HttpState {
    /// Set once recovery has finished and the node serves clients.
    pub broker: Arc<OnceLock<Arc<Broker>>>,
    pub metrics: Arc<Metrics>,
    pub node_id: String,
    pub stopping: CancellationToken,
}

pub(crate) fn router(state: HttpState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/admin/cluster", get(cluster))
        .with_state(state)
}

async fn health(State(s): State<HttpState>) -> Response {
    let version = env!("CARGO_PKG_VERSION");
    let Some(broker) = s.broker.get() else {
        let body =
            serde_json::json!({"status": "starting", "node_id": s.node_id, "version": version});
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    };
    if s.stopping.is_cancelled() {
        let body =
            serde_json::json!({"status": "stopping", "node_id": s.node_id, "version": version});
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    }
    let destinations = broker.list().map(|d| d.len()).unwrap_or(0);
    let body = serde_json::json!({
        "status": admin::status(broker),
        "node_id": s.node_id,
        "version": version,
        "uptime_seconds": broker.started.elapsed().as_secs(),
        "destinations": destinations,
        "failed_partitions": broker.failures(),
        "disk_used_bytes": broker.disk_used(),
        "cluster": broker.cluster().map(|rt| crate::cluster::health_json(&rt)),
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// The cluster as this node sees it (one node, itself, when not in cluster mode).
async fn cluster(State(s): State<HttpState>) -> Response {
    let Some(broker) = s.broker.get() else {
        let body = serde_json::json!({"status": "starting", "node_id": s.node_id});
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    };
    match admin::cluster_status_json(broker) {
        Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        Err(e) => {
            let body = serde_json::json!({"error": e.code.name(), "message": e.message});
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
        }
    }
}

async fn metrics(State(s): State<HttpState>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}
