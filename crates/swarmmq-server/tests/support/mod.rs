//! An in-process node on free ports with real TCP, and a raw frame client.

#![allow(dead_code)]

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use swarmmq_protocol::{
    FrameDecoder, PublishMessage, PublishRequest, Request, Response, decode_response,
    encode_request,
};
use swarmmq_server::{Node, NodeSettings, RunningNode};
use swarmmq_types::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub async fn start(dir: &std::path::Path, tweak: impl FnOnce(&mut NodeSettings)) -> RunningNode {
    let mut settings = NodeSettings::for_test(dir.to_path_buf());
    tweak(&mut settings);
    Node::start(settings).await.expect("node starts")
}

/// A bare protocol client: writes frames, reads frames.
pub struct Raw {
    pub stream: TcpStream,
    buf: BytesMut,
    decoder: FrameDecoder,
    limits: Limits,
}

impl Raw {
    pub async fn connect(node: &RunningNode) -> Raw {
        let stream = TcpStream::connect(node.client_addr())
            .await
            .expect("connect");
        Raw {
            stream,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(&Limits::DEFAULT),
            limits: Limits::DEFAULT,
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    pub async fn send(&mut self, corr: u32, req: &Request) {
        let mut out = BytesMut::new();
        encode_request(corr, req, &self.limits, &mut out).expect("encode");
        self.write(&out).await;
    }

    /// The next frame as (correlation id, opcode, response), or None at EOF.
    pub async fn recv(&mut self) -> Option<(u32, u8, Response)> {
        loop {
            if let Some(frame) = self
                .decoder
                .decode(&mut self.buf)
                .expect("valid frame from node")
            {
                let resp = decode_response(&frame.header, frame.body, &self.limits)
                    .expect("valid response");
                return Some((frame.header.correlation_id, frame.header.opcode, resp));
            }
            let n =
                tokio::time::timeout(Duration::from_secs(10), self.stream.read_buf(&mut self.buf))
                    .await
                    .expect("answer within 10 s")
                    .ok()?;
            if n == 0 {
                return None;
            }
        }
    }

    pub async fn call(&mut self, corr: u32, req: &Request) -> Response {
        self.send(corr, req).await;
        let (c, _, resp) = self.recv().await.expect("an answer");
        assert_eq!(c, corr);
        resp
    }
}

pub fn error_code(resp: &Response) -> Option<swarmmq_types::ErrorCode> {
    match resp {
        Response::Error(e) => Some(e.code),
        _ => None,
    }
}

/// A publish of one message with default settings (priority 5, no id, key or delay).
pub fn publish_one(dest: &str, payload: impl Into<Bytes>) -> Request {
    Request::Publish(PublishRequest {
        destination: dest.to_string(),
        acks: Default::default(),
        partition: None,
        messages: vec![PublishMessage {
            id: None,
            key: None,
            headers: vec![],
            priority: 5,
            deliver_at_ms: None,
            ttl_ms: None,
            payload: payload.into(),
        }],
    })
}
