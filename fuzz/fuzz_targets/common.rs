//! What the server-backed targets share: one background runtime, real loopback sockets
//! with a bounded wait, and an in-memory file system (nothing touches the disk).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use nsq::env::{Env, MemFs, RealClock, RealNet, SeededRng, TaskMode};

/// A wait longer than this is a hang: the target panics and libFuzzer keeps the input.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The most response bytes read per input (every answer is far smaller).
pub const RESPONSE_BYTES_MAX: u64 = 1 << 20;

/// A one-worker runtime the daemons run on, beside the fuzzing thread.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// Real sockets, the system clock, a fixed seed and a `MemFs`.
pub fn env() -> Env {
    Env {
        clock: Arc::new(RealClock),
        net: Arc::new(RealNet),
        fs: Arc::new(MemFs::new()),
        rng: Arc::new(SeededRng::new(13)),
        tasks: TaskMode::Runtime,
    }
}

/// Sends `request`, closes the write half if `half_close` (hyper answers nothing to a
/// request whose connection is half-closed, so HTTP asks `Connection: close` instead),
/// and reads the answer to the end.
pub fn exchange(addr: SocketAddr, request: &[u8], half_close: bool) -> Vec<u8> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    // The server may close first (a fatal error): a write error is then expected.
    let _ = stream.write_all(request);
    if half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut answer = Vec::new();
    match (&mut stream)
        .take(RESPONSE_BYTES_MAX)
        .read_to_end(&mut answer)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "no answer within {IO_TIMEOUT:?}: {e} (after {} bytes)",
            answer.len()
        ),
    }
    answer
}
