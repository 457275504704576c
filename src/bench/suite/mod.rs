//! `nsq-bench suite`: every figure of the README's benchmark section from one command.
//!
//! For each case and each round, the suite starts our nsqd (and, with a baseline, the
//! other binary right after it: A/B/A/B) as a child process on free loopback ports with a
//! fresh temporary data directory, waits for `GET /ping`, runs the case's client
//! workload in this process (the bench's writer, reader and latency probe), reads the
//! child's CPU time from `/proc/PID/stat` before and after each measured phase, and
//! stops the child (SIGTERM, SIGKILL after a timeout). A run that fails is reported
//! with the child's log and the suite goes on. The result is a markdown table of
//! min / median / max over the rounds.
//!
//! # Layout
//! - `cases.rs`: [`Case`] (names, nsqd flags, workloads) and [`parse_cases`].
//! - `process.rs`: the child process, ports, temporary directory, `/proc` parsing.
//! - `report.rs`: [`Sample`], [`Spread`], [`Results`] and the markdown table.

mod cases;
mod process;
mod report;

use std::path::PathBuf;
use std::time::Duration;

pub use cases::{parse_cases, Case};
pub use process::{
    clock_ticks_per_second, parse_stat_cpu_ticks, parse_status_rss_kib, Program, Server, TempDir,
};
pub use report::{Failure, Header, Phase, Results, Sample, Spread, Target};

use crate::bench::BenchError;
use crate::env::{Clock, RealClock};

/// How long each kind of phase runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durations {
    /// Writers: `--runfor-writer` (default 10 s, quick 1 s).
    pub writer: Duration,
    /// Readers on a backlog, and the many-topics and many-consumers cases:
    /// `--runfor-reader` (default 5 s, quick 0.5 s: half the writer's, so the quick
    /// reader does not drain the writer's backlog).
    pub reader: Duration,
    /// The latency probe's publishing time: `--runfor-latency` (default 5 s, quick 1 s).
    pub latency: Duration,
    /// How long nsqd idles before its RSS is read (default 2 s, quick 0.5 s).
    pub idle: Duration,
}

impl Durations {
    /// The defaults, or `--quick`'s, with any explicit flag taking precedence.
    pub fn resolve(
        quick: bool,
        writer: Option<Duration>,
        reader: Option<Duration>,
        latency: Option<Duration>,
    ) -> Durations {
        let secs = |full: u64, quick_ms: u64| {
            if quick {
                Duration::from_millis(quick_ms)
            } else {
                Duration::from_secs(full)
            }
        };
        Durations {
            writer: writer.unwrap_or(secs(10, 1000)),
            reader: reader.unwrap_or(secs(5, 500)),
            latency: latency.unwrap_or(secs(5, 1000)),
            idle: secs(2, 500),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// `--nsqd`: our nsqd binary.
    pub nsqd: PathBuf,
    /// `--baseline-nsqd`: another nsqd binary (e.g. Go's) to run in the same rounds.
    pub baseline_nsqd: Option<PathBuf>,
    /// The nsq-bench executable, started as `nsq-bench fake-nsqd` for the ceiling case
    /// (None: that case fails with a clear message).
    pub bench: Option<PathBuf>,
    /// `--rounds`: each binary runs each case this many times, alternating.
    pub rounds: usize,
    /// How long the phases run.
    pub durations: Durations,
    /// `--cases`.
    pub cases: Vec<Case>,
    /// `--quick`: smaller backlogs (the durations are already resolved).
    pub quick: bool,
    /// `--idle-connections`: how many the idle case opens (None: 10,000, quick 1,000).
    pub idle_connections: Option<usize>,
    /// The command line, for the report.
    pub command_line: String,
}

/// Why a run of the suite (or the suite itself) failed.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// The program could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The executable.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server exited before it was ready.
    #[error("the server exited ({status}) before answering; its log:\n{log}")]
    Exited {
        /// Its exit status.
        status: String,
        /// The end of its output.
        log: String,
    },
    /// The server did not answer in time.
    #[error("the server did not answer within {waited:?}; its log:\n{log}")]
    NotReady {
        /// How long the suite waited.
        waited: Duration,
        /// The end of its output.
        log: String,
    },
    /// A file or directory operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// `/proc` held something unexpected.
    #[error("cannot parse {path}")]
    Proc {
        /// The file.
        path: String,
    },
    /// The client workload failed.
    #[error(transparent)]
    Bench(#[from] BenchError),
    /// A phase took far longer than it should.
    #[error("the {phase} phase did not finish within {after:?}")]
    Timeout {
        /// writer, reader, latency, backlog.
        phase: &'static str,
        /// The limit.
        after: Duration,
    },
    /// The TLS certificate could not be made.
    #[error("making the TLS certificate: {0}")]
    Tls(String),
    /// The ceiling case needs the nsq-bench executable.
    #[error("the ceiling case needs the nsq-bench executable to start `nsq-bench fake-nsqd`")]
    NoBenchExecutable,
    /// A binary to benchmark is missing.
    #[error("{0} is not an executable file")]
    NotExecutable(String),
}

/// A finished suite: what it measured and the header for its table.
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteReport {
    /// Every sample and failure.
    pub results: Results,
    /// Date, host, command line, binaries, settings.
    pub header: Header,
}

impl SuiteReport {
    /// The markdown report (header, table, notes, failures).
    pub fn markdown(&self) -> String {
        self.results.markdown(&self.header)
    }
}

/// Runs every case of `config`, calling `progress` with a line per run as it goes.
/// Fails only when a binary is missing; failed runs are in the report.
pub async fn run_suite(
    config: &SuiteConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<SuiteReport, SuiteError> {
    process::check_executable(&config.nsqd)?;
    if let Some(baseline) = &config.baseline_nsqd {
        process::check_executable(baseline)?;
    }
    let header = header(config);
    let ours = Program::Nsqd(config.nsqd.clone());
    let baseline = config.baseline_nsqd.clone().map(Program::Nsqd);
    let fake = config
        .bench
        .clone()
        .map(|bench| Program::FakeNsqd { bench, size: 200 });
    let rounds = config.rounds.max(1);
    let run = cases::CaseRun {
        durations: &config.durations,
        quick: config.quick,
        idle_connections: config.idle_connections,
    };
    let mut results = Results::default();
    for &case in &config.cases {
        for round in 1..=rounds {
            let mut targets = vec![(Target::Ours, &ours)];
            if let Some(baseline) = baseline.as_ref().filter(|_| case.uses_nsqd()) {
                targets.push((Target::Baseline, baseline));
            }
            for (target, nsqd) in targets {
                let program = if case.uses_nsqd() {
                    Some(nsqd)
                } else {
                    fake.as_ref()
                };
                let label = format!("{} {} round {round}/{rounds}", case.name(), target.name());
                match run_once(case, program, &run).await {
                    Ok(samples) => {
                        progress(&format!("{label}: {}", describe(&samples)));
                        for (phase, sample) in samples {
                            results.samples.push((case, phase, target, round, sample));
                        }
                    }
                    Err(error) => {
                        progress(&format!("{label}: FAILED: {error}"));
                        results.failures.push(Failure {
                            case,
                            target,
                            round,
                            error,
                        });
                    }
                }
            }
        }
    }
    Ok(SuiteReport { results, header })
}

/// One case on one binary: start, run, stop. The error text carries the server's log.
async fn run_once(
    case: Case,
    program: Option<&Program>,
    run: &cases::CaseRun<'_>,
) -> Result<Vec<(Phase, Sample)>, String> {
    let program = program.ok_or_else(|| SuiteError::NoBenchExecutable.to_string())?;
    let files = cases::server_files(case).map_err(|err| err.to_string())?;
    let flags: Vec<String> = case.nsqd_flags().iter().map(|f| f.to_string()).collect();
    let server = Server::start(program, &flags, &files)
        .await
        .map_err(|err| err.to_string())?;
    let outcome = cases::run_case(case, &server, run).await;
    let outcome = outcome.map_err(|err| {
        let log = server.log_tail();
        if log.is_empty() {
            err.to_string()
        } else {
            format!("{err}; the server's log:\n{log}")
        }
    });
    server.stop().await;
    outcome
}

/// A progress line's figures: `writer 1.35M msgs/s, 0.712 CPU s/1M; ...`.
fn describe(samples: &[(Phase, Sample)]) -> String {
    let parts: Vec<String> = samples
        .iter()
        .map(|(phase, sample)| {
            let mut text = phase.name().to_owned();
            if let Some(rate) = sample.msgs_per_s {
                text += &format!(" {} msgs/s", report::format_rate(rate));
            }
            if let Some(cpu) = sample.cpu_s_per_million {
                text += &format!(", {} CPU s/1M", report::format_cpu(cpu));
            }
            if let Some([p50, p99, p999, max]) = sample.latency {
                let show = |d: Duration| report::format_nanos(d.as_nanos() as f64);
                text += &format!(
                    ", p50 {} p99 {} p99.9 {} max {}",
                    show(p50),
                    show(p99),
                    show(p999),
                    show(max)
                );
            }
            if let Some(kib) = sample.rss_kib {
                text += &format!(" {}", report::format_kib(kib as f64));
            }
            if let Some(us) = sample.cpu_us_per_byte {
                text += &format!(" {} CPU per byte", report::format_micros(us));
            }
            if let Some(kib) = sample.kib_per_connection {
                text += &format!(" {} per connection", report::format_kib_fraction(kib));
            }
            if let Some(note) = &sample.note {
                text += &format!(" ({note})");
            }
            text
        })
        .collect();
    parts.join("; ")
}

fn header(config: &SuiteConfig) -> Header {
    let now = std::time::UNIX_EPOCH
        + Duration::from_nanos(u64::try_from(RealClock.now_ns()).unwrap_or(0));
    let d = &config.durations;
    let settings = format!(
        "rounds: {} ({}), writer {:?}, reader {:?}, latency {:?} at 50k msgs/s{}",
        config.rounds.max(1),
        if config.baseline_nsqd.is_some() {
            "A/B alternating per round"
        } else {
            "ours only"
        },
        d.writer,
        d.reader,
        d.latency,
        if config.quick { ", --quick" } else { "" },
    );
    Header {
        date: httpdate::fmt_http_date(now),
        uname: process::uname(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        command: config.command_line.clone(),
        ours: process::describe_binary(&config.nsqd),
        baseline: config
            .baseline_nsqd
            .as_deref()
            .map(process::describe_binary),
        settings,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Durations;

    #[test]
    fn quick_shortens_every_run_but_explicit_flags_win() {
        let full = Durations::resolve(false, None, None, None);
        assert_eq!(full.writer, Duration::from_secs(10));
        assert_eq!(full.reader, Duration::from_secs(5));
        assert_eq!(full.latency, Duration::from_secs(5));
        let quick = Durations::resolve(true, None, Some(Duration::from_millis(300)), None);
        assert_eq!(quick.writer, Duration::from_secs(1));
        assert_eq!(quick.reader, Duration::from_millis(300));
        assert_eq!(quick.latency, Duration::from_secs(1));
        assert!(quick.idle < full.idle);
    }
}
