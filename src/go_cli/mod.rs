//! Go's command-line conventions, shared by every binary we ship (nsqd, nsqlookupd and
//! the NSQ tools) so each reads its flags, config file and values exactly as its Go
//! counterpart does: the `flag` package's syntax ([`syntax`]) and `-h` layout
//! ([`usage`]), Go's value syntax ([`values`]; durations are in [`crate::go_time`]),
//! go-options' config-file value rules ([`toml_values`]), and what a main does with the
//! result ([`CliAction`], [`CliError`]).

pub mod syntax;
pub mod toml_values;
pub mod usage;
pub mod values;

pub use toml_values::ConfigError;

/// What the command line asks a binary to do.
#[derive(Debug, Clone, PartialEq)]
pub enum CliAction<O> {
    /// Start with these options (already through Go's startup checks).
    Run(Box<O>),
    /// `-h`/`--help`: print this text to stderr and exit 0.
    Help(String),
    /// `--version`: print this line to stdout and exit 0.
    Version(String),
}

/// Why a command line or its config file was refused. Print a [`CliError::Usage`] to
/// stderr as it is (it already holds Go's usage text); print the others as one fatal
/// log line. Exit with [`CliError::exit_code`].
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A bad command line: Go's message line, then the usage text.
    #[error("{message}\n{usage}")]
    Usage {
        /// The line Go prints, e.g. `flag provided but not defined: -x`.
        message: String,
        /// The usage text that follows it.
        usage: String,
    },
    /// The config file could not be read.
    #[error("failed to load config file {path} - {source}")]
    ConfigRead {
        /// The `--config` path.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The config file is not TOML, or has an unknown key or a bad value.
    #[error("failed to load config file {path} - {source}")]
    Config {
        /// The `--config` path.
        path: String,
        /// What is wrong in it.
        source: ConfigError,
    },
}

impl CliError {
    /// Go's exit status: 2 for a bad command line (the `flag` package), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage { .. } => 2,
            _ => 1,
        }
    }
}
