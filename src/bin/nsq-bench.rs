//! `nsq-bench writer|reader|latency|fake-nsqd|suite`: Go's bench_writer and bench_reader
//! against any nsqd, a latency probe, a zero-work fake nsqd, and the suite that starts
//! nsqd binaries itself and reproduces every figure of the README's benchmark section.
//!
//! `writer` and `reader` print Go's result line on stdout:
//! `duration: <D> - <X>mb/s - <Y>ops/s - <Z>us/op` (mb/s is MiB/s). `latency` prints
//! one `latency: ...` line; `suite` prints its progress on stderr and a markdown report
//! on stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio::time::Instant;

use nsq::bench::suite::{parse_cases, Durations};
use nsq::bench::{
    insecure_client, run_latency, run_reader, run_suite, run_writer, Compression, FakeNsqd,
    FakeNsqdOptions, FlushPolicy, LatencyConfig, ReaderConfig, SuiteConfig, Transport,
    WriterConfig,
};
use nsq::env::{Clock, RealClock, RealNet};
use nsq::go_time::{format_go_duration, parse_deadline, parse_go_duration};

#[derive(Parser, Debug)]
#[command(
    name = "nsq-bench",
    version,
    about = "NSQ benchmarks: Go's bench_writer and bench_reader, a latency probe, a \
             zero-work fake nsqd, and a suite that runs them all against nsqd binaries"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Publish synchronous MPUB batches (bench_writer).
    Writer(WriterArgs),
    /// Subscribe and FIN every message (bench_reader).
    Reader(ReaderArgs),
    /// Publish at a fixed rate while consuming; print publish-to-deliver latency.
    Latency(LatencyArgs),
    /// A zero-work nsqd: OK to every publish, endless pre-encoded messages under RDY.
    FakeNsqd(FakeNsqdArgs),
    /// Start nsqd binaries and run every benchmark case against them, A/B per round.
    Suite(SuiteArgs),
}

/// How the connections talk to nsqd beyond plain V2.
#[derive(Args, Debug)]
struct TransportArgs {
    /// Negotiate snappy compression in IDENTIFY (an error if nsqd refuses).
    #[arg(long, conflicts_with = "deflate")]
    snappy: bool,
    /// Negotiate deflate compression in IDENTIFY (an error if nsqd refuses).
    #[arg(long)]
    deflate: bool,
    /// The deflate level to ask for (nsqd caps it at its --max-deflate-level).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=9))]
    deflate_level: u32,
    /// Upgrade to TLS after IDENTIFY (nsqd needs --tls-cert and --tls-key). BENCH ONLY:
    /// the server's certificate is not verified.
    #[arg(long)]
    tls: bool,
}

/// Flags both modes share, with Go's names and defaults.
#[derive(Args, Debug)]
struct CommonArgs {
    /// Duration of time to run (Go syntax: 10s, 1m30s, 500ms).
    #[arg(long, default_value = "10s", value_parser = parse_runfor)]
    runfor: Duration,
    /// <addr>:<port> to connect to nsqd.
    #[arg(long, default_value = "127.0.0.1:4150")]
    nsqd_tcp_address: String,
    /// <addr>:<port> of an nsqlookupd's HTTP API (repeatable): find the nsqd holding
    /// `--topic` there instead of using `--nsqd-tcp-address`.
    #[arg(long)]
    lookupd_http_address: Vec<String>,
    /// Size of messages in bytes.
    #[arg(long, default_value_t = 200)]
    size: usize,
    /// Topic to publish to or receive messages on.
    #[arg(long, default_value = "sub_bench")]
    topic: String,
    /// Connections to open (default: the number of CPUs, like Go's GOMAXPROCS workers).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    connections: Option<u32>,
    /// Deadline to start the benchmark run, "2006-01-02 15:04:05" in UTC.
    #[arg(long)]
    deadline: Option<String>,
    #[command(flatten)]
    transport: TransportArgs,
}

#[derive(Args, Debug)]
struct WriterArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Messages per MPUB (with --defer: DPUBs sent together before their OKs are read).
    #[arg(long, default_value_t = 200)]
    batch_size: usize,
    /// Publish with DPUB, each message deferred this long (Go syntax: 1h, 90s).
    #[arg(long, value_parser = parse_runfor)]
    defer: Option<Duration>,
    /// Stop once this many messages are published (or --runfor passes).
    #[arg(long)]
    count: Option<u64>,
}

#[derive(Args, Debug)]
struct ReaderArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Channel to receive messages on.
    #[arg(long, default_value = "ch")]
    channel: String,
    /// RDY count to use.
    #[arg(long, default_value_t = 2500)]
    rdy: i64,
    /// When FINs are flushed: `go` (when count % rdy > 0.75*rdy, as Go does) or `drained`
    /// (whenever no received frame is left to handle).
    #[arg(long, value_enum, default_value_t = FinFlush::Go)]
    fin_flush: FinFlush,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum FinFlush {
    Go,
    Drained,
}

#[derive(Args, Debug)]
struct LatencyArgs {
    /// <addr>:<port> to connect to nsqd.
    #[arg(long, default_value = "127.0.0.1:4150")]
    nsqd_tcp_address: String,
    /// How long to publish (Go syntax).
    #[arg(long, default_value = "5s", value_parser = parse_runfor)]
    runfor: Duration,
    /// Messages per second to publish.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    rate: u64,
    /// Messages per publish: PUB for 1, MPUB for more; one publish every batch/rate
    /// seconds.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// Size of messages in bytes.
    #[arg(long, default_value_t = 200)]
    size: usize,
    /// Topic to publish to (use a fresh one: a backlog would be timed too).
    #[arg(long, default_value = "latency_bench")]
    topic: String,
    /// Channel to consume from.
    #[arg(long, default_value = "ch")]
    channel: String,
    /// The consumer's RDY count.
    #[arg(long, default_value_t = 2500)]
    rdy: i64,
    /// How long to wait, after publishing ends, for messages still on their way.
    #[arg(long, default_value = "5s", value_parser = parse_runfor)]
    drain_timeout: Duration,
    #[command(flatten)]
    transport: TransportArgs,
}

#[derive(Args, Debug)]
struct FakeNsqdArgs {
    /// <addr>:<port> to listen on for V2 TCP clients.
    #[arg(long, default_value = "127.0.0.1:4150")]
    tcp_address: String,
    /// Body bytes of every message it streams.
    #[arg(long, default_value_t = 200)]
    size: usize,
    /// Answer IDENTIFY with snappy and deflate off.
    #[arg(long)]
    no_compression: bool,
}

#[derive(Args, Debug)]
struct SuiteArgs {
    /// Our nsqd binary (default: the `nsqd` next to this executable).
    #[arg(long)]
    nsqd: Option<PathBuf>,
    /// Another nsqd binary (e.g. Go's) to run in the same rounds, alternating with ours.
    #[arg(long)]
    baseline_nsqd: Option<PathBuf>,
    /// Runs per binary and case (2: A/B/A/B).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// How long writers run (default 10s; 1s with --quick).
    #[arg(long, value_parser = parse_runfor)]
    runfor_writer: Option<Duration>,
    /// How long readers, many-consumer and many-topic runs last (default 5s; 500ms with
    /// --quick).
    #[arg(long, value_parser = parse_runfor)]
    runfor_reader: Option<Duration>,
    /// How long the latency probe publishes (default 5s; 1s with --quick).
    #[arg(long, value_parser = parse_runfor)]
    runfor_latency: Option<Duration>,
    /// Cases to run, comma-separated, or `all`: pub-mem1m, pub-default, pub-mem0,
    /// latency-default, latency-mem0, crash-safe-b1, crash-safe-b200, snappy, deflate,
    /// tls, consumers-100, topics-1000, ceiling, rss-idle, idle-10k, slowloris.
    #[arg(long, default_value = "all")]
    cases: String,
    /// How many connections the idle-10k case opens (default 10,000; 1,000 with
    /// --quick). Beyond about 20,000, raise the hard open-file limit first.
    #[arg(long)]
    idle_connections: Option<usize>,
    /// Short runs and small backlogs: a smoke test, not figures to publish.
    #[arg(long)]
    quick: bool,
}

/// Go's `flag.Duration`; a negative duration runs one round, as in Go.
fn parse_runfor(text: &str) -> Result<Duration, String> {
    let ns = parse_go_duration(text).map_err(|e| e.to_string())?;
    Ok(Duration::from_nanos(u64::try_from(ns).unwrap_or(0)))
}

/// When `--deadline` falls on the runtime's clock; one in the past starts at once, as in Go.
fn start_at(deadline: Option<&str>) -> Result<Option<Instant>, String> {
    let Some(text) = deadline else {
        return Ok(None);
    };
    let start_s = parse_deadline(text).map_err(|e| e.to_string())?;
    let wait_ns = start_s.saturating_mul(1_000_000_000) - RealClock.now_ns();
    eprintln!(
        "[nsq-bench] sleeping until {text} +0000 UTC ({})",
        format_go_duration(wait_ns)
    );
    let wait = Duration::from_nanos(u64::try_from(wait_ns).unwrap_or(0));
    Ok(Some(Instant::now() + wait))
}

fn transport(args: &TransportArgs) -> Result<Transport, String> {
    let compression = if args.snappy {
        Compression::Snappy
    } else if args.deflate {
        Compression::Deflate {
            level: args.deflate_level,
        }
    } else {
        Compression::None
    };
    let tls = if args.tls {
        Some(insecure_client().map_err(|e| e.to_string())?)
    } else {
        None
    };
    Ok(Transport {
        compression,
        tls,
        ..Transport::plain()
    })
}

fn connections(common: &CommonArgs) -> usize {
    match common.connections {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// The nsqd to use: `--nsqd-tcp-address`, or the first nsqd a lookupd lists for the topic.
async fn nsqd_address(common: &CommonArgs) -> Result<String, String> {
    if common.lookupd_http_address.is_empty() {
        return Ok(common.nsqd_tcp_address.clone());
    }
    let timeouts = nsq::http_client::HttpTimeouts {
        connect: Duration::from_secs(2),
        request: Duration::from_secs(5),
    };
    let found = nsq::client::lookup_nsqds(
        &RealNet,
        &common.lookupd_http_address,
        &common.topic,
        timeouts,
    )
    .await
    .map_err(|e| e.to_string())?;
    found
        .into_iter()
        .next()
        .ok_or_else(|| format!("no nsqd holds topic {} in the lookupds", common.topic))
}

async fn run(mode: Mode) -> Result<String, String> {
    let net = Arc::new(RealNet);
    match mode {
        Mode::Writer(args) => {
            let config = WriterConfig {
                address: nsqd_address(&args.common).await?,
                topic: args.common.topic.clone(),
                size: args.common.size,
                batch_size: args.batch_size,
                runfor: args.common.runfor,
                connections: connections(&args.common),
                start_at: start_at(args.common.deadline.as_deref())?,
                transport: transport(&args.common.transport)?,
                topic_per_connection: false,
                single_pub: false,
                defer: args.defer,
                count: args.count,
            };
            let summary = run_writer(net, &config).await.map_err(|e| e.to_string())?;
            Ok(summary.to_string())
        }
        Mode::Reader(args) => {
            let config = ReaderConfig {
                address: nsqd_address(&args.common).await?,
                topic: args.common.topic.clone(),
                channel: args.channel,
                size: args.common.size,
                rdy: args.rdy,
                runfor: args.common.runfor,
                connections: connections(&args.common),
                start_at: start_at(args.common.deadline.as_deref())?,
                flush_policy: match args.fin_flush {
                    FinFlush::Go => FlushPolicy::Go,
                    FinFlush::Drained => FlushPolicy::Drained,
                },
                transport: transport(&args.common.transport)?,
            };
            let summary = run_reader(net, &config).await.map_err(|e| e.to_string())?;
            Ok(summary.to_string())
        }
        Mode::Latency(args) => {
            let config = LatencyConfig {
                address: args.nsqd_tcp_address,
                topic: args.topic,
                channel: args.channel,
                size: args.size,
                rate: args.rate,
                batch_size: usize::try_from(args.batch_size).unwrap_or(usize::MAX),
                runfor: args.runfor,
                rdy: args.rdy,
                drain_timeout: args.drain_timeout,
                transport: transport(&args.transport)?,
            };
            let summary = run_latency(net, &config).await.map_err(|e| e.to_string())?;
            Ok(summary.to_string())
        }
        Mode::FakeNsqd(args) => fake_nsqd(args).await,
        Mode::Suite(args) => suite(args).await,
    }
}

/// Serves until SIGINT or SIGTERM; the totals go to stdout at exit.
async fn fake_nsqd(args: FakeNsqdArgs) -> Result<String, String> {
    let options = FakeNsqdOptions {
        compression_enabled: !args.no_compression,
        message_size: args.size,
    };
    let mut signals = nsq::daemon::ExitSignals::watch().map_err(|e| e.to_string())?;
    let fake = FakeNsqd::bind(&args.tcp_address, options)
        .await
        .map_err(|e| format!("listen on {}: {e}", args.tcp_address))?;
    eprintln!("[nsq-bench] fake-nsqd listening on {}", fake.address());
    signals.recv().await;
    Ok(format!(
        "fake-nsqd: {} published, {} finished",
        fake.published(),
        fake.finished()
    ))
}

/// The `nsqd` beside this executable.
fn nsqd_beside_us() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let dir = exe
        .parent()
        .ok_or_else(|| format!("{} has no directory", exe.display()))?;
    Ok(dir.join("nsqd"))
}

/// The command line as typed, for the report (arguments with spaces quoted).
fn command_line() -> String {
    let mut args = std::env::args();
    let program = args
        .next()
        .and_then(|p| {
            PathBuf::from(p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "nsq-bench".into());
    let mut line = program;
    for arg in args {
        line.push(' ');
        if arg.is_empty() || arg.contains(char::is_whitespace) {
            line.push_str(&format!("'{arg}'"));
        } else {
            line.push_str(&arg);
        }
    }
    line
}

async fn suite(args: SuiteArgs) -> Result<String, String> {
    let nsqd = match args.nsqd {
        Some(path) => path,
        None => nsqd_beside_us()?,
    };
    let config = SuiteConfig {
        nsqd,
        baseline_nsqd: args.baseline_nsqd,
        bench: std::env::current_exe().ok(),
        rounds: args.rounds as usize,
        durations: Durations::resolve(
            args.quick,
            args.runfor_writer,
            args.runfor_reader,
            args.runfor_latency,
        ),
        cases: parse_cases(&args.cases)?,
        quick: args.quick,
        idle_connections: args.idle_connections,
        command_line: command_line(),
    };
    let report = run_suite(&config, &mut |line| eprintln!("[nsq-bench suite] {line}"))
        .await
        .map_err(|e| e.to_string())?;
    let markdown = report.markdown();
    if report.results.failures.is_empty() {
        Ok(markdown)
    } else {
        // The report still goes out; the exit status says something failed.
        println!("{markdown}");
        Err(format!(
            "{} run(s) failed (see \"Failed runs\" above)",
            report.results.failures.len()
        ))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("[nsq-bench] cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.mode)) {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("[nsq-bench] {err}");
            ExitCode::FAILURE
        }
    }
}
