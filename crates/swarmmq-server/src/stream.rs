//! The byte streams a session can run on, split into a read half and a write half
//! that are driven by different tasks.

use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::tls::ServerTls;

/// A client connection's stream. Plain TCP splits into independent halves (no lock
/// between reader and writer: the fast path); TLS shares one state machine, so its
/// halves go through `tokio::io::split`.
pub(crate) trait SessionStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    type Read: AsyncRead + Unpin + Send + 'static;
    type Write: AsyncWrite + Unpin + Send + 'static;

    fn split_halves(self) -> (Self::Read, Self::Write);
}

impl SessionStream for TcpStream {
    type Read = OwnedReadHalf;
    type Write = OwnedWriteHalf;

    fn split_halves(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        self.into_split()
    }
}

impl SessionStream for ServerTls {
    type Read = ReadHalf<Self>;
    type Write = WriteHalf<Self>;

    fn split_halves(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }
}
