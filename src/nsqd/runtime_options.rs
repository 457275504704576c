//! The two options `PUT /config/:opt` changes while nsqd runs (Go's `swapOpts`): the log
//! level and the nsqlookupd addresses. Everything else in [`Options`] is fixed at start.
//!
//! Neither is read on a message path: the log level is applied through a hook the binary
//! installs (the library never owns the global tracing subscriber), and the lookupd
//! addresses sit in a `watch` so the lookupd loop wakes when they change.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::Options;

/// Go's `lg.LogLevel`: the numbers `/config/log_level` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `debug` (1).
    Debug = 1,
    /// `info` (2), the default.
    Info = 2,
    /// `warn` (3).
    Warn = 3,
    /// `error` (4).
    Error = 4,
    /// `fatal` (5).
    Fatal = 5,
}

impl LogLevel {
    /// Go's `lg.ParseLogLevel`: the name, case-insensitively; `None` for anything else.
    pub fn parse(text: &str) -> Option<LogLevel> {
        match text.to_lowercase().as_str() {
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warn" => Some(LogLevel::Warn),
            "error" => Some(LogLevel::Error),
            "fatal" => Some(LogLevel::Fatal),
            _ => None,
        }
    }

    /// The lower-case name, as `--log-level` takes it.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Fatal => "fatal",
        }
    }

    /// Go's number for the level (debug 1 .. fatal 5).
    pub fn go_number(self) -> u8 {
        self as u8
    }

    fn from_go_number(number: u8) -> LogLevel {
        match number {
            1 => LogLevel::Debug,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Fatal,
            _ => LogLevel::Info,
        }
    }
}

/// Applies a new log level to whatever logs for the process (the binary reloads its
/// tracing filter with it). Called on the HTTP task that changed the level: keep it short.
pub type LogLevelHook = Arc<dyn Fn(LogLevel) + Send + Sync>;

/// The nsqlookupd addresses as they are now, for the lookupd loop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupdAddresses {
    /// `host:port` of every nsqlookupd to register with.
    pub addresses: Vec<String>,
    /// Go's nil list: after `PUT ... null` Go holds no list at all and `GET` shows `null`.
    /// The loop treats it as an empty list.
    pub null: bool,
}

/// The options that change at run time.
pub(crate) struct RuntimeOptions {
    log_level: AtomicU8,
    log_level_hook: Mutex<Option<LogLevelHook>>,
    /// Every change is sent here; the lookupd loop holds a receiver and reconnects.
    lookupd_addresses: watch::Sender<LookupdAddresses>,
}

impl RuntimeOptions {
    /// Starts from the values nsqd was started with.
    pub(crate) fn new(opts: &Options) -> Self {
        let level = LogLevel::parse(&opts.log_level).unwrap_or(LogLevel::Info);
        let (lookupd_addresses, _) = watch::channel(LookupdAddresses {
            addresses: opts.nsqlookupd_tcp_addresses.clone(),
            null: false,
        });
        RuntimeOptions {
            log_level: AtomicU8::new(level.go_number()),
            log_level_hook: Mutex::new(None),
            lookupd_addresses,
        }
    }

    pub(crate) fn log_level(&self) -> LogLevel {
        LogLevel::from_go_number(self.log_level.load(Ordering::Acquire))
    }

    /// Stores the level and hands it to the hook, if one is installed.
    pub(crate) fn set_log_level(&self, level: LogLevel) {
        self.log_level.store(level.go_number(), Ordering::Release);
        let hook = self.log_level_hook.lock().clone();
        if let Some(hook) = hook {
            hook(level);
        }
        tracing::info!(level = level.name(), "log level changed");
    }

    pub(crate) fn set_log_level_hook(&self, hook: LogLevelHook) {
        *self.log_level_hook.lock() = Some(hook);
    }

    pub(crate) fn lookupd_addresses(&self) -> LookupdAddresses {
        self.lookupd_addresses.borrow().clone()
    }

    /// Replaces the addresses and wakes every watcher, even when nothing differs (Go
    /// notifies on every successful PUT; the loop compares).
    pub(crate) fn set_lookupd_addresses(&self, addresses: LookupdAddresses) {
        tracing::info!(addresses = ?addresses.addresses, "nsqlookupd addresses changed");
        self.lookupd_addresses.send_replace(addresses);
    }

    pub(crate) fn watch_lookupd_addresses(&self) -> watch::Receiver<LookupdAddresses> {
        self.lookupd_addresses.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_parse_case_insensitively_to_go_numbers() {
        let cases = [
            ("debug", 1),
            ("INFO", 2),
            ("Warn", 3),
            ("error", 4),
            ("fatal", 5),
        ];
        for (text, number) in cases {
            let level = LogLevel::parse(text).unwrap();
            assert_eq!(level.go_number(), number, "{text}");
            assert_eq!(LogLevel::from_go_number(number), level);
            assert_eq!(LogLevel::parse(level.name()), Some(level));
        }
        for bad in ["", "loud", "warning", " info", "info\n"] {
            assert_eq!(LogLevel::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn set_log_level_calls_the_hook() {
        let runtime = RuntimeOptions::new(&Options::default());
        assert_eq!(runtime.log_level(), LogLevel::Info);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        runtime.set_log_level_hook(Arc::new(move |level| sink.lock().push(level)));
        runtime.set_log_level(LogLevel::Warn);
        assert_eq!(runtime.log_level(), LogLevel::Warn);
        assert_eq!(*seen.lock(), [LogLevel::Warn]);
    }

    #[test]
    fn lookupd_address_changes_wake_watchers() {
        let runtime = RuntimeOptions::new(&Options::default());
        let mut watcher = runtime.watch_lookupd_addresses();
        assert!(!watcher.has_changed().unwrap());
        let next = LookupdAddresses {
            addresses: vec!["127.0.0.1:4160".into()],
            null: false,
        };
        runtime.set_lookupd_addresses(next.clone());
        assert!(watcher.has_changed().unwrap());
        assert_eq!(*watcher.borrow_and_update(), next);
        assert_eq!(runtime.lookupd_addresses(), next);
    }
}
