//! TCP and UDP through one seam.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

use super::BoxFuture;

/// A byte stream in both directions. A trait object can name only one non-auto trait, so
/// this one gathers `AsyncRead + AsyncWrite`.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncStream for T {}

/// A connected TCP stream, real or simulated. Accept and connect are rare, so the box
/// costs nothing on the hot path.
pub type BoxStream = Box<dyn AsyncStream>;

/// A bound TCP listener.
pub trait Listener: Send + Sync {
    /// Waits for the next connection and returns it with the peer's address.
    fn accept(&self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>>;
    /// The address actually bound (the real port when `:0` was asked for).
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// A bound UDP socket (statsd).
pub trait Datagram: Send + Sync {
    /// Sends one datagram to `addr` (`"host:port"`).
    fn send_to<'a>(&'a self, buf: &'a [u8], addr: &'a str) -> BoxFuture<'a, io::Result<usize>>;
    /// Receives one datagram.
    fn recv_from<'a>(&'a self, buf: &'a mut [u8])
        -> BoxFuture<'a, io::Result<(usize, SocketAddr)>>;
    /// The address actually bound.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// Network access. Addresses are `"host:port"` strings so simulated DNS works.
pub trait Net: Send + Sync {
    /// Binds a TCP listener.
    fn bind_tcp<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Listener>>>;
    /// Opens a TCP connection.
    fn connect_tcp<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxStream>>;
    /// Binds a UDP socket.
    fn bind_udp<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Datagram>>>;
}

/// The accept queue asked of the kernel, which caps it at `net.core.somaxconn` (4096 on
/// current Linux), as Go's `net.Listen` uses that maximum: a mass reconnect after a
/// restart must not overflow it, or each dropped SYN costs its client a second.
const LISTEN_BACKLOG: u32 = 65_535;

/// Binds and listens on `addr` with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as std and
/// Go set it, so a restart can bind while old connections linger in TIME_WAIT).
fn listen(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The operating system's network, through tokio.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealNet;

struct RealListener(tokio::net::TcpListener);

impl Listener for RealListener {
    fn accept(&self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>> {
        Box::pin(async move {
            let (stream, peer) = self.0.accept().await?;
            // Responses are small and latency-sensitive; batching is done by our own
            // output buffer, so Nagle would only add delay.
            stream.set_nodelay(true)?;
            Ok((Box::new(stream) as BoxStream, peer))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

struct RealDatagram(tokio::net::UdpSocket);

impl Datagram for RealDatagram {
    fn send_to<'a>(&'a self, buf: &'a [u8], addr: &'a str) -> BoxFuture<'a, io::Result<usize>> {
        Box::pin(async move { self.0.send_to(buf, addr).await })
    }

    fn recv_from<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> BoxFuture<'a, io::Result<(usize, SocketAddr)>> {
        Box::pin(async move { self.0.recv_from(buf).await })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl Net for RealNet {
    fn bind_tcp<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let mut last_error = None;
            for addr in tokio::net::lookup_host(addr).await? {
                match listen(addr) {
                    Ok(listener) => {
                        return Ok(Box::new(RealListener(listener)) as Box<dyn Listener>)
                    }
                    Err(error) => last_error = Some(error),
                }
            }
            Err(last_error.unwrap_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "could not resolve to any address",
                )
            }))
        })
    }

    fn connect_tcp<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxStream>> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxStream)
        })
    }

    fn bind_udp<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Datagram>>> {
        Box::pin(async move {
            let socket = tokio::net::UdpSocket::bind(addr).await?;
            Ok(Box::new(RealDatagram(socket)) as Box<dyn Datagram>)
        })
    }
}
