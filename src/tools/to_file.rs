//! `nsq_to_file`: writes topics' messages to files, one line each, as Go's nsq_to_file
//! does (see [`file_logger`] for the write, sync and FIN order, and [`naming`] for the
//! file names).

pub mod file_logger;
pub mod naming;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use futures_util::future::join_all;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use self::file_logger::{FileError, FileLogger, FileSettings};
use self::naming::{FilenameTemplate, NamingInputs};
use super::app::{
    fatal, http_timeouts, nsq_config, user_agent, version_requested, CONSUMER_OPT,
    HTTP_CLIENT_CONNECT_TIMEOUT, LOOKUPD_HTTP_ADDRESS, MAX_IN_FLIGHT, NSQD_TCP_ADDRESS,
    VERSION_FLAG,
};
use super::consumer::{stopped, Consumer, Subscription};
use super::flag_set::{Flag, FlagSet, FlagValues, Kind};
use super::nsq_config::NsqConfig;
use crate::env::Env;
use crate::go_cli::values::parse_log_level;
use crate::http_client::{get_json, HttpTimeouts};

/// The name Go's nsq_to_file gives its flag set, so its `-h` says `Usage of nsqd:`.
pub const USAGE_NAME: &str = "nsqd";

/// Go nsq_to_file v1.3.0's flags.
pub static FLAGS: FlagSet = FlagSet {
    flags: &[
        Flag::new("channel", Kind::Str, "nsq_to_file", "nsq channel"),
        CONSUMER_OPT,
        Flag::new(
            "datetime-format",
            Kind::Str,
            "%Y-%m-%d_%H",
            "strftime compatible format for <DATETIME> in filename format",
        ),
        Flag::new(
            "filename-format",
            Kind::Str,
            "<TOPIC>.<HOST><REV>.<DATETIME>.log",
            "output filename format (<TOPIC>, <HOST>, <PID>, <DATETIME>, <REV> are replaced. <REV> is increased when file already exists)",
        ),
        Flag::new("gzip", Kind::Bool, "false", "gzip output files."),
        Flag::new(
            "gzip-level",
            Kind::Int,
            "6",
            "gzip compression level (1-9, 1=BestSpeed, 9=BestCompression)",
        ),
        Flag::new(
            "host-identifier",
            Kind::Str,
            "",
            "value to output in log filename in place of hostname. <SHORT_HOST> and <HOSTNAME> are valid replacement tokens",
        ),
        HTTP_CLIENT_CONNECT_TIMEOUT,
        Flag::new(
            "http-client-request-timeout",
            Kind::Duration,
            "5s",
            "timeout for HTTP request",
        ),
        Flag::new(
            "log-level",
            Kind::Str,
            "info",
            "set log verbosity: debug, info, warn, error, or fatal",
        ),
        Flag::new("log-prefix", Kind::Str, "[nsq_to_file] ", "log message prefix"),
        LOOKUPD_HTTP_ADDRESS,
        MAX_IN_FLIGHT,
        NSQD_TCP_ADDRESS,
        Flag::new(
            "output-dir",
            Kind::Str,
            "/tmp",
            "directory to write output files to",
        ),
        Flag::new(
            "rotate-interval",
            Kind::Duration,
            "0s",
            "rotate the file every duration",
        ),
        Flag::new(
            "rotate-size",
            Kind::Int,
            "0",
            "rotate the file when it grows bigger than `rotate-size` bytes",
        ),
        Flag::new("skip-empty-files", Kind::Bool, "false", "skip writing empty files"),
        Flag::new(
            "sync-interval",
            Kind::Duration,
            "30s",
            "sync file to disk every duration",
        ),
        Flag::new(
            "topic",
            Kind::List,
            "",
            "nsq topic (may be given multiple times)",
        ),
        Flag::new(
            "topic-pattern",
            Kind::Str,
            "",
            "only log topics matching the following pattern",
        ),
        Flag::new(
            "topic-refresh",
            Kind::Duration,
            "1m0s",
            "how frequently the topic list should be refreshed",
        ),
        VERSION_FLAG,
        Flag::new(
            "work-dir",
            Kind::Str,
            "",
            "directory for in-progress files before moving to output-dir",
        ),
    ],
};

/// The log level and prefix the binary sets up logging with (Go checks the level first).
pub fn log_settings(flags: &FlagValues) -> Result<(&'static str, String), ExitCode> {
    match parse_log_level(&flags.string("log-level")) {
        Ok(level) => Ok((level, flags.string("log-prefix"))),
        Err(_) => Err(fatal("--log-level is invalid")),
    }
}

/// Everything a topic's writer needs, checked once.
struct Plan {
    channel: String,
    nsqds: Vec<String>,
    lookupds: Vec<String>,
    config: NsqConfig,
    /// `--topic-pattern`: `None` allows every topic; an invalid pattern allows none, as
    /// Go's `regexp.MatchString` error does.
    pattern: Option<Result<regex::Regex, regex::Error>>,
    pattern_text: String,
    settings: FileSettings,
    format: String,
    host_identifier: String,
    needs_rev: bool,
    gzip: bool,
}

/// Runs nsq_to_file with parsed flags until `stop` turns true (then every writer syncs,
/// FINs, closes and moves its file) or, with only `--topic`s, until every writer ended.
/// `hup` ticks close every file (SIGHUP).
pub async fn run(
    env: Env,
    flags: &FlagValues,
    stop: watch::Receiver<bool>,
    hup: watch::Receiver<u64>,
) -> ExitCode {
    if !flags.args().is_empty() {
        return fatal(&format!("unknown arguments: [{}]", flags.args().join(" ")));
    }
    if let Some(code) = version_requested(flags, "nsq_to_file", &mut std::io::stdout()) {
        return code;
    }
    let plan = match plan(flags) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    let timeouts = http_timeouts(flags);
    let topics = flags.list("topic").to_vec();
    let discover = topics.is_empty();
    let mut writers = JoinSet::new();
    let mut known = BTreeSet::new();
    start_writers(&env, &plan, &topics, &mut known, &mut writers, &stop, &hup).await;
    let mut refresh = tokio::time::interval(flags.duration("topic-refresh"));
    refresh.reset();
    let mut watch_stop = stop.clone();
    loop {
        tokio::select! {
            () = stopped(&mut watch_stop) => break,
            _ = refresh.tick(), if discover => {
                match lookupd_topics(&env, &plan.lookupds, timeouts).await {
                    Ok(found) => {
                        start_writers(&env, &plan, &found, &mut known, &mut writers, &stop, &hup).await;
                    }
                    Err(error) => tracing::error!("could not retrieve topic list: {error}"),
                }
            }
            joined = writers.join_next(), if !discover && !writers.is_empty() => {
                if let Some(Ok(Err(error))) = joined {
                    return fatal(&error.to_string());
                }
            }
        }
    }
    while let Some(joined) = writers.join_next().await {
        if let Ok(Err(error)) = joined {
            return fatal(&error.to_string());
        }
    }
    ExitCode::SUCCESS
}

/// Go's startup checks, in Go's order.
fn plan(flags: &FlagValues) -> Result<Plan, ExitCode> {
    let channel = flags.string("channel");
    if channel.is_empty() {
        return Err(fatal("--channel is required"));
    }
    if flags.duration("http-client-connect-timeout").is_zero() {
        return Err(fatal("--http-client-connect-timeout should be positive"));
    }
    if flags.duration("http-client-request-timeout").is_zero() {
        return Err(fatal("--http-client-request-timeout should be positive"));
    }
    let nsqds = flags.list("nsqd-tcp-address").to_vec();
    let lookupds = flags.list("lookupd-http-address").to_vec();
    if nsqds.is_empty() && lookupds.is_empty() {
        return Err(fatal(
            "--nsqd-tcp-address or --lookupd-http-address required.",
        ));
    }
    if !nsqds.is_empty() && !lookupds.is_empty() {
        return Err(fatal(
            "use --nsqd-tcp-address or --lookupd-http-address not both",
        ));
    }
    let gzip_level = flags.int("gzip-level");
    if !(1..=9).contains(&gzip_level) {
        return Err(fatal(&format!(
            "invalid --gzip-level value ({gzip_level}), should be 1-9"
        )));
    }
    let pattern_text = flags.string("topic-pattern");
    if flags.list("topic").is_empty() && pattern_text.is_empty() {
        return Err(fatal("--topic or --topic-pattern required"));
    }
    if flags.list("topic").is_empty() && lookupds.is_empty() {
        return Err(fatal(
            "--lookupd-http-address must be specified when no --topic specified",
        ));
    }
    let output_dir = PathBuf::from(flags.string("output-dir"));
    let work_dir = match flags.string("work-dir") {
        dir if dir.is_empty() => output_dir.clone(),
        dir => PathBuf::from(dir),
    };
    let mut config = match nsq_config(flags.list("consumer-opt")) {
        Ok(config) => config,
        Err(error) => return Err(fatal(&error.to_string())),
    };
    config.user_agent = user_agent("nsq_to_file");
    config.max_in_flight = flags.int("max-in-flight");
    if let Err(error) = config.validate() {
        return Err(fatal(&error.to_string()));
    }
    let gzip = flags.bool("gzip");
    let rotate_size = u64::try_from(flags.int("rotate-size")).unwrap_or(0);
    let rotate_interval = flags.duration("rotate-interval");
    let needs_rev = gzip || rotate_size > 0 || !rotate_interval.is_zero() || work_dir != output_dir;
    let settings = FileSettings {
        output_dir,
        work_dir,
        datetime_format: flags.string("datetime-format"),
        gzip_level: gzip.then_some(gzip_level as u32),
        rotate_size,
        rotate_interval,
        sync_interval: flags.duration("sync-interval"),
        skip_empty_files: flags.bool("skip-empty-files"),
        max_in_flight: usize::try_from(config.max_in_flight).unwrap_or(1),
    };
    Ok(Plan {
        channel,
        nsqds,
        lookupds,
        config,
        pattern: (!pattern_text.is_empty()).then(|| regex::Regex::new(&pattern_text)),
        pattern_text,
        settings,
        format: flags.string("filename-format"),
        host_identifier: flags.string("host-identifier"),
        needs_rev,
        gzip,
    })
}

/// Starts a writer for every topic not seen before that the pattern allows. A topic
/// whose consumer cannot start is logged and skipped, as in Go.
async fn start_writers(
    env: &Env,
    plan: &Plan,
    topics: &[String],
    known: &mut BTreeSet<String>,
    writers: &mut JoinSet<Result<(), FileError>>,
    stop: &watch::Receiver<bool>,
    hup: &watch::Receiver<u64>,
) {
    for topic in topics {
        if !known.insert(topic.clone()) {
            continue;
        }
        if let Some(pattern) = &plan.pattern {
            if !pattern
                .as_ref()
                .is_ok_and(|pattern| pattern.is_match(topic))
            {
                tracing::warn!(
                    "skipping topic {topic} (doesn't match pattern {})",
                    plan.pattern_text
                );
                continue;
            }
        }
        let template = match FilenameTemplate::new(&NamingInputs {
            format: &plan.format,
            topic,
            hostname: &crate::env::os_hostname(),
            host_identifier: &plan.host_identifier,
            pid: std::process::id(),
            needs_rev: plan.needs_rev,
            gzip: plan.gzip,
        }) {
            Ok(template) => template,
            Err(error) => {
                tracing::error!("couldn't create logger for new topic {topic}: {error}");
                continue;
            }
        };
        let subscription = Subscription {
            topic: topic.clone(),
            channel: plan.channel.clone(),
            nsqd_tcp_addresses: plan.nsqds.clone(),
            lookupd_http_addresses: plan.lookupds.clone(),
            config: plan.config.clone(),
        };
        let consumer = match Consumer::start(env.clone(), subscription).await {
            Ok(consumer) => consumer,
            Err(error) => {
                tracing::error!("couldn't create logger for new topic {topic}: {error}");
                continue;
            }
        };
        let logger = FileLogger::new(
            env.clone(),
            topic,
            &plan.channel,
            template,
            plan.settings.clone(),
        );
        writers.spawn(logger.run(consumer, stop.clone(), hup.clone()));
    }
}

#[derive(Deserialize)]
struct Topics {
    #[serde(default)]
    topics: Option<Vec<String>>,
}

/// Every topic the nsqlookupds know (`GET /topics`), sorted; any failure fails the round.
async fn lookupd_topics(
    env: &Env,
    lookupds: &[String],
    timeouts: HttpTimeouts,
) -> Result<Vec<String>, String> {
    let answers = join_all(lookupds.iter().map(|addr| {
        let addr = addr.strip_prefix("http://").unwrap_or(addr);
        get_json::<Topics>(&*env.net, addr, "/topics", timeouts, 16 * 1024 * 1024)
    }))
    .await;
    let mut found = BTreeSet::new();
    let mut errors = Vec::new();
    for (addr, answer) in lookupds.iter().zip(answers) {
        match answer {
            Ok(topics) => found.extend(topics.topics.unwrap_or_default()),
            Err(error) => errors.push(format!("{addr}: {error}")),
        }
    }
    if errors.is_empty() {
        Ok(found.into_iter().collect())
    } else {
        Err(errors.join("\n"))
    }
}
