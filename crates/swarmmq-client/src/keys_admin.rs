//! Master-key administration of a node: usage per key id, rotation, retirement.

use swarmmq_protocol::{KeysStatusResponse, Request, Response};

use crate::admin::{Admin, unexpected};
use crate::error::ClientError;

impl Admin {
    /// The node's active master key id, and per key id its fingerprint, the bytes and
    /// batches stored under it, and whether it is retired.
    pub async fn keys_status(&self) -> Result<KeysStatusResponse, ClientError> {
        match self.conn.call(&Request::KeysStatus).await? {
            Response::KeysStatus(s) => Ok(s),
            _ => Err(unexpected("keys status")),
        }
    }

    /// Makes a new master key active for new writes; returns its id.
    pub async fn rotate_key(&self) -> Result<u32, ClientError> {
        match self.conn.call(&Request::KeysRotate).await? {
            Response::KeysRotate(r) => Ok(r.new_id),
            _ => Err(unexpected("keys rotate")),
        }
    }

    /// Removes the key of `id`; the node refuses while any stored data uses it or when
    /// it is the active key.
    pub async fn retire_key(&self, id: u32) -> Result<(), ClientError> {
        match self.conn.call(&Request::KeysRetire { id }).await? {
            Response::KeysRetire => Ok(()),
            _ => Err(unexpected("keys retire")),
        }
    }
}
