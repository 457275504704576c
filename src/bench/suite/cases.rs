//! The suite's cases: their names, the nsqd flags each starts with, and the client
//! workload each runs against the started server.
//!
//! Every nsqd flag used here is one Go nsqd v1.3.0 accepts under the same name, so a Go
//! binary can be the baseline; flags only our nsqd has stay out of the suite.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::process::Server;
use super::report::{Phase, Sample};
use super::{Durations, SuiteError};
use crate::bench::{
    insecure_client, run_latency, run_reader, run_writer, self_signed_pem, BenchError, Compression,
    FlushPolicy, LatencyConfig, ReaderConfig, Transport, WriterConfig,
};
use crate::client::{ClientError, Connection};
use crate::env::RealNet;
use crate::protocol::commands::Command;

/// One case of the suite; its [`name`](Case::name) is the key `--cases` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Case {
    /// `--mem-queue-size=1000000`: writer, then reader on the backlog.
    PubMem1m,
    /// The default `--mem-queue-size` (10000): writer, then reader.
    PubDefault,
    /// `--mem-queue-size=0`: writer, then reader.
    PubMem0,
    /// Latency at 50k msgs/s, default flags.
    LatencyDefault,
    /// Latency at 50k msgs/s, `--mem-queue-size=0`.
    LatencyMem0,
    /// `--mem-queue-size=0 --sync-every=1`, 16 publishers, one message per PUB.
    CrashSafeB1,
    /// `--mem-queue-size=0 --sync-every=1`, 16 publishers, MPUB of 200.
    CrashSafeB200,
    /// Writer and reader over snappy.
    Snappy,
    /// Writer and reader over deflate (level 6).
    Deflate,
    /// Writer and reader over TLS (self-signed certificate made at run time).
    Tls,
    /// 100 consumers with RDY 1 on one channel, on a backlog.
    Consumers100,
    /// 1,000 topics, one publishing connection each.
    Topics1000,
    /// The zero-work fake nsqd driven by writer and reader.
    Ceiling,
    /// nsqd's resident memory at rest.
    RssIdle,
    /// nsqd's resident memory per idle client: 10,000 connections that sent the magic.
    Idle10k,
    /// `pub-default`'s writer and reader while 200 connections dribble PUB commands one
    /// byte every 200 ms (slowloris); also nsqd's CPU per byte dribbled.
    Slowloris,
}

impl Case {
    /// Every case, in the order the suite runs and prints them.
    pub const ALL: [Case; 16] = [
        Case::PubMem1m,
        Case::PubDefault,
        Case::PubMem0,
        Case::LatencyDefault,
        Case::LatencyMem0,
        Case::CrashSafeB1,
        Case::CrashSafeB200,
        Case::Snappy,
        Case::Deflate,
        Case::Tls,
        Case::Consumers100,
        Case::Topics1000,
        Case::Ceiling,
        Case::RssIdle,
        Case::Idle10k,
        Case::Slowloris,
    ];

    /// The case's key, as `--cases` takes it and the table prints it.
    pub fn name(self) -> &'static str {
        match self {
            Case::PubMem1m => "pub-mem1m",
            Case::PubDefault => "pub-default",
            Case::PubMem0 => "pub-mem0",
            Case::LatencyDefault => "latency-default",
            Case::LatencyMem0 => "latency-mem0",
            Case::CrashSafeB1 => "crash-safe-b1",
            Case::CrashSafeB200 => "crash-safe-b200",
            Case::Snappy => "snappy",
            Case::Deflate => "deflate",
            Case::Tls => "tls",
            Case::Consumers100 => "consumers-100",
            Case::Topics1000 => "topics-1000",
            Case::Ceiling => "ceiling",
            Case::RssIdle => "rss-idle",
            Case::Idle10k => "idle-10k",
            Case::Slowloris => "slowloris",
        }
    }

    /// The case named `name`.
    pub fn from_name(name: &str) -> Option<Case> {
        Case::ALL.into_iter().find(|case| case.name() == name)
    }

    /// Whether the case runs against nsqd binaries (and so also the baseline); the
    /// ceiling runs the fake nsqd once per round instead.
    pub fn uses_nsqd(self) -> bool {
        self != Case::Ceiling
    }

    /// The nsqd flags beyond addresses, data path and log level; `{dir}` stands for the
    /// server's temporary directory.
    pub fn nsqd_flags(self) -> &'static [&'static str] {
        match self {
            Case::PubMem1m | Case::Snappy | Case::Deflate => &["--mem-queue-size=1000000"],
            Case::Tls => &[
                "--mem-queue-size=1000000",
                "--tls-cert={dir}/cert.pem",
                "--tls-key={dir}/key.pem",
            ],
            Case::PubMem0 | Case::LatencyMem0 => &["--mem-queue-size=0"],
            Case::CrashSafeB1 | Case::CrashSafeB200 => &["--mem-queue-size=0", "--sync-every=1"],
            Case::PubDefault
            | Case::LatencyDefault
            | Case::Consumers100
            | Case::Topics1000
            | Case::Ceiling
            | Case::RssIdle
            | Case::Idle10k
            | Case::Slowloris => &[],
        }
    }
}

/// Reads `--cases`: names separated by commas (spaces allowed), or `all`. Duplicates
/// are dropped; the suite runs the cases in [`Case::ALL`]'s order.
pub fn parse_cases(list: &str) -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == "all" {
            cases.extend(Case::ALL);
            continue;
        }
        match Case::from_name(name) {
            Some(case) => cases.push(case),
            None => {
                let known: Vec<&str> = Case::ALL.iter().map(|c| c.name()).collect();
                return Err(format!(
                    "unknown case {name:?}; the cases are: all, {}",
                    known.join(", ")
                ));
            }
        }
    }
    if cases.is_empty() {
        return Err("no case given".into());
    }
    cases.sort();
    cases.dedup();
    Ok(cases)
}

/// The bench's default message size, batch size, RDY and connections (bench.sh's).
const SIZE: usize = 200;
const BATCH: usize = 200;
const RDY: i64 = 2500;
const CONNECTIONS: usize = 2;
const TOPIC: &str = "sub_bench";
/// The latency cases' rate and batch (one MPUB of 50 every millisecond).
const LATENCY_RATE: u64 = 50_000;
const LATENCY_BATCH: usize = 50;
/// Slack on top of a phase's own duration before the suite gives up on it.
const PHASE_SLACK: Duration = Duration::from_secs(60);

/// What a case needs from the suite to run.
pub(super) struct CaseRun<'a> {
    /// How long each kind of phase runs.
    pub durations: &'a Durations,
    /// `--quick`: smaller backlogs too.
    pub quick: bool,
    /// `--idle-connections`, when given.
    pub idle_connections: Option<usize>,
}

/// The files a case's server needs in its directory (the TLS certificate and key).
pub(super) fn server_files(case: Case) -> Result<Vec<(&'static str, Vec<u8>)>, SuiteError> {
    if case != Case::Tls {
        return Ok(Vec::new());
    }
    let (cert, key) = self_signed_pem().map_err(|err| SuiteError::Tls(err.to_string()))?;
    Ok(vec![
        ("cert.pem", cert.into_bytes()),
        ("key.pem", key.into_bytes()),
    ])
}

/// Runs `case`'s workload against the started `server`; one sample per phase.
pub(super) async fn run_case(
    case: Case,
    server: &Server,
    run: &CaseRun<'_>,
) -> Result<Vec<(Phase, Sample)>, SuiteError> {
    let address = server.tcp.to_string();
    let d = run.durations;
    match case {
        Case::PubMem1m | Case::PubDefault | Case::PubMem0 | Case::Ceiling => {
            writer_then_reader(server, &address, d, plain()).await
        }
        Case::Snappy => {
            writer_then_reader(server, &address, d, compressed(Compression::Snappy)).await
        }
        Case::Deflate => {
            let transport = compressed(Compression::Deflate { level: 6 });
            writer_then_reader(server, &address, d, transport).await
        }
        Case::Tls => {
            let transport = Transport {
                tls: Some(insecure_client()?),
                ..plain()
            };
            writer_then_reader(server, &address, d, transport).await
        }
        Case::CrashSafeB1 | Case::CrashSafeB200 => {
            let batch = if case == Case::CrashSafeB1 { 1 } else { BATCH };
            let config = WriterConfig {
                connections: 16,
                batch_size: batch,
                single_pub: true,
                ..writer_config(&address, d.writer, plain())
            };
            Ok(vec![(Phase::Writer, writer_phase(server, &config).await?)])
        }
        Case::LatencyDefault | Case::LatencyMem0 => {
            let config = LatencyConfig {
                address,
                topic: "latency".into(),
                channel: "ch".into(),
                size: SIZE,
                rate: LATENCY_RATE,
                batch_size: LATENCY_BATCH,
                runfor: d.latency,
                rdy: RDY,
                drain_timeout: Duration::from_secs(5),
                transport: plain(),
            };
            let timeout = config.runfor + config.drain_timeout + PHASE_SLACK;
            let (summary, cpu) = measured(server, "latency", timeout, async {
                run_latency(Arc::new(RealNet), &config).await
            })
            .await?;
            let mut sample = Sample::throughput(summary.published_per_s(), cpu, summary.received);
            sample.latency = Some([summary.p50, summary.p99, summary.p999, summary.max]);
            if summary.received < summary.published {
                sample.note = Some(format!(
                    "{} of {} messages not delivered within the drain timeout",
                    summary.published - summary.received,
                    summary.published
                ));
            }
            Ok(vec![(Phase::Latency, sample)])
        }
        Case::Consumers100 => {
            let backlog = if run.quick { 100_000 } else { 1_000_000 };
            let timeout = Duration::from_secs(120);
            measured(
                server,
                "backlog",
                timeout,
                publish_backlog(&address, backlog),
            )
            .await?;
            let config = ReaderConfig {
                connections: 100,
                rdy: 1,
                flush_policy: FlushPolicy::Drained,
                ..reader_config(&address, d.reader, plain())
            };
            let mut sample = reader_phase(server, &config).await?;
            if sample.messages >= backlog {
                sample.note = Some("the backlog ran out before the run ended".into());
            }
            Ok(vec![(Phase::Reader, sample)])
        }
        Case::Topics1000 => {
            let config = WriterConfig {
                connections: 1000,
                batch_size: 10,
                topic_per_connection: true,
                ..writer_config(&address, d.reader, plain())
            };
            Ok(vec![(Phase::Writer, writer_phase(server, &config).await?)])
        }
        Case::RssIdle => {
            tokio::time::sleep(d.idle).await;
            Ok(vec![(Phase::Rss, Sample::rss(server.rss_kib()?))])
        }
        Case::Idle10k => {
            let default = if run.quick { 1_000 } else { IDLE_CONNECTIONS };
            let count = run.idle_connections.unwrap_or(default);
            let sample = idle_connections(server, count, d.idle).await?;
            Ok(vec![(Phase::Idle, sample)])
        }
        Case::Slowloris => {
            let dribblers = Dribblers::start(server.tcp, DRIBBLERS).await?;
            let cpu_before = server.cpu_time()?;
            let bytes_before = dribblers.bytes();
            tokio::time::sleep(d.idle).await;
            let cpu = server.cpu_time()?.saturating_sub(cpu_before);
            let dribbled = dribblers.bytes() - bytes_before;
            let mut phases = vec![(Phase::Dribble, Sample::per_byte(cpu, dribbled))];
            let good = writer_then_reader(server, &address, d, plain()).await;
            dribblers.stop();
            phases.extend(good?);
            Ok(phases)
        }
    }
}

/// Connections the slowloris case opens.
const DRIBBLERS: usize = 200;
/// How often each of them sends its next byte.
const DRIBBLE_EVERY: Duration = Duration::from_millis(200);

/// Connections that send PUB commands one byte at a time and never read.
struct Dribblers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    bytes: Arc<std::sync::atomic::AtomicU64>,
}

impl Dribblers {
    /// Opens `count` connections and starts dribbling on each (their starts spread
    /// over one period, so the bytes arrive evenly).
    async fn start(address: std::net::SocketAddr, count: usize) -> Result<Dribblers, SuiteError> {
        use tokio::io::AsyncWriteExt;
        crate::daemon::raise_open_file_limit();
        let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tasks = Vec::with_capacity(count);
        for i in 0..count {
            let connect = tokio::net::TcpStream::connect(address);
            let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
                .await
                .map_err(|_| dribble_error(std::io::ErrorKind::TimedOut.into()))?
                .map_err(dribble_error)?;
            stream.write_all(b"  V2").await.map_err(dribble_error)?;
            let counter = bytes.clone();
            let offset = DRIBBLE_EVERY.mul_f64(i as f64 / count as f64);
            tasks.push(tokio::spawn(async move {
                let command = b"PUB slowloris 5\nhello";
                tokio::time::sleep(offset).await;
                let mut tick = tokio::time::interval(DRIBBLE_EVERY);
                for byte in command.iter().cycle() {
                    tick.tick().await;
                    if stream.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }));
        }
        Ok(Dribblers { tasks, bytes })
    }

    /// Bytes dribbled so far.
    fn bytes(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

fn dribble_error(source: std::io::Error) -> SuiteError {
    SuiteError::Io {
        what: "opening a dribbling connection".into(),
        source,
    }
}

/// Connections the idle case opens.
const IDLE_CONNECTIONS: usize = 10_000;

/// Opens `count` connections that send the V2 magic and nothing else, lets them idle,
/// and reports nsqd's resident memory growth per connection.
async fn idle_connections(
    server: &Server,
    count: usize,
    idle: Duration,
) -> Result<Sample, SuiteError> {
    use tokio::io::AsyncWriteExt;
    crate::daemon::raise_open_file_limit();
    tokio::time::sleep(idle).await;
    let before = server.rss_kib()?;
    let mut streams = Vec::with_capacity(count);
    let io = |source: std::io::Error| SuiteError::Io {
        what: "opening an idle connection".into(),
        source,
    };
    for index in 0..count {
        let connect = connect_from(index, server.tcp);
        let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| io(std::io::ErrorKind::TimedOut.into()))?
            .map_err(io)?;
        stream.write_all(b"  V2").await.map_err(io)?;
        streams.push(stream);
    }
    // Past nsqd's quiet period, so what a connection keeps while idle is what counts.
    tokio::time::sleep(idle + Duration::from_secs(1)).await;
    let after = server.rss_kib()?;
    drop(streams);
    let kib = after.saturating_sub(before) as f64 / count as f64;
    Ok(Sample::per_connection(kib, count))
}

/// Connections per loopback source address: well under half of Linux's default
/// ephemeral port range (28,232 ports), beyond which finding a free port for a bound
/// socket slows to milliseconds per connect.
const CONNECTIONS_PER_SOURCE: usize = 10_000;

/// Connection `index` of many to `to`: from 127.0.0.1 for the first
/// [`CONNECTIONS_PER_SOURCE`], then from 127.0.0.2, 127.0.0.3..., so 100,000
/// connections do not run out of source ports.
async fn connect_from(
    index: usize,
    to: std::net::SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let source = u8::try_from(1 + index / CONNECTIONS_PER_SOURCE).unwrap_or(u8::MAX);
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, source], 0)))?;
    socket.connect(to).await
}

/// The suite's connect timeout: far above Go's one second, so a loaded machine opening
/// 1,000 connections does not fail a run.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn plain() -> Transport {
    Transport {
        connect_timeout: CONNECT_TIMEOUT,
        ..Transport::plain()
    }
}

fn compressed(compression: Compression) -> Transport {
    Transport {
        compression,
        ..plain()
    }
}

fn writer_config(address: &str, runfor: Duration, transport: Transport) -> WriterConfig {
    WriterConfig {
        address: address.to_owned(),
        topic: TOPIC.into(),
        size: SIZE,
        batch_size: BATCH,
        runfor,
        connections: CONNECTIONS,
        start_at: None,
        transport,
        topic_per_connection: false,
        single_pub: false,
        defer: None,
        count: None,
    }
}

fn reader_config(address: &str, runfor: Duration, transport: Transport) -> ReaderConfig {
    ReaderConfig {
        address: address.to_owned(),
        topic: TOPIC.into(),
        channel: "ch".into(),
        size: SIZE,
        rdy: RDY,
        runfor,
        connections: CONNECTIONS,
        start_at: None,
        flush_policy: FlushPolicy::Go,
        transport,
    }
}

/// bench.sh's pair: the writer for `durations.writer`, then the reader on its backlog
/// for `durations.reader`.
async fn writer_then_reader(
    server: &Server,
    address: &str,
    durations: &Durations,
    transport: Transport,
) -> Result<Vec<(Phase, Sample)>, SuiteError> {
    let writer = writer_config(address, durations.writer, transport.clone());
    let written = writer_phase(server, &writer).await?;
    let reader = reader_config(address, durations.reader, transport);
    let mut read = reader_phase(server, &reader).await?;
    if server_has_backlog(server) && read.messages >= written.messages {
        read.note = Some("the reader drained the whole backlog before its run ended".into());
    }
    Ok(vec![(Phase::Writer, written), (Phase::Reader, read)])
}

/// The fake streams without end: only a real nsqd's backlog can run out.
fn server_has_backlog(server: &Server) -> bool {
    server.http.is_some()
}

async fn writer_phase(server: &Server, config: &WriterConfig) -> Result<Sample, SuiteError> {
    let timeout = config.runfor + PHASE_SLACK;
    let (summary, cpu) = measured(server, "writer", timeout, async {
        run_writer(Arc::new(RealNet), config).await
    })
    .await?;
    Ok(Sample::throughput(
        summary.ops_per_s(),
        cpu,
        summary.messages,
    ))
}

async fn reader_phase(server: &Server, config: &ReaderConfig) -> Result<Sample, SuiteError> {
    let timeout = config.runfor + PHASE_SLACK;
    let (summary, cpu) = measured(server, "reader", timeout, async {
        run_reader(Arc::new(RealNet), config).await
    })
    .await?;
    Ok(Sample::throughput(
        summary.ops_per_s(),
        cpu,
        summary.messages,
    ))
}

/// Runs `work` within `timeout`, with the server's CPU time read before and after (None
/// if `/proc` could not be read).
async fn measured<T>(
    server: &Server,
    phase: &'static str,
    timeout: Duration,
    work: impl std::future::Future<Output = Result<T, BenchError>>,
) -> Result<(T, Option<Duration>), SuiteError> {
    let before = server.cpu_time().ok();
    let out = tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| SuiteError::Timeout {
            phase,
            after: timeout,
        })??;
    let after = server.cpu_time().ok();
    let cpu = before
        .zip(after)
        .map(|(before, after)| after.saturating_sub(before));
    Ok((out, cpu))
}

/// Publishes `count` messages (MPUBs of 200 from two connections) to the bench topic
/// before a consumer case starts.
async fn publish_backlog(address: &str, count: u64) -> Result<(), BenchError> {
    let body = Bytes::from(vec![0u8; SIZE]);
    let mut encoded = BytesMut::new();
    Command::Mpub {
        topic: TOPIC.into(),
        bodies: vec![body; BATCH],
    }
    .encode(&mut encoded);
    let encoded = encoded.freeze();
    let per_connection = count.div_ceil(CONNECTIONS as u64 * BATCH as u64);
    let mut workers = Vec::new();
    for index in 0..CONNECTIONS {
        let (address, encoded) = (address.to_owned(), encoded.clone());
        workers.push(tokio::spawn(async move {
            let publish = async {
                let mut conn = Connection::connect(&RealNet, &address).await?;
                for _ in 0..per_connection {
                    conn.send_raw(&encoded);
                    conn.flush().await?;
                    crate::bench::expect_ok(conn.read_response().await?)?;
                }
                Ok::<(), ClientError>(())
            };
            publish
                .await
                .map_err(|source| BenchError::Connection { index, source })
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{parse_cases, Case};

    #[test]
    fn every_case_has_a_unique_name_that_parses_back() {
        for case in Case::ALL {
            assert_eq!(Case::from_name(case.name()), Some(case));
        }
        let mut names: Vec<&str> = Case::ALL.iter().map(|c| c.name()).collect();
        names.dedup();
        assert_eq!(names.len(), Case::ALL.len());
    }

    #[test]
    fn a_list_is_read_in_suite_order_without_duplicates() {
        assert_eq!(
            parse_cases("rss-idle, ceiling,pub-mem1m,ceiling").unwrap(),
            vec![Case::PubMem1m, Case::Ceiling, Case::RssIdle]
        );
        assert_eq!(parse_cases("all").unwrap(), Case::ALL.to_vec());
        assert_eq!(parse_cases("tls,all").unwrap(), Case::ALL.to_vec());
    }

    #[test]
    fn an_unknown_or_empty_list_is_refused() {
        let err = parse_cases("pub-mem1m,nope").unwrap_err();
        assert!(
            err.contains("\"nope\"") && err.contains("rss-idle"),
            "{err}"
        );
        assert!(parse_cases(" , ").is_err());
    }

    #[test]
    fn only_flags_go_nsqd_knows_are_used() {
        let go_flags = [
            "--mem-queue-size",
            "--sync-every",
            "--tls-cert",
            "--tls-key",
        ];
        for case in Case::ALL {
            for flag in case.nsqd_flags() {
                let name = flag.split('=').next().unwrap_or_default();
                assert!(go_flags.contains(&name), "{}: {flag}", case.name());
            }
        }
    }
}
