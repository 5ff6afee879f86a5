//! A node may answer a request and close the connection at once (an auth refusal does:
//! UNAUTHENTICATED, then close). The answer must reach the caller; it used to be lost
//! when the close was seen between queueing the request and returning its future.

use std::io::{Read, Write};
use std::net::TcpListener;

use bytes::BytesMut;
use swarmmq_client::{ClientError, Connection, Request, Response};
use swarmmq_protocol::{ErrorResponse, HEADER_LEN, decode_header, encode_error};
use swarmmq_types::{ErrorCode, Limits};

/// Serves `n` connections: reads one frame, answers it with an error, closes.
fn answer_and_close(listener: TcpListener, n: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let limits = Limits::DEFAULT;
        for _ in 0..n {
            let (mut s, _) = listener.accept().unwrap();
            let mut head = [0u8; HEADER_LEN];
            s.read_exact(&mut head).unwrap();
            let h = decode_header(&head, &limits).unwrap();
            let mut body = vec![0u8; h.body_len as usize];
            s.read_exact(&mut body).unwrap();
            let mut out = BytesMut::new();
            let err = ErrorResponse {
                code: ErrorCode::Unauthenticated,
                message: "go away".into(),
            };
            encode_error(h.correlation_id, h.opcode, &err, &limits, &mut out).unwrap();
            s.write_all(&out).unwrap();
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_sent_just_before_the_close_is_never_lost() {
    const N: usize = 300;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = answer_and_close(listener, N);
    for i in 0..N {
        let conn = Connection::connect(addr.as_str()).await.unwrap();
        match conn.send(&Request::Health).await {
            Ok(f) => match f.wait().await {
                Ok(Response::Error(e)) => assert_eq!(e.code, ErrorCode::Unauthenticated),
                other => panic!("round {i}: the answer was lost: {other:?}"),
            },
            // Only acceptable if the close was seen before the request was queued,
            // which cannot happen here: the node answers only after reading it.
            Err(e @ ClientError::ConnectionLost { .. }) => {
                panic!("round {i}: the answer was lost: {e}")
            }
            Err(e) => panic!("round {i}: {e}"),
        }
    }
    server.join().unwrap();
}
