//! Client requests and answers as they travel over the internal link: the same frames
//! as on the client port, so the owner runs exactly what a client connected to it
//! would have run.

use bytes::{Bytes, BytesMut};
use swarmmq_protocol::{
    Request, Response, decode_header, decode_request, decode_response, encode_request,
    encode_response,
};
use swarmmq_types::{ErrorCode, Limits};

use crate::error::RequestError;

fn internal(what: &str, e: impl std::fmt::Display) -> RequestError {
    RequestError::new(ErrorCode::Internal, format!("{what}: {e}"))
}

pub(crate) fn request_frame(req: &Request, limits: &Limits) -> Result<Bytes, RequestError> {
    let mut out = BytesMut::new();
    encode_request(0, req, limits, &mut out).map_err(|e| internal("encoding a forward", e))?;
    Ok(out.freeze())
}

pub(crate) fn decode_request_frame(frame: Bytes, limits: &Limits) -> Result<Request, RequestError> {
    let header = decode_header(&frame, limits).map_err(|e| internal("forwarded frame", e))?;
    let body = frame.slice(swarmmq_protocol::HEADER_LEN..);
    decode_request(&header, body, limits).map_err(|e| RequestError::new(e.code(), e.to_string()))
}

pub(crate) fn response_frame(
    req_opcode: swarmmq_protocol::Opcode,
    result: Result<Response, RequestError>,
    limits: &Limits,
) -> Bytes {
    let resp = result.unwrap_or_else(|e| {
        Response::Error(swarmmq_protocol::ErrorResponse {
            code: e.code,
            message: e.message,
        })
    });
    let mut out = BytesMut::new();
    if encode_response(0, req_opcode, &resp, limits, &mut out).is_err() {
        out.clear();
        let fallback = Response::Error(swarmmq_protocol::ErrorResponse {
            code: ErrorCode::Internal,
            message: "the owner could not encode its answer".into(),
        });
        let _ = encode_response(0, req_opcode, &fallback, limits, &mut out);
    }
    out.freeze()
}

/// The owner's answer; an error answer becomes `Err` with the owner's code and text.
pub(crate) fn decode_response_frame(
    frame: Bytes,
    limits: &Limits,
) -> Result<Response, RequestError> {
    let header = decode_header(&frame, limits).map_err(|e| internal("forwarded answer", e))?;
    let body = frame.slice(swarmmq_protocol::HEADER_LEN..);
    match decode_response(&header, body, limits).map_err(|e| internal("forwarded answer", e))? {
        Response::Error(e) => Err(RequestError::new(e.code, e.message)),
        other => Ok(other),
    }
}
