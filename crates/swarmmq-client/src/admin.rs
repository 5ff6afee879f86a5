//! Destination management and node health.

use swarmmq_protocol::{
    CreateDestinationRequest, DestinationConfig, DestinationInfo, HealthResponse, MetadataResponse,
    Request, Response,
};

use crate::connection::Connection;
use crate::error::ClientError;

pub struct Admin {
    conn: Connection,
}

fn unexpected(op: &str) -> ClientError {
    ClientError::Protocol(format!("unexpected answer to {op}"))
}

impl Admin {
    pub async fn connect(addr: &str) -> Result<Admin, ClientError> {
        Ok(Admin {
            conn: Connection::connect(addr).await?,
        })
    }

    /// Creates a destination (`partitions` 0 = the node's default). Creating one that
    /// exists with the same settings succeeds and returns it.
    pub async fn create_destination(
        &self,
        name: &str,
        partitions: u32,
        config: DestinationConfig,
    ) -> Result<DestinationInfo, ClientError> {
        let req = Request::CreateDestination(CreateDestinationRequest {
            name: name.to_string(),
            partitions,
            config,
        });
        match self.conn.call(&req).await? {
            Response::CreateDestination(info) => Ok(info),
            _ => Err(unexpected("create")),
        }
    }

    pub async fn delete_destination(&self, name: &str) -> Result<(), ClientError> {
        match self
            .conn
            .call(&Request::DeleteDestination {
                name: name.to_string(),
            })
            .await?
        {
            Response::DeleteDestination => Ok(()),
            _ => Err(unexpected("delete")),
        }
    }

    pub async fn list_destinations(&self) -> Result<Vec<DestinationInfo>, ClientError> {
        match self.conn.call(&Request::ListDestinations).await? {
            Response::ListDestinations(list) => Ok(list),
            _ => Err(unexpected("list")),
        }
    }

    pub async fn describe_destination(&self, name: &str) -> Result<DestinationInfo, ClientError> {
        match self
            .conn
            .call(&Request::DescribeDestination {
                name: name.to_string(),
            })
            .await?
        {
            Response::DescribeDestination(info) => Ok(info),
            _ => Err(unexpected("describe")),
        }
    }

    pub async fn health(&self) -> Result<HealthResponse, ClientError> {
        match self.conn.call(&Request::Health).await? {
            Response::Health(h) => Ok(h),
            _ => Err(unexpected("health")),
        }
    }

    pub async fn metadata(&self) -> Result<MetadataResponse, ClientError> {
        match self.conn.call(&Request::Metadata).await? {
            Response::Metadata(m) => Ok(m),
            _ => Err(unexpected("metadata")),
        }
    }
}
