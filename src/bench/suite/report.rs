//! What the suite measured, and the markdown table it prints: per case and measure,
//! min / median / max over the rounds, one column per nsqd binary.

use std::fmt::Write as _;
use std::time::Duration;

use super::cases::Case;

/// A measured part of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Publishing (`writer`, and the many-topics publishers).
    Writer,
    /// Consuming with FIN (`reader`, and the 100 consumers).
    Reader,
    /// The latency probe.
    Latency,
    /// Resident memory at rest.
    Rss,
    /// Resident memory per idle connection.
    Idle,
    /// Slow clients dribbling bytes, alone.
    Dribble,
}

impl Phase {
    /// The phase's name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Writer => "writer",
            Phase::Reader => "reader",
            Phase::Latency => "latency",
            Phase::Rss => "rss",
            Phase::Idle => "idle",
            Phase::Dribble => "dribble",
        }
    }
}

/// Which binary a sample belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// `--nsqd` (and the fake, for the ceiling).
    Ours,
    /// `--baseline-nsqd`.
    Baseline,
}

impl Target {
    /// `ours` or `baseline`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Ours => "ours",
            Target::Baseline => "baseline",
        }
    }
}

/// One phase of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Messages handled in the phase.
    pub messages: u64,
    /// Messages per second.
    pub msgs_per_s: Option<f64>,
    /// The server's CPU seconds (user + system) per million messages.
    pub cpu_s_per_million: Option<f64>,
    /// p50, p99, p99.9 and max publish-to-deliver latency.
    pub latency: Option<[Duration; 4]>,
    /// Resident set size in KiB.
    pub rss_kib: Option<u64>,
    /// Resident memory growth per idle connection, KiB.
    pub kib_per_connection: Option<f64>,
    /// The server's CPU per byte dribbled, microseconds.
    pub cpu_us_per_byte: Option<f64>,
    /// Something the reader of the table should know about this run.
    pub note: Option<String>,
}

impl Sample {
    /// A throughput sample; the CPU figure needs `cpu` and at least one message.
    pub fn throughput(msgs_per_s: f64, cpu: Option<Duration>, messages: u64) -> Sample {
        let cpu_s_per_million = cpu
            .filter(|_| messages > 0)
            .map(|cpu| cpu.as_secs_f64() / (messages as f64 / 1e6));
        Sample {
            messages,
            msgs_per_s: Some(msgs_per_s),
            cpu_s_per_million,
            ..Sample::default()
        }
    }

    /// A per-connection memory sample over `connections` idle connections.
    pub fn per_connection(kib: f64, connections: usize) -> Sample {
        Sample {
            messages: connections as u64,
            kib_per_connection: Some(kib),
            ..Sample::default()
        }
    }

    /// The server's CPU over a window in which `bytes` were dribbled to it.
    pub fn per_byte(cpu: Duration, bytes: u64) -> Sample {
        Sample {
            messages: bytes,
            cpu_us_per_byte: (bytes > 0).then(|| cpu.as_secs_f64() * 1e6 / bytes as f64),
            ..Sample::default()
        }
    }

    /// An RSS sample.
    pub fn rss(kib: u64) -> Sample {
        Sample {
            rss_kib: Some(kib),
            ..Sample::default()
        }
    }
}

/// Min, median and max of a set of values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The smallest.
    pub min: f64,
    /// The middle one (the mean of the two middle ones for an even count).
    pub median: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`, None when there are none (NaNs are left out).
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        let (first, last) = (*sorted.first()?, *sorted.last()?);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        };
        Some(Spread {
            min: first,
            median,
            max: last,
        })
    }

    /// `"min / median / max"`, each through `format`.
    pub fn show(&self, format: impl Fn(f64) -> String) -> String {
        format!(
            "{} / {} / {}",
            format(self.min),
            format(self.median),
            format(self.max)
        )
    }
}

/// A run that failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The case.
    pub case: Case,
    /// The binary.
    pub target: Target,
    /// 1-based round.
    pub round: usize,
    /// What went wrong.
    pub error: String,
}

/// Everything a suite run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Results {
    /// Every sample, in the order taken.
    pub samples: Vec<(Case, Phase, Target, usize, Sample)>,
    /// Every failed run.
    pub failures: Vec<Failure>,
}

/// The header lines above the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// When the suite ran.
    pub date: String,
    /// `uname -srm`.
    pub uname: String,
    /// CPUs available.
    pub cpus: usize,
    /// The command line that ran the suite.
    pub command: String,
    /// How `--nsqd` describes itself (path and `--version`).
    pub ours: String,
    /// The same for `--baseline-nsqd`, if given.
    pub baseline: Option<String>,
    /// Rounds and durations, one line.
    pub settings: String,
}

impl Results {
    /// The markdown report: header, table, then notes and failures.
    pub fn markdown(&self, header: &Header) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## nsq-bench suite\n");
        let _ = writeln!(out, "- date: {}", header.date);
        let _ = writeln!(out, "- host: {}, {} CPUs", header.uname, header.cpus);
        let _ = writeln!(out, "- command: `{}`", header.command);
        let _ = writeln!(out, "- ours: {}", header.ours);
        if let Some(baseline) = &header.baseline {
            let _ = writeln!(out, "- baseline: {baseline}");
        }
        let _ = writeln!(out, "- {}", header.settings);
        let _ = writeln!(
            out,
            "- each cell: min / median / max over the rounds; CPU is the server process's \
             user+system time (/proc/PID/stat) per million messages\n"
        );
        let targets: &[Target] = if header.baseline.is_some() {
            &[Target::Ours, Target::Baseline]
        } else {
            &[Target::Ours]
        };
        out.push_str("| case | measure |");
        for target in targets {
            let _ = write!(out, " {} |", target.name());
        }
        out.push_str("\n|---|---|");
        for _ in targets {
            out.push_str("---|");
        }
        out.push('\n');
        for (case, phase) in self.case_phases() {
            for (label, value) in measures(phase) {
                let cells: Vec<String> = targets
                    .iter()
                    .map(|target| self.cell(case, phase, *target, value))
                    .collect();
                if cells.iter().all(|cell| cell.is_empty()) {
                    continue;
                }
                let label = label.replace("{phase}", phase.name());
                let _ = write!(out, "| {} | {label} |", case.name());
                for cell in cells {
                    let cell = if cell.is_empty() { "-".into() } else { cell };
                    let _ = write!(out, " {cell} |");
                }
                out.push('\n');
            }
        }
        let notes: Vec<_> = self
            .samples
            .iter()
            .filter_map(|(case, phase, target, round, sample)| {
                let note = sample.note.as_ref()?;
                Some(format!(
                    "- {} {} {} round {round}: {note}",
                    case.name(),
                    phase.name(),
                    target.name()
                ))
            })
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(out, "\nNotes:\n{}", notes.join("\n"));
        }
        if !self.failures.is_empty() {
            let _ = writeln!(out, "\nFailed runs:");
            for failure in &self.failures {
                let error = failure.error.replace('\n', "\n    ");
                let _ = writeln!(
                    out,
                    "- {} {} round {}: {error}",
                    failure.case.name(),
                    failure.target.name(),
                    failure.round
                );
            }
        }
        out
    }

    /// The (case, phase) pairs measured or failed, in suite order.
    fn case_phases(&self) -> Vec<(Case, Phase)> {
        let mut pairs: Vec<(Case, Phase)> = self
            .samples
            .iter()
            .map(|(case, phase, ..)| (*case, *phase))
            .collect();
        pairs.sort();
        pairs.dedup();
        pairs
    }

    fn cell(&self, case: Case, phase: Phase, target: Target, value: Value) -> String {
        let values: Vec<f64> = self
            .samples
            .iter()
            .filter(|(c, p, t, ..)| (*c, *p, *t) == (case, phase, target))
            .filter_map(|(.., sample)| value.get(sample))
            .collect();
        match Spread::of(&values) {
            Some(spread) => spread.show(value.format()),
            None => String::new(),
        }
    }
}

/// One figure taken from a sample.
#[derive(Debug, Clone, Copy)]
enum Value {
    Rate,
    Cpu,
    Latency(usize),
    Rss,
    KibPerConnection,
    CpuPerByte,
}

impl Value {
    fn get(self, sample: &Sample) -> Option<f64> {
        match self {
            Value::Rate => sample.msgs_per_s,
            Value::Cpu => sample.cpu_s_per_million,
            Value::Latency(i) => sample
                .latency
                .and_then(|l| l.get(i).copied())
                .map(|d| d.as_nanos() as f64),
            Value::Rss => sample.rss_kib.map(|kib| kib as f64),
            Value::KibPerConnection => sample.kib_per_connection,
            Value::CpuPerByte => sample.cpu_us_per_byte,
        }
    }

    fn format(self) -> fn(f64) -> String {
        match self {
            Value::Rate => format_rate,
            Value::Cpu => format_cpu,
            Value::Latency(_) => format_nanos,
            Value::Rss => format_kib,
            Value::KibPerConnection => format_kib_fraction,
            Value::CpuPerByte => format_micros,
        }
    }
}

/// The table rows of a phase: label (with `{phase}`) and the value each shows.
fn measures(phase: Phase) -> Vec<(&'static str, Value)> {
    match phase {
        Phase::Writer | Phase::Reader | Phase::Latency => {
            let mut rows = vec![
                ("{phase} msgs/s", Value::Rate),
                ("{phase} CPU s per 1M msgs", Value::Cpu),
            ];
            if phase == Phase::Latency {
                rows.extend([
                    ("latency p50", Value::Latency(0)),
                    ("latency p99", Value::Latency(1)),
                    ("latency p99.9", Value::Latency(2)),
                    ("latency max", Value::Latency(3)),
                ]);
            }
            rows
        }
        Phase::Rss => vec![("RSS at rest", Value::Rss)],
        Phase::Idle => vec![("KiB per idle connection", Value::KibPerConnection)],
        Phase::Dribble => vec![("CPU per byte dribbled", Value::CpuPerByte)],
    }
}

/// Three significant digits, no exponent.
pub fn significant3(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).max(0) as usize;
    format!("{value:.decimals$}")
}

/// `1.35M`, `374k`, `950`.
pub fn format_rate(value: f64) -> String {
    if value >= 1e6 {
        format!("{}M", significant3(value / 1e6))
    } else if value >= 1e3 {
        format!("{}k", significant3(value / 1e3))
    } else {
        significant3(value)
    }
}

/// CPU seconds with three significant digits.
pub fn format_cpu(value: f64) -> String {
    significant3(value)
}

/// `850ns`, `85.5µs`, `1.20ms`, `2.00s`.
pub fn format_nanos(nanos: f64) -> String {
    if nanos >= 1e9 {
        format!("{}s", significant3(nanos / 1e9))
    } else if nanos >= 1e6 {
        format!("{}ms", significant3(nanos / 1e6))
    } else if nanos >= 1e3 {
        format!("{}µs", significant3(nanos / 1e3))
    } else {
        format!("{}ns", significant3(nanos))
    }
}

/// `12.3 MiB`.
pub fn format_kib(kib: f64) -> String {
    format!("{} MiB", significant3(kib / 1024.0))
}

/// Microseconds, three significant digits.
pub fn format_micros(us: f64) -> String {
    format!("{} µs", significant3(us))
}

/// A small size in KiB, three significant digits.
pub fn format_kib_fraction(kib: f64) -> String {
    format!("{} KiB", significant3(kib))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{
        format_kib, format_nanos, format_rate, significant3, Failure, Header, Phase, Results,
        Sample, Spread, Target,
    };
    use crate::bench::suite::cases::Case;

    #[test]
    fn the_spread_is_min_median_max() {
        let spread = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((spread.min, spread.median, spread.max), (1.0, 2.0, 3.0));
        let even = Spread::of(&[4.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((even.min, even.median, even.max), (1.0, 3.0, 10.0));
        let one = Spread::of(&[5.0]).unwrap();
        assert_eq!((one.min, one.median, one.max), (5.0, 5.0, 5.0));
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(Spread::of(&[f64::NAN]), None);
    }

    #[test]
    fn numbers_print_with_three_significant_digits() {
        assert_eq!(significant3(1.3456), "1.35");
        assert_eq!(significant3(0.7123), "0.712");
        assert_eq!(significant3(374.2), "374");
        assert_eq!(significant3(12345.0), "12345");
        assert_eq!(format_rate(1_352_000.0), "1.35M");
        assert_eq!(format_rate(374_400.0), "374k");
        assert_eq!(format_rate(950.0), "950");
        assert_eq!(format_nanos(85_503.0), "85.5µs");
        assert_eq!(format_nanos(1_200_000.0), "1.20ms");
        assert_eq!(format_nanos(850.0), "850ns");
        assert_eq!(format_kib(12_595.0), "12.3 MiB");
    }

    fn header(baseline: bool) -> Header {
        Header {
            date: "Mon, 01 Jun 2026 12:00:00 GMT".into(),
            uname: "Linux 6.1 x86_64".into(),
            cpus: 2,
            command: "nsq-bench suite --quick".into(),
            ours: "target/release/nsqd".into(),
            baseline: baseline.then(|| "/usr/local/bin/nsqd".into()),
            settings: "rounds: 1".into(),
        }
    }

    #[test]
    fn the_table_has_a_baseline_column_only_when_asked() {
        let mut results = Results::default();
        for (target, round, rate) in [
            (Target::Ours, 1, 1.0e6),
            (Target::Baseline, 1, 4.0e5),
            (Target::Ours, 2, 1.2e6),
            (Target::Baseline, 2, 3.0e5),
        ] {
            let sample = Sample::throughput(rate, Some(Duration::from_secs(1)), 2_000_000);
            results
                .samples
                .push((Case::PubMem1m, Phase::Writer, target, round, sample));
        }
        results.samples.push((
            Case::RssIdle,
            Phase::Rss,
            Target::Ours,
            1,
            Sample::rss(10_240),
        ));
        results.failures.push(Failure {
            case: Case::RssIdle,
            target: Target::Baseline,
            round: 1,
            error: "nsqd exited\nlog line".into(),
        });
        let with = results.markdown(&header(true));
        assert!(
            with.contains("| case | measure | ours | baseline |\n|---|---|---|---|\n"),
            "{with}"
        );
        assert!(
            with.contains(
                "| pub-mem1m | writer msgs/s | 1.00M / 1.10M / 1.20M | 300k / 350k / 400k |"
            ),
            "{with}"
        );
        assert!(
            with.contains("| pub-mem1m | writer CPU s per 1M msgs | 0.500 / 0.500 / 0.500 |"),
            "{with}"
        );
        assert!(
            with.contains("| rss-idle | RSS at rest | 10.0 MiB / 10.0 MiB / 10.0 MiB | - |"),
            "{with}"
        );
        assert!(
            with.contains("- rss-idle baseline round 1: nsqd exited\n    log line"),
            "{with}"
        );
        let without = results.markdown(&header(false));
        assert!(without.contains("| case | measure | ours |\n|---|---|---|\n"));
        assert!(!without.contains("| baseline |"), "{without}");
    }

    #[test]
    fn latency_rows_come_with_the_rate() {
        let mut sample = Sample::throughput(50_000.0, None, 100_000);
        sample.latency = Some([
            Duration::from_micros(80),
            Duration::from_micros(300),
            Duration::from_millis(1),
            Duration::from_millis(2),
        ]);
        let results = Results {
            samples: vec![(
                Case::LatencyDefault,
                Phase::Latency,
                Target::Ours,
                1,
                sample,
            )],
            failures: Vec::new(),
        };
        let table = results.markdown(&header(false));
        assert!(table.contains("| latency-default | latency msgs/s | 50.0k / 50.0k / 50.0k |"));
        assert!(table.contains("| latency-default | latency p99 | 300µs / 300µs / 300µs |"));
        assert!(table.contains("| latency-default | latency max | 2.00ms / 2.00ms / 2.00ms |"));
        // No CPU figure was read: the row is left out.
        assert!(!table.contains("CPU s per 1M"), "{table}");
    }
}
