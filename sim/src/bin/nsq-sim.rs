//! `nsq-sim`: runs scenario files in the deterministic simulator.
//!
//! - `nsq-sim run FILE [--seed S] [--swarm]` runs one seed and prints the history hash; on
//!   failure, the first violated invariant and the command that replays it.
//! - `nsq-sim swarm FILE --seeds A..B` runs every seed with faults drawn from the file's
//!   `[swarm]` ranges and prints each failing seed with its replay command.
//! - `nsq-sim check FILE...` validates scenario files without running them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use nsq_sim::runner::{self, Report, RunOptions};
use nsq_sim::scenario::Scenario;

#[derive(Parser)]
#[command(
    name = "nsq-sim",
    version,
    about = "Deterministic simulations of nsq-rs clusters"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one scenario from one seed.
    Run {
        /// The scenario file.
        file: PathBuf,
        /// The seed (default: the file's `seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Add the faults a swarm run draws for this seed.
        #[arg(long)]
        swarm: bool,
        /// Print every event of the history.
        #[arg(long)]
        history: bool,
    },
    /// Runs a range of seeds with faults drawn from the file's `[swarm]` ranges.
    Swarm {
        /// The scenario file.
        file: PathBuf,
        /// The seeds, `A..B` (B excluded).
        #[arg(long, value_parser = parse_seeds)]
        seeds: std::ops::Range<u64>,
    },
    /// Validates scenario files.
    Check {
        /// The files.
        files: Vec<PathBuf>,
    },
}

fn parse_seeds(text: &str) -> Result<std::ops::Range<u64>, String> {
    let (a, b) = text
        .split_once("..")
        .ok_or_else(|| format!("\"{text}\" is not a range like 1..100"))?;
    let a: u64 = a.parse().map_err(|_| format!("bad seed \"{a}\""))?;
    let b: u64 = b.parse().map_err(|_| format!("bad seed \"{b}\""))?;
    if a >= b {
        return Err(format!("empty range {text}"));
    }
    Ok(a..b)
}

// The progress line shows real elapsed time; nothing simulated reads it.
#[allow(clippy::disallowed_methods)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    // Daemon logs, on request: `RUST_LOG=warn nsq-sim run ...`.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    match cli.command {
        Command::Run {
            file,
            seed,
            swarm,
            history,
        } => {
            let Some(scenario) = load(&file) else {
                return ExitCode::from(2);
            };
            let options = RunOptions {
                seed: seed.unwrap_or(scenario.seed),
                swarm,
                ..RunOptions::default()
            };
            let Some(report) = execute(&scenario, &options) else {
                return ExitCode::from(2);
            };
            if history {
                print_history(&report);
            }
            print_report(&file, &report, swarm);
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Swarm { file, seeds } => {
            let Some(scenario) = load(&file) else {
                return ExitCode::from(2);
            };
            if scenario.swarm.is_none() {
                eprintln!("{}: has no [swarm] section", file.display());
                return ExitCode::from(2);
            }
            let started = Instant::now();
            let total = seeds.end - seeds.start;
            let mut failing = Vec::new();
            for (done, seed) in seeds.enumerate() {
                let options = RunOptions {
                    seed,
                    swarm: true,
                    ..RunOptions::default()
                };
                let Some(report) = execute(&scenario, &options) else {
                    return ExitCode::from(2);
                };
                if !report.passed() {
                    print_report(&file, &report, true);
                    failing.push(seed);
                }
                eprintln!(
                    "[{}/{total}] seed {seed} {} ({} failing, {:.1}s)",
                    done + 1,
                    if report.passed() { "ok" } else { "FAILED" },
                    failing.len(),
                    started.elapsed().as_secs_f64()
                );
            }
            println!(
                "{}: {} seeds, {} failing{}",
                scenario.name,
                total,
                failing.len(),
                if failing.is_empty() {
                    String::new()
                } else {
                    format!(": {failing:?}")
                }
            );
            if failing.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Check { files } => {
            let mut ok = true;
            for file in &files {
                match Scenario::load(file) {
                    Ok(scenario) => println!("{}: ok ({})", file.display(), scenario.name),
                    Err(error) => {
                        eprintln!("{error}");
                        ok = false;
                    }
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
    }
}

fn load(file: &Path) -> Option<Scenario> {
    match Scenario::load(file) {
        Ok(scenario) => Some(scenario),
        Err(error) => {
            eprintln!("{error}");
            None
        }
    }
}

fn execute(scenario: &Scenario, options: &RunOptions) -> Option<Report> {
    match runner::run(scenario, options) {
        Ok(report) => Some(report),
        Err(error) => {
            eprintln!("{}: {error}", scenario.name);
            None
        }
    }
}

/// Prints every event; stops quietly when stdout is closed (e.g. piped into `head`).
fn print_history(report: &Report) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for entry in report.history.entries() {
        let at = entry.at as f64 / 1000.0;
        if writeln!(out, "{at:>10.3} ms  {:?}", entry.event).is_err() {
            return;
        }
    }
}

fn print_report(file: &Path, report: &Report, swarm: bool) {
    let status = if report.passed() { "ok" } else { "FAILED" };
    println!(
        "{} seed {}: {status}, history {:016x} ({} events){}",
        report.scenario,
        report.seed,
        report.hash,
        report.history.entries().len(),
        report
            .swarm_classes
            .as_ref()
            .map(|c| format!(", swarm: {c}"))
            .unwrap_or_default()
    );
    if let Some(failure) = &report.failure {
        println!("  simulation failed: {failure}");
    }
    if let Some(first) = report.violations.first() {
        println!("  first violation: {first}");
        if report.violations.len() > 1 {
            println!("  ({} violations in all)", report.violations.len());
        }
    }
    if !report.passed() {
        println!(
            "  replay: {}",
            runner::replay_command(file, report.seed, swarm)
        );
    }
}
