//! A session's requests in cluster mode: routed to the owners of their partitions.

use std::sync::Arc;

use swarmmq_protocol::{Opcode, Request, Response};
use tokio::sync::OwnedSemaphorePermit;

use super::{Outgoing, Session, respond};
use crate::cluster::{self, ClusterRuntime};

/// Whether a request goes through the cluster's routing (the rest are this node's own:
/// health, cluster status, authentication, key management).
pub(super) fn is_routed(req: &Request) -> bool {
    matches!(
        req,
        Request::Publish(_)
            | Request::Pull(_)
            | Request::Ack(_)
            | Request::Nack(_)
            | Request::ExtendLease(_)
            | Request::JoinGroup(_)
            | Request::Heartbeat(_)
            | Request::LeaveGroup(_)
            | Request::CommitOffsets(_)
            | Request::Seek(_)
            | Request::ListGroups
            | Request::DescribeGroup(_)
            | Request::CreateDestination(_)
            | Request::DeleteDestination { .. }
            | Request::ListDestinations
            | Request::DescribeDestination { .. }
            | Request::Metadata
    )
}

impl Session {
    pub(super) async fn handle_routed(
        &self,
        rt: Arc<ClusterRuntime>,
        corr: u32,
        op: Opcode,
        request: Request,
        direct: bool,
        permits: Vec<OwnedSemaphorePermit>,
    ) {
        let broker = Arc::clone(&self.broker);
        let out = self.out.clone();
        if direct && let Err(e) = rt.check_direct(&request) {
            respond(&broker, &out, corr, op, Err(e), permits).await;
            return;
        }
        match request {
            Request::Publish(req) => {
                // Prepared in line, like a local publish: the parts are queued at their
                // owners in the order this producer sent its batches.
                match cluster::prepare_publish(&broker, &rt, req, self.producer_id).await {
                    Ok(routed) => {
                        self.tasks.spawn(async move {
                            let r = routed.finish(&broker.metrics).await.map(Response::Publish);
                            respond(&broker, &out, corr, op, r, permits).await;
                        });
                    }
                    Err(e) => respond(&broker, &out, corr, op, Err(e), permits).await,
                }
            }
            Request::Pull(req) => {
                let cancel = self.shutdown.clone();
                self.tasks.spawn(async move {
                    match cluster::route_pull(&broker, &rt, req, corr, &cancel).await {
                        Ok(frame) => {
                            let _ = out
                                .send(Outgoing {
                                    frame,
                                    _permits: permits,
                                    close: false,
                                })
                                .await;
                        }
                        Err(e) => respond(&broker, &out, corr, op, Err(e), permits).await,
                    }
                });
            }
            req @ (Request::CreateDestination(_)
            | Request::DeleteDestination { .. }
            | Request::ListDestinations
            | Request::DescribeDestination { .. }
            | Request::Metadata) => {
                self.tasks.spawn(async move {
                    let r = cluster::route_admin(&broker, &rt, req).await;
                    respond(&broker, &out, corr, op, r, permits).await;
                });
            }
            req => {
                self.tasks.spawn(async move {
                    let r = cluster::route_consume(&broker, &rt, req).await;
                    respond(&broker, &out, corr, op, r, permits).await;
                });
            }
        }
    }
}
