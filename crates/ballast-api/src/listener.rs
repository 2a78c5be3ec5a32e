//! Accepting connections within a bound. Each accepted connection holds a permit for as long as
//! it is open; at `max_connections` the listener stops accepting and new connections wait in
//! the kernel's accept backlog, so a flood of connections costs the process neither memory
//! (each open connection pins its buffers and task) nor event-loop time.
//!
//! One type serves both front ends: axum through [`axum::serve::Listener`], tonic through
//! [`LimitedListener::into_incoming`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use metrics::{Counter, Gauge};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Open connections per listener: far more than any load balancer or client pool needs, and
/// small enough that their buffers stay within tens of MiB.
pub const DEFAULT_MAX_CONNECTIONS: usize = 2048;

pub struct LimitedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    open: Gauge,
    waited: Counter,
}

/// An accepted connection; closing it frees its permit.
pub struct LimitedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Drop for LimitedStream {
    fn drop(&mut self) {
        self.open.decrement(1.0);
    }
}

impl LimitedListener {
    pub fn new(inner: TcpListener, max_connections: usize, protocol: &'static str) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            open: ballast_serve::metrics::connection_gauge(protocol),
            waited: ballast_serve::metrics::connections_waiting(protocol),
        }
    }

    /// Waits for a free permit, then for a connection. Accept errors (out of file
    /// descriptors, a connection reset before it was accepted) are logged and retried after a
    /// short pause, as axum's own listener does.
    pub async fn accept_limited(&mut self) -> (LimitedStream, SocketAddr) {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                self.waited.increment(1);
                match self.permits.clone().acquire_owned().await {
                    Ok(p) => p,
                    // The semaphore is never closed; wait forever rather than spin if it were.
                    Err(_) => std::future::pending().await,
                }
            }
        };
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    // Small responses must not wait for Nagle + delayed ACK (~40 ms).
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                    self.open.increment(1.0);
                    return (
                        LimitedStream {
                            stream,
                            _permit: permit,
                            open: self.open.clone(),
                        },
                        addr,
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    /// The connection stream tonic's server takes.
    pub fn into_incoming(
        self,
    ) -> impl futures::Stream<Item = Result<LimitedStream, io::Error>> + Send + 'static {
        futures::stream::unfold(self, |mut listener| async move {
            let (stream, _) = listener.accept_limited().await;
            Some((Ok(stream), listener))
        })
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        self.accept_limited().await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl tonic::transport::server::Connected for LimitedStream {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
