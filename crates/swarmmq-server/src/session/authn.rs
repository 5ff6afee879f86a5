//! The session's side of authentication: Authenticate, the per-request re-check that
//! makes a revocation reach an open connection, and refusals (one log line each,
//! counted by reason, never with a secret in them).

use std::sync::Arc;

use swarmmq_auth::key_id_of;
use swarmmq_protocol::{AuthenticateRequest, AuthenticateResponse, Opcode, Response};
use swarmmq_types::ErrorCode;
use tokio::sync::OwnedSemaphorePermit;

use super::{Session, respond};
use crate::error::RequestError;

/// What a refused key is told: which part failed is for the node's log only.
const INVALID_KEY: &str = "invalid API key";

impl Session {
    /// Mutual TLS: a verified client certificate whose subject CN names an active API
    /// key acts as that key from the first request on (no Authenticate needed); an
    /// Authenticate later replaces it. A CN naming no key grants nothing.
    pub(super) fn adopt_certificate_identity(&mut self) {
        let auth = &self.broker.auth;
        let Some(cn) = self.tls_identity.as_deref() else {
            return;
        };
        if !auth.enabled {
            return;
        }
        let generation = auth.generation();
        if let Some(principal) = auth.store().principal_for_name(cn) {
            tracing::debug!(ip = %self.peer.ip(), key_id = %principal.key_id, name = %principal.name, "authenticated by client certificate");
            self.principal = Some(principal);
            self.principal_generation = generation;
        }
    }

    /// Looks the principal's key up again after the key file was reloaded, taking its
    /// current permissions, or dropping it once the key is revoked or gone.
    pub(super) fn recheck_principal(&mut self) {
        let auth = &self.broker.auth;
        let generation = auth.generation();
        if generation == self.principal_generation {
            return;
        }
        self.principal_generation = generation;
        let Some(current) = self.principal.take() else {
            return;
        };
        match auth.store().principal_for_id(&current.key_id) {
            Some(fresh) => self.principal = Some(fresh),
            None => {
                tracing::warn!(
                    ip = %self.peer.ip(),
                    key_id = %current.key_id,
                    reason = "revoked",
                    "API key revoked; this connection's requests are refused from now on"
                );
                self.revoked_key = Some(current.key_id);
            }
        }
    }

    /// Answers an Authenticate. Returns false when the connection must close (the
    /// address is blocked for too many failed attempts).
    pub(super) async fn authenticate(
        &mut self,
        corr: u32,
        op: Opcode,
        req: AuthenticateRequest,
        permits: Vec<OwnedSemaphorePermit>,
    ) -> bool {
        let broker = Arc::clone(&self.broker);
        let auth = &broker.auth;
        if !auth.enabled {
            let answer = Response::Authenticate(AuthenticateResponse {
                principal: "anonymous".into(),
            });
            respond(&broker, &self.out, corr, op, Ok(answer), permits).await;
            return true;
        }
        let ip = self.peer.ip();
        let key_id = key_id_of(&req.api_key).unwrap_or("-");
        if let Err(left) = auth.check_ip(ip) {
            tracing::warn!(%ip, key_id, reason = "rate_limited", "authentication refused; closing the connection");
            broker.metrics.auth_failure("rate_limited");
            broker.metrics.error(ErrorCode::Unauthenticated);
            let e = RequestError::new(
                ErrorCode::Unauthenticated,
                format!(
                    "too many failed attempts from {ip}; try again in {} s",
                    left.as_secs().max(1)
                ),
            );
            self.send_error(corr, Some(op.as_u8()), e, permits, true)
                .await;
            return false;
        }
        // Generation before store: a reload in between only causes an extra re-check.
        let generation = auth.generation();
        match auth.store().verify(&req.api_key) {
            Ok(principal) => {
                tracing::debug!(%ip, key_id = %principal.key_id, name = %principal.name, "authenticated");
                let answer = Response::Authenticate(AuthenticateResponse {
                    principal: principal.name.clone(),
                });
                self.principal = Some(principal);
                self.principal_generation = generation;
                self.revoked_key = None;
                respond(&broker, &self.out, corr, op, Ok(answer), permits).await;
            }
            Err(e) => {
                // A failed attempt also ends whatever this connection was before.
                self.principal = None;
                let blocked = auth.record_failure(ip);
                tracing::warn!(%ip, key_id = e.key_id().unwrap_or(key_id), reason = e.reason(), blocked, "authentication failed");
                broker.metrics.auth_failure(e.reason());
                broker.metrics.error(ErrorCode::Unauthenticated);
                let e = RequestError::new(ErrorCode::Unauthenticated, INVALID_KEY);
                self.send_error(corr, Some(op.as_u8()), e, permits, false)
                    .await;
            }
        }
        true
    }

    /// Answers a request that [`crate::auth::authorize`] refused. The connection stays.
    pub(super) async fn refuse_request(
        &self,
        corr: u32,
        op: Opcode,
        mut err: RequestError,
        permits: Vec<OwnedSemaphorePermit>,
    ) -> bool {
        let ip = self.peer.ip();
        let key_id = self
            .principal
            .as_ref()
            .map(|p| p.key_id.as_str())
            .or(self.revoked_key.as_deref())
            .unwrap_or("-");
        let reason = match (err.code, &self.revoked_key) {
            (ErrorCode::Forbidden, _) => "forbidden",
            (_, Some(id)) => {
                err.message = format!("API key {id} was revoked; use another key");
                "revoked"
            }
            _ => "missing_key",
        };
        tracing::warn!(%ip, key_id, reason, opcode = ?op, error = %err.message, "request refused");
        self.broker.metrics.auth_failure(reason);
        self.broker.metrics.error(err.code);
        self.send_error(corr, Some(op.as_u8()), err, permits, false)
            .await;
        true
    }
}
