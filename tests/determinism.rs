//! The daemons must stay deterministic under simulation: they reach sockets, files, clocks,
//! threads and randomness only through the `Env` seams in `src/env/`. clippy.toml catches
//! calls; this test also catches imports and mentions, by scanning the daemon sources.
//!
//! Reading the source tree is this test's whole job, so it uses `std::fs`.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::{Path, PathBuf};

/// The daemon source trees under the rules (missing ones are skipped).
const DAEMON_DIRS: [&str; 2] = ["src/nsqd", "src/lookupd"];

/// Substrings a daemon source line must not contain, with what to use instead.
const FORBIDDEN: [(&str, &str); 9] = [
    ("tokio::net", "env.net"),
    ("std::fs", "env.fs"),
    ("tokio::fs", "env.fs"),
    ("SystemTime::now", "env.clock"),
    ("std::time::Instant", "tokio::time::Instant"),
    ("thread::spawn", "tokio::spawn"),
    ("spawn_blocking", "env.fs (it runs blocking work in env/)"),
    ("thread_rng", "env.rng"),
    ("rand::random", "env.rng"),
];

/// One forbidden mention: where, and which rule.
#[derive(Debug, PartialEq)]
struct Violation {
    file: PathBuf,
    line_number: usize,
    pattern: String,
    instead: &'static str,
    line: String,
}

/// The rules a single source line breaks (none for comment lines).
fn check_line(line: &str) -> Vec<(String, &'static str)> {
    let code = line.trim_start();
    if code.starts_with("//") {
        return Vec::new();
    }
    let mut found: Vec<(String, &'static str)> = FORBIDDEN
        .iter()
        .filter(|(pattern, _)| code.contains(pattern))
        .map(|(pattern, instead)| (pattern.to_string(), *instead))
        .collect();
    if code.contains("std::{") && contains_word(code, "fs") {
        found.push(("std::{.., fs}".to_string(), "env.fs"));
    }
    if code.contains("std::time::{") && contains_word(code, "Instant") {
        found.push((
            "std::time::{.., Instant}".to_string(),
            "tokio::time::Instant",
        ));
    }
    // `fastrand::Rng` with an explicit seed is fine; every other `fastrand::` item is the
    // global, OS-seeded generator.
    let global_fastrand = code
        .match_indices("fastrand::")
        .any(|(at, pattern)| !code[at + pattern.len()..].starts_with("Rng"));
    if global_fastrand {
        found.push(("fastrand:: (global)".to_string(), "env.rng"));
    }
    found
}

/// Whether `word` occurs in `text` not as part of a longer identifier.
fn contains_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// Every `.rs` file under `dir`, sorted, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

fn violations_in(file: &Path, text: &str) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (index, line) in text.lines().enumerate() {
        for (pattern, instead) in check_line(line) {
            violations.push(Violation {
                file: file.to_path_buf(),
                line_number: index + 1,
                pattern,
                instead,
                line: line.trim().to_string(),
            });
        }
    }
    violations
}

#[test]
fn daemon_sources_use_only_the_env_seams() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut violations = Vec::new();
    let mut scanned = 0;
    for dir in DAEMON_DIRS
        .iter()
        .map(|d| root.join(d))
        .filter(|d| d.is_dir())
    {
        for file in rust_files(&dir) {
            let text = std::fs::read_to_string(&file).unwrap();
            let relative = file.strip_prefix(root).unwrap_or(&file);
            violations.extend(violations_in(relative, &text));
            scanned += 1;
        }
    }
    assert!(scanned > 0, "no daemon sources found under {DAEMON_DIRS:?}");
    let report: Vec<String> = violations
        .iter()
        .map(|v| {
            format!(
                "{}:{}: `{}` (use {}): {}",
                v.file.display(),
                v.line_number,
                v.pattern,
                v.instead,
                v.line
            )
        })
        .collect();
    assert!(
        report.is_empty(),
        "daemon code must go through src/env/ (design.md, \"Determinism rules\"):\n{}",
        report.join("\n")
    );
}

#[test]
fn checker_flags_forbidden_mentions() {
    let bad = [
        "use tokio::net::TcpListener;",
        "let f = std::fs::File::open(p)?;",
        "use std::{fs, io};",
        "use std::{io, fs::File};",
        "tokio::fs::read(p).await",
        "let t = std::time::SystemTime::now();",
        "let t = SystemTime::now();",
        "use std::time::Instant;",
        "use std::time::{Duration, Instant};",
        "std::thread::spawn(|| ());",
        "tokio::task::spawn_blocking(f)",
        "let mut r = rand::thread_rng();",
        "let x: u8 = rand::random();",
        "let n = fastrand::u64(..);",
        "    fastrand::shuffle(&mut v);",
    ];
    for line in bad {
        assert!(!check_line(line).is_empty(), "not flagged: {line}");
    }
}

#[test]
fn checker_allows_the_seams_and_comments() {
    let good = [
        "let now = tokio::time::Instant::now();",
        "use tokio::time::{Duration, Instant};",
        "use std::time::Duration;",
        "let rng = fastrand::Rng::with_seed(seed);",
        "let now = env.clock.now_ns();",
        "// std::fs is off limits here",
        "    /// Unlike `std::thread::spawn`, ...",
        "//! Never `tokio::net`.",
        "use std::{io, fmt};",
        "let fs = env.fs.clone();",
    ];
    for line in good {
        assert_eq!(check_line(line), Vec::new(), "flagged: {line}");
    }
    // Only whole comment lines are skipped: a trailing comment is scanned with its code.
    assert!(!check_line("let x = 1; // std::fs").is_empty());
}

#[test]
fn violations_name_file_and_line() {
    let text = "//! ok\nuse std::fs;\nfn f() {}\n";
    let found = violations_in(Path::new("src/nsqd/x.rs"), text);
    assert_eq!(
        found,
        vec![Violation {
            file: PathBuf::from("src/nsqd/x.rs"),
            line_number: 2,
            pattern: "std::fs".to_string(),
            instead: "env.fs",
            line: "use std::fs;".to_string(),
        }]
    );
}
