//! The NSQ tools (`nsq_tail`, `to_nsq`) run as processes against an nsqd: round trips,
//! Go's `-h` text, bad flags, fatal checks and a graceful stop.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::support::*;

const NSQ_TAIL: &str = env!("CARGO_BIN_EXE_nsq_tail");
const TO_NSQ: &str = env!("CARGO_BIN_EXE_to_nsq");

/// How long a tool may take to do what a test asks.
pub(crate) const TOOL_WAIT: Duration = Duration::from_secs(20);

pub(crate) fn tool(path: &str, args: &[&str]) -> Command {
    let mut command = Command::new(path);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Exit status, stdout and stderr of a finished tool.
pub(crate) struct Finished {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

pub(crate) async fn finish(mut child: Child) -> Finished {
    let output = tokio::time::timeout(TOOL_WAIT, async {
        let mut stdout = String::new();
        let mut stderr = String::new();
        let mut out = child.stdout.take().expect("stdout piped");
        let mut err = child.stderr.take().expect("stderr piped");
        let (a, b) = tokio::join!(
            out.read_to_string(&mut stdout),
            err.read_to_string(&mut stderr)
        );
        a.expect("read stdout");
        b.expect("read stderr");
        let status = child.wait().await.expect("wait");
        Finished {
            code: status.code(),
            stdout,
            stderr,
        }
    })
    .await;
    output.expect("the tool finished in time")
}

/// Runs `to_nsq` with `input` on stdin to its end.
async fn to_nsq(args: &[&str], input: &[u8]) -> Finished {
    let mut child = tool(TO_NSQ, args).spawn().expect("spawn to_nsq");
    let mut stdin = child.stdin.take().expect("stdin piped");
    stdin.write_all(input).await.expect("write stdin");
    drop(stdin);
    finish(child).await
}

#[tokio::test]
async fn to_nsq_then_nsq_tail_n_prints_exactly_the_lines() {
    let server = start_with(fast_options()).await;
    let tcp = server.tcp.to_string();
    let published = to_nsq(
        &["--topic=lines", "--nsqd-tcp-address", &tcp],
        b"one\ntwo\n\nthree\nfour",
    )
    .await;
    assert_eq!(published.code, Some(0), "{}", published.stderr);
    // The empty segment is skipped; the last line has no delimiter and is kept whole.
    let tail = tool(
        NSQ_TAIL,
        &["-topic", "lines", "-nsqd-tcp-address", &tcp, "-n", "4"],
    )
    .spawn()
    .expect("spawn nsq_tail");
    let tailed = finish(tail).await;
    assert_eq!(tailed.code, Some(0), "{}", tailed.stderr);
    assert_eq!(tailed.stdout, "one\ntwo\nthree\nfour\n");
    server.stop().await;
}

#[tokio::test]
async fn print_topic_and_a_custom_delimiter() {
    let server = start_with(fast_options()).await;
    let tcp = server.tcp.to_string();
    for topic in ["alpha", "beta"] {
        let published = to_nsq(
            &[
                "--topic",
                topic,
                "--nsqd-tcp-address",
                &tcp,
                "--delimiter=,",
            ],
            format!("{topic}-1,{topic}-2,").as_bytes(),
        )
        .await;
        assert_eq!(published.code, Some(0), "{}", published.stderr);
    }
    // `-n` counts per topic: the first topic to show 2 ends the run.
    let tail = tool(
        NSQ_TAIL,
        &[
            "--topic=alpha",
            "--print-topic",
            "--nsqd-tcp-address",
            &tcp,
            "-n=2",
        ],
    )
    .spawn()
    .expect("spawn nsq_tail");
    let tailed = finish(tail).await;
    assert_eq!(tailed.code, Some(0), "{}", tailed.stderr);
    assert_eq!(tailed.stdout, "alpha | alpha-1\nalpha | alpha-2\n");
    server.stop().await;
}

#[tokio::test]
async fn dash_h_prints_gos_usage_and_exits_0() {
    let help = finish(tool(NSQ_TAIL, &["-h"]).spawn().expect("spawn")).await;
    assert_eq!(help.code, Some(0));
    let (first, rest) = help.stderr.split_once('\n').expect("a header line");
    assert_eq!(first, format!("Usage of {NSQ_TAIL}:"));
    assert_eq!(
        rest,
        "  -channel string\n    \tNSQ channel\n  -consumer-opt value\n    \toption to passthrough to nsq.Consumer (may be given multiple times, http://godoc.org/github.com/nsqio/go-nsq#Config)\n  -lookupd-http-address value\n    \tlookupd HTTP address (may be given multiple times)\n  -max-in-flight int\n    \tmax number of messages to allow in flight (default 200)\n  -n int\n    \ttotal messages to show (will wait if starved)\n  -nsqd-tcp-address value\n    \tnsqd TCP address (may be given multiple times)\n  -print-topic\n    \tprint topic name where message was received\n  -topic value\n    \tNSQ topic (may be given multiple times)\n  -version\n    \tprint version string\n"
    );
    let help = finish(tool(TO_NSQ, &["--help"]).spawn().expect("spawn")).await;
    assert_eq!(help.code, Some(0));
    assert!(
        help.stderr.ends_with("  -delimiter string\n    \tcharacter to split input from stdin (default \"\\n\")\n  -nsqd-tcp-address value\n    \tdestination nsqd TCP address (may be given multiple times)\n  -producer-opt value\n    \toption to passthrough to nsq.Producer (may be given multiple times, http://godoc.org/github.com/nsqio/go-nsq#Config)\n  -rate int\n    \tThrottle messages to n/second. 0 to disable\n  -topic string\n    \tNSQ topic to publish to\n"),
        "{}",
        help.stderr
    );
}

#[tokio::test]
async fn bad_flags_exit_2_with_one_line() {
    for (path, args, want) in [
        (NSQ_TAIL, &["--nope"][..], "flag provided but not defined: -nope"),
        (TO_NSQ, &["--version"], "flag provided but not defined: -version"),
        (NSQ_TAIL, &["-n", "lots"], "invalid value \"lots\" for flag -n: parse error"),
        (
            NSQ_TAIL,
            &["--consumer-opt", "no_such_option,1"],
            "invalid value \"no_such_option,1\" for flag -consumer-opt: invalid option no_such_option",
        ),
    ] {
        let failed = finish(tool(path, args).spawn().expect("spawn")).await;
        assert_eq!(failed.code, Some(2), "{args:?}: {}", failed.stderr);
        assert_eq!(failed.stderr.lines().count(), 1, "{args:?}: {}", failed.stderr);
        assert!(failed.stderr.starts_with(want), "{args:?}: {}", failed.stderr);
    }
}

#[tokio::test]
async fn missing_flags_are_fatal_in_gos_order() {
    for (path, args, want) in [
        (
            NSQ_TAIL,
            &["--topic=t"][..],
            "--nsqd-tcp-address or --lookupd-http-address required",
        ),
        (
            NSQ_TAIL,
            &[
                "--nsqd-tcp-address=127.0.0.1:1",
                "--lookupd-http-address=127.0.0.1:2",
            ],
            "use --nsqd-tcp-address or --lookupd-http-address not both",
        ),
        (
            NSQ_TAIL,
            &["--nsqd-tcp-address=127.0.0.1:1"],
            "--topic required",
        ),
        (TO_NSQ, &[], "--topic required"),
        (
            TO_NSQ,
            &["--topic=t", "--delimiter=ab"],
            "--delimiter must be a single byte",
        ),
        (TO_NSQ, &["--topic=t"], "--nsqd-tcp-address required"),
    ] {
        let failed = finish(tool(path, args).spawn().expect("spawn")).await;
        assert_eq!(failed.code, Some(1), "{args:?}: {}", failed.stderr);
        assert!(
            failed.stderr.trim_end().ends_with(want),
            "{args:?}: {}",
            failed.stderr
        );
    }
    let version = finish(tool(NSQ_TAIL, &["--version"]).spawn().expect("spawn")).await;
    assert_eq!(
        (version.code, version.stdout.as_str()),
        (Some(0), "nsq_tail v1.3.0\n")
    );
}

#[tokio::test]
async fn a_publish_nsqd_refuses_exits_1() {
    let server = start_with(fast_options()).await;
    let tcp = server.tcp.to_string();
    let refused = to_nsq(&["--topic=bad!topic", "--nsqd-tcp-address", &tcp], b"x\n").await;
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(refused.stderr.contains("E_BAD_TOPIC"), "{}", refused.stderr);
    server.stop().await;
}

#[tokio::test]
async fn nsq_tail_stops_gracefully_on_sigterm_and_leaves_nothing_in_flight() {
    let server = start_with(fast_options()).await;
    let tcp = server.tcp.to_string();
    let mut tail = tool(
        NSQ_TAIL,
        &["--topic=live", "--channel=keep", "--nsqd-tcp-address", &tcp],
    )
    .spawn()
    .expect("spawn nsq_tail");
    // The channel exists once nsq_tail has subscribed.
    let deadline = tokio::time::Instant::now() + TOOL_WAIT;
    while !server
        .http("GET", "/stats?format=json&topic=live", None)
        .await
        .text()
        .contains("\"keep\"")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nsq_tail never subscribed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.publish("live", &[b"a", b"b", b"c"]).await;
    let mut stdout = tail.stdout.take().expect("stdout piped");
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let mut chunk = [0u8; 64];
        let n = tokio::time::timeout(TOOL_WAIT, stdout.read(&mut chunk))
            .await
            .expect("output in time")
            .expect("read");
        assert!(n > 0, "nsq_tail closed its output early");
        seen.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(seen, b"a\nb\nc\n");
    let pid = tail.id().expect("running") as i32;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).expect("a pid"),
        rustix::process::Signal::TERM,
    )
    .expect("SIGTERM");
    tail.stdout = Some(stdout);
    let stopped = finish(tail).await;
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
    assert_channel_empty(&server, "live", "keep").await;
    server.stop().await;
}

#[tokio::test]
async fn nsq_bench_reader_leaves_nothing_in_flight() {
    let server = start_with(fast_options()).await;
    server.publish("few", &[b"1", b"2", b"3", b"4", b"5"]).await;
    let config = nsq::bench::ReaderConfig {
        address: server.tcp.to_string(),
        topic: "few".into(),
        channel: "ch".into(),
        size: 1,
        rdy: 2500,
        runfor: Duration::from_millis(300),
        connections: 2,
        start_at: None,
        flush_policy: nsq::bench::FlushPolicy::Go,
        transport: nsq::bench::Transport::plain(),
    };
    let net: std::sync::Arc<dyn nsq::env::Net> = std::sync::Arc::new(nsq::env::RealNet);
    nsq::bench::run_reader(net, &config)
        .await
        .expect("reader ran");
    assert_channel_empty(&server, "few", "ch").await;
    server.stop().await;
}

#[tokio::test]
async fn nsq_stat_prints_gos_columns_with_the_figures_of_stats() {
    let server = start_with(fast_options()).await;
    let topic = server.http("POST", "/topic/create?topic=st", None).await;
    assert_eq!(topic.status, 200);
    let created = server
        .http("POST", "/channel/create?topic=st&channel=ch", None)
        .await;
    assert_eq!(created.status, 200);
    server.publish("st", &[b"a", b"b", b"c"]).await;
    let http = server.http.to_string();
    let stat = tool(
        env!("CARGO_BIN_EXE_nsq_stat"),
        &[
            "--topic=st",
            "--channel=ch",
            "--nsqd-http-address",
            &http,
            "--interval=100ms",
            "--count=2",
        ],
    )
    .spawn()
    .expect("spawn nsq_stat");
    let stat = finish(stat).await;
    assert_eq!(stat.code, Some(0), "{}", stat.stderr);
    let lines: Vec<&str> = stat.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", stat.stdout);
    assert_eq!(
        lines[..2],
        [
            "------rate------+----------------depth----------------+--------------metadata---------------",
            "ingress  egress |   total     mem    disk inflt   def |     req     t-o         msgs clients",
        ]
    );
    // Nothing moves between polls: no rate; depth 3 in memory, 3 messages, no clients.
    for row in &lines[2..] {
        assert_eq!(
            *row,
            "      0       0 |       3       3       0     0     0 |       0       0            3       0"
        );
    }
    let missing = tool(
        env!("CARGO_BIN_EXE_nsq_stat"),
        &["--topic=st", "--channel=nope", "--nsqd-http-address", &http],
    )
    .spawn()
    .expect("spawn nsq_stat");
    let missing = finish(missing).await;
    assert_eq!(missing.code, Some(1));
    assert!(
        missing
            .stderr
            .trim_end()
            .ends_with("ERROR: failed to find channel(nope) in stats metadata for topic(st)"),
        "{}",
        missing.stderr
    );
    server.stop().await;
}

/// The channel holds nothing: nothing queued, in flight or deferred.
async fn assert_channel_empty(server: &Server, topic: &str, channel: &str) {
    let stats = server.channel_stats(topic, channel).await;
    assert!(!stats.is_null(), "no channel {topic}/{channel}");
    for figure in ["depth", "in_flight_count", "deferred_count"] {
        assert_eq!(stats[figure], 0, "{figure}: {stats}");
    }
}

const NSQ_TO_FILE: &str = env!("CARGO_BIN_EXE_nsq_to_file");

/// Every line of every file under `dir` (gzip files decompressed), and the file names.
fn lines_under(dir: &std::path::Path) -> (Vec<String>, Vec<String>) {
    use std::io::Read;
    let mut lines = Vec::new();
    let mut names = Vec::new();
    #[allow(clippy::disallowed_methods)]
    let entries = std::fs::read_dir(dir).expect("read dir");
    for entry in entries {
        let path = entry.expect("entry").path();
        names.push(
            path.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
        #[allow(clippy::disallowed_methods)]
        let bytes = std::fs::read(&path).expect("read file");
        let text = if path.extension().is_some_and(|e| e == "gz") {
            let mut text = String::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .expect("valid gzip");
            text
        } else {
            String::from_utf8(bytes).expect("utf-8")
        };
        lines.extend(text.lines().map(str::to_string));
    }
    names.sort();
    (lines, names)
}

fn sigterm(child: &Child) {
    let pid = child.id().expect("running") as i32;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).expect("a pid"),
        rustix::process::Signal::TERM,
    )
    .expect("SIGTERM");
}

/// Waits until the files under `dir` hold at least `count` lines.
async fn wait_for_lines(dir: &std::path::Path, count: usize) {
    let deadline = tokio::time::Instant::now() + TOOL_WAIT;
    while lines_under(dir).0.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} lines",
            lines_under(dir).0.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn nsq_to_file_writes_syncs_and_fins_every_message() {
    let server = start_with(fast_options()).await;
    let tcp = server.tcp.to_string();
    let out = tempfile::tempdir().expect("dir");
    let bodies: Vec<String> = (0..5).map(|i| format!("line-{i}")).collect();
    let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_bytes()).collect();
    server.publish("tofile", &refs).await;
    let child = tool(
        NSQ_TO_FILE,
        &[
            "--topic=tofile",
            "--nsqd-tcp-address",
            &tcp,
            "--output-dir",
            out.path().to_str().expect("utf-8 path"),
            "--sync-interval=100ms",
        ],
    )
    .spawn()
    .expect("spawn nsq_to_file");
    wait_for_lines(out.path(), 5).await;
    // Synced lines are FIN'd: nothing stays in flight.
    crate::tools_relay::wait_drained(&server, "tofile", "nsq_to_file").await;
    sigterm(&child);
    let done = finish(child).await;
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let (mut lines, names) = lines_under(out.path());
    lines.sort();
    assert_eq!(lines, bodies);
    assert_eq!(names.len(), 1);
    assert!(
        names[0].starts_with("tofile.") && names[0].ends_with(".log"),
        "{names:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn nsq_to_file_gzip_rotation_and_work_dir_keep_every_message() {
    let server = start_with(fast_options()).await;
    let tcp = server.tcp.to_string();
    let (work, out) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let bodies: Vec<String> = (0..60).map(|i| format!("message-number-{i:04}")).collect();
    let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_bytes()).collect();
    server.publish("rotated", &refs).await;
    let child = tool(
        NSQ_TO_FILE,
        &[
            "--topic=rotated",
            "--nsqd-tcp-address",
            &tcp,
            "--work-dir",
            work.path().to_str().expect("utf-8 path"),
            "--output-dir",
            out.path().to_str().expect("utf-8 path"),
            "--gzip",
            "--rotate-size=200",
            "--max-in-flight=10",
            "--sync-interval=50ms",
        ],
    )
    .spawn()
    .expect("spawn nsq_to_file");
    // Files move to the output dir as they rotate; the last one at the stop.
    crate::tools_relay::wait_drained(&server, "rotated", "nsq_to_file").await;
    sigterm(&child);
    let done = finish(child).await;
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let (mut lines, names) = lines_under(out.path());
    lines.sort();
    assert_eq!(lines, bodies, "the union of the files is every message");
    assert!(names.len() > 2, "rotated by size: {names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.ends_with(".log.gz") && n.contains("-0000")),
        "{names:?}"
    );
    assert!(
        lines_under(work.path()).1.is_empty(),
        "every file moved out of the work dir"
    );
    server.stop().await;
}

#[tokio::test]
async fn nsq_to_file_killed_mid_stream_loses_nothing_after_a_restart() {
    let server = start_with(fast_options()).await;
    let tcp = server.tcp.to_string();
    let out = tempfile::tempdir().expect("dir");
    let bodies: Vec<String> = (0..2000).map(|i| format!("m{i}")).collect();
    let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_bytes()).collect();
    server.publish("crashy", &refs).await;
    let args = [
        "--topic=crashy",
        "--nsqd-tcp-address",
        &tcp,
        "--output-dir",
        out.path().to_str().expect("utf-8 path"),
        "--sync-interval=20ms",
        "--max-in-flight=50",
    ];
    let mut first = tool(NSQ_TO_FILE, &args).spawn().expect("spawn nsq_to_file");
    wait_for_lines(out.path(), 100).await;
    first.kill().await.expect("SIGKILL");
    let second = tool(NSQ_TO_FILE, &args)
        .spawn()
        .expect("spawn nsq_to_file again");
    // fast_options' short msg-timeout hands what the killed one held to the new one.
    let deadline = tokio::time::Instant::now() + TOOL_WAIT;
    loop {
        let seen: std::collections::BTreeSet<String> =
            lines_under(out.path()).0.into_iter().collect();
        if seen.len() == bodies.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {}",
            seen.len(),
            bodies.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sigterm(&second);
    let done = finish(second).await;
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let seen: std::collections::BTreeSet<String> = lines_under(out.path()).0.into_iter().collect();
    let expected: std::collections::BTreeSet<String> = bodies.into_iter().collect();
    assert_eq!(
        seen, expected,
        "at least once: every message is in the files"
    );
    server.stop().await;
}

#[tokio::test]
async fn nsq_to_file_usage_is_gos_under_its_flag_set_name() {
    let help = finish(tool(NSQ_TO_FILE, &["-h"]).spawn().expect("spawn")).await;
    assert_eq!(help.code, Some(0));
    assert!(
        help.stderr.starts_with(
            "Usage of nsqd:\n  -channel string\n    \tnsq channel (default \"nsq_to_file\")\n"
        ),
        "{}",
        help.stderr
    );
    assert!(help.stderr.contains("  -rotate-size rotate-size\n    \trotate the file when it grows bigger than rotate-size bytes\n"), "{}", help.stderr);
    assert!(
        help.stderr.contains(
            "  -log-prefix string\n    \tlog message prefix (default \"[nsq_to_file] \")\n"
        ),
        "{}",
        help.stderr
    );
    let extra = finish(
        tool(NSQ_TO_FILE, &["--topic=t", "a", "b"])
            .spawn()
            .expect("spawn"),
    )
    .await;
    assert_eq!(extra.code, Some(1));
    assert!(
        extra
            .stderr
            .trim_end()
            .ends_with("unknown arguments: [a b]"),
        "{}",
        extra.stderr
    );
    let missing = finish(tool(NSQ_TO_FILE, &["--topic=t"]).spawn().expect("spawn")).await;
    assert_eq!(missing.code, Some(1));
    assert!(
        missing
            .stderr
            .trim_end()
            .ends_with("--nsqd-tcp-address or --lookupd-http-address required."),
        "{}",
        missing.stderr
    );
    let level = finish(
        tool(
            NSQ_TO_FILE,
            &[
                "--gzip",
                "--gzip-level=12",
                "--topic=t",
                "--nsqd-tcp-address=127.0.0.1:1",
            ],
        )
        .spawn()
        .expect("spawn"),
    )
    .await;
    assert_eq!(level.code, Some(1));
    assert!(
        level
            .stderr
            .trim_end()
            .ends_with("invalid --gzip-level value (12), should be 1-9"),
        "{}",
        level.stderr
    );
}

#[tokio::test]
async fn daemons_report_a_bad_flag_in_one_line_that_says_what_is_wrong() {
    for (args, want) in [
        (&["--no-such-flag"][..], "flag provided but not defined: -no-such-flag (run nsqd -h for the flags)\n"),
        (&["--msg-timeout=90"], "invalid value \"90\" for flag -msg-timeout: time: missing unit in duration \"90\" (run nsqd -h for the flags)\n"),
    ] {
        let failed = finish(tool(env!("CARGO_BIN_EXE_nsqd"), args).spawn().expect("spawn")).await;
        assert_eq!(failed.code, Some(2), "{args:?}");
        assert_eq!(failed.stderr, want, "{args:?}");
    }
}
