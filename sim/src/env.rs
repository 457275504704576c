//! `Env` over turmoil.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use nsq::env::{
    BoxFuture, BoxStream, Clock, Datagram, Env, Listener, MemFs, Net, SeededRng, TaskMode,
};

/// turmoil's simulated network for the host the calling task runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimNet;

struct SimListener(turmoil::net::TcpListener);

impl Listener for SimListener {
    fn accept(&self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>> {
        Box::pin(async move {
            let (stream, peer) = self.0.accept().await?;
            Ok((Box::new(stream) as BoxStream, peer))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

struct SimDatagram(turmoil::net::UdpSocket);

impl Datagram for SimDatagram {
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

impl Net for SimNet {
    fn bind_tcp<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let listener = turmoil::net::TcpListener::bind(addr).await?;
            Ok(Box::new(SimListener(listener)) as Box<dyn Listener>)
        })
    }

    fn connect_tcp<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxStream>> {
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(stream) as BoxStream)
        })
    }

    fn bind_udp<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Datagram>>> {
        Box::pin(async move {
            let socket = turmoil::net::UdpSocket::bind(addr).await?;
            Ok(Box::new(SimDatagram(socket)) as Box<dyn Datagram>)
        })
    }
}

/// Wall time inside the simulation: the builder's epoch plus simulated time elapsed.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimClock;

impl Clock for SimClock {
    fn now_ns(&self) -> i64 {
        let since_epoch = turmoil::since_epoch().unwrap_or_default();
        i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX)
    }
}

/// The `Env` of one simulated host: turmoil's net and clock, `fs` (kept by the caller
/// across crashes) and an RNG seeded from the scenario seed and the host's index.
pub fn sim_env(fs: MemFs, seed: u64) -> Env {
    Env {
        clock: Arc::new(SimClock),
        net: Arc::new(SimNet),
        fs: Arc::new(fs),
        rng: Arc::new(SeededRng::new(seed)),
        tasks: TaskMode::Local,
    }
}
