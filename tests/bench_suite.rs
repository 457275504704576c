//! `nsq-bench suite` end to end: the real binaries, child processes on loopback, a few
//! short cases (the zero-work ceiling, RSS at rest, latency, TLS with a certificate made
//! at run time), with the same nsqd as the baseline so both columns fill in; and a
//! baseline that cannot start, which is reported while the rest of the suite goes on.

use std::process::Command;

fn suite(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_nsq-bench"))
        .arg("suite")
        .arg(format!("--nsqd={}", env!("CARGO_BIN_EXE_nsqd")))
        .args(["--quick", "--rounds=1"])
        .args([
            "--runfor-writer=300ms",
            "--runfor-reader=200ms",
            "--runfor-latency=300ms",
        ])
        .args(args)
        .output()
        .expect("nsq-bench runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The cell of `case`/`measure` in column `column` (0: ours, 1: baseline).
fn cell<'a>(table: &'a str, case: &str, measure: &str, column: usize) -> &'a str {
    let prefix = format!("| {case} | {measure} |");
    let row = table
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no row {prefix}\n{table}"));
    row[prefix.len()..]
        .split('|')
        .nth(column)
        .unwrap_or_else(|| panic!("no column {column} in {row}"))
        .trim()
}

/// `"a / b / c"` with three non-empty figures.
fn assert_spread(text: &str) {
    let parts: Vec<&str> = text.split(" / ").collect();
    assert_eq!(parts.len(), 3, "{text}");
    assert!(parts.iter().all(|p| !p.is_empty() && p != &"-"), "{text}");
}

#[test]
fn a_quick_suite_fills_both_columns() {
    let (ok, table, log) = suite(&[
        "--cases=ceiling,rss-idle,latency-default,tls",
        &format!("--baseline-nsqd={}", env!("CARGO_BIN_EXE_nsqd")),
    ]);
    assert!(ok, "stdout:\n{table}\nstderr:\n{log}");
    assert!(
        table.contains("| case | measure | ours | baseline |"),
        "{table}"
    );
    assert!(
        table.contains("- command: `nsq-bench suite --nsqd="),
        "{table}"
    );
    for column in [0, 1] {
        assert_spread(cell(&table, "rss-idle", "RSS at rest", column));
        assert_spread(cell(&table, "latency-default", "latency p99", column));
        assert_spread(cell(&table, "tls", "writer msgs/s", column));
        assert_spread(cell(&table, "tls", "reader CPU s per 1M msgs", column));
    }
    // The fake nsqd runs once per round: no baseline figure.
    assert_spread(cell(&table, "ceiling", "reader msgs/s", 0));
    assert_eq!(cell(&table, "ceiling", "reader msgs/s", 1), "-");
    assert!(!table.contains("Failed runs"), "{table}");
}

#[test]
fn a_baseline_that_cannot_start_is_reported_and_fails_the_run() {
    let (ok, table, log) = suite(&["--cases=rss-idle", "--baseline-nsqd=/bin/false"]);
    assert!(!ok, "stdout:\n{table}\nstderr:\n{log}");
    assert_spread(cell(&table, "rss-idle", "RSS at rest", 0));
    assert!(
        table.contains("Failed runs:\n- rss-idle baseline round 1: the server exited"),
        "{table}"
    );
    assert!(log.contains("1 run(s) failed"), "{log}");
}
