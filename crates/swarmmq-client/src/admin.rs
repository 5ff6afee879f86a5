//! Destination and consumer-group management, and node health.

use swarmmq_protocol::{
    CreateDestinationRequest, DescribeGroupRequest, DestinationConfig, DestinationInfo,
    GroupDescription, GroupSummary, HealthResponse, MetadataResponse, Request, Response,
};

use crate::connection::Connection;
use crate::error::ClientError;
use crate::options::ConnectOptions;

pub struct Admin {
    pub(crate) conn: Connection,
}

pub(crate) fn unexpected(op: &str) -> ClientError {
    ClientError::Protocol(format!("unexpected answer to {op}"))
}

impl Admin {
    pub async fn connect(options: impl Into<ConnectOptions>) -> Result<Admin, ClientError> {
        Ok(Admin {
            conn: Connection::connect(options).await?,
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

    /// The cluster as this node sees it, as the one JSON object of docs/cluster.md
    /// (`cluster`, `node`, `leader`, `term`, `healthy`, `nodes`). Returned as text so the
    /// SDK needs no JSON library; parse it with any.
    pub async fn cluster_status(&self) -> Result<String, ClientError> {
        match self.conn.call(&Request::ClusterStatus).await? {
            Response::ClusterStatus { json } => Ok(json),
            _ => Err(unexpected("cluster status")),
        }
    }

    /// Every consumer group the node knows, with its destination and mode.
    pub async fn list_groups(&self) -> Result<Vec<GroupSummary>, ClientError> {
        match self.conn.call(&Request::ListGroups).await? {
            Response::ListGroups(g) => Ok(g),
            _ => Err(unexpected("list groups")),
        }
    }

    /// Members, assignment, positions and counts of one group on one destination.
    pub async fn describe_group(
        &self,
        destination: &str,
        group: &str,
    ) -> Result<GroupDescription, ClientError> {
        let req = Request::DescribeGroup(DescribeGroupRequest {
            destination: destination.to_string(),
            group: group.to_string(),
        });
        match self.conn.call(&req).await? {
            Response::DescribeGroup(d) => Ok(d),
            _ => Err(unexpected("describe group")),
        }
    }
}
