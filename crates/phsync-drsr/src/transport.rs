//! TCP transport for ncacn_ip_tcp: whole fragments in, whole PDUs out, with timeouts.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::{DrsrError, Result};
use super::pdu::{Header, HEADER_LEN};

pub struct Transport {
    stream: TcpStream,
    io_timeout: Duration,
}

impl Transport {
    pub async fn connect(
        host: &str,
        port: u16,
        what: &'static str,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> Result<Transport> {
        let addr = format!("{host}:{port}");
        let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(&addr)).await {
            Err(_) => {
                return Err(DrsrError::Unreachable {
                    what,
                    addr,
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {} s", connect_timeout.as_secs()),
                    ),
                })
            }
            Ok(Err(source)) => return Err(DrsrError::Unreachable { what, addr, source }),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        tracing::debug!(%addr, what, "connected");
        Ok(Transport { stream, io_timeout })
    }

    fn timeout_err(&self, what: &'static str) -> DrsrError {
        DrsrError::Timeout {
            what,
            seconds: self.io_timeout.as_secs(),
        }
    }

    pub async fn send(&mut self, pdu: &[u8]) -> Result<()> {
        match tokio::time::timeout(self.io_timeout, self.stream.write_all(pdu)).await {
            Err(_) => Err(self.timeout_err("sending a PDU")),
            Ok(Err(source)) => Err(DrsrError::Io {
                what: "sending a PDU",
                source,
            }),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Read exactly one fragment (header first, then frag_length - 16 bytes).
    pub async fn recv_fragment(&mut self) -> Result<Vec<u8>> {
        let io_timeout = self.io_timeout;
        let fut = async {
            let mut head = [0u8; HEADER_LEN];
            self.stream.read_exact(&mut head).await?;
            Ok::<_, std::io::Error>(head)
        };
        let head = match tokio::time::timeout(io_timeout, fut).await {
            Err(_) => return Err(self.timeout_err("waiting for a PDU")),
            Ok(Err(source)) => {
                return Err(DrsrError::Io {
                    what: "reading a PDU header",
                    source,
                })
            }
            Ok(Ok(h)) => h,
        };
        let header = Header::parse(&head)?;
        let mut frag = vec![0u8; header.frag_len as usize];
        frag[..HEADER_LEN].copy_from_slice(&head);
        match tokio::time::timeout(io_timeout, self.stream.read_exact(&mut frag[HEADER_LEN..]))
            .await
        {
            Err(_) => Err(self.timeout_err("reading a PDU body")),
            Ok(Err(source)) => Err(DrsrError::Io {
                what: "reading a PDU body",
                source,
            }),
            Ok(Ok(_)) => Ok(frag),
        }
    }
}
