//! nsqd's command line read with Go's `flag` syntax ([`crate::go_cli::syntax`]) over
//! nsqd's flag table; the tests pin Go's syntax and messages.

use super::flags::{self, Flag};
use crate::go_cli::syntax::scan_with;
use crate::nsqd::Options;

/// One flag as given on the command line.
#[derive(Clone)]
pub struct Occurrence {
    /// Which flag.
    pub flag: &'static Flag,
    /// Its value; `"true"` for a boolean given bare.
    pub value: String,
}

/// What the command line asked for.
pub enum Scan {
    /// Flags to apply, in command-line order.
    Flags(Vec<Occurrence>),
    /// `-h`, `-help` or `--help`.
    Help,
}

/// Reads `args` (without the program name) as Go's `FlagSet.Parse` would. The error is
/// the line Go prints before the usage text.
pub fn scan(args: &[String]) -> Result<Scan, String> {
    // Every value is parsed into a scratch copy as it is met, only to check it.
    let mut scratch = Options::default();
    let found = scan_with(
        args,
        flags::find,
        |flag| flag.target.is_bool(),
        |flag, value| flags::set_from_text(flag.target, &mut scratch, value),
    )?;
    Ok(match found {
        Some(pairs) => Scan::Flags(
            pairs
                .into_iter()
                .map(|(flag, value)| Occurrence { flag, value })
                .collect(),
        ),
        None => Scan::Help,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn pairs(list: &[&str]) -> Vec<(String, String)> {
        match scan(&args(list)) {
            Ok(Scan::Flags(found)) => found
                .into_iter()
                .map(|o| (o.flag.name.to_string(), o.value))
                .collect(),
            Ok(Scan::Help) => panic!("unexpected help"),
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    fn error(list: &[&str]) -> String {
        match scan(&args(list)) {
            Err(e) => e,
            Ok(_) => panic!("expected an error for {list:?}"),
        }
    }

    #[test]
    fn every_dash_and_value_form() {
        let want = vec![("mem-queue-size".to_string(), "5".to_string())];
        for form in [
            &["-mem-queue-size=5"][..],
            &["--mem-queue-size=5"],
            &["-mem-queue-size", "5"],
            &["--mem-queue-size", "5"],
        ] {
            assert_eq!(pairs(form), want, "{form:?}");
        }
    }

    #[test]
    fn a_separate_value_may_start_with_a_dash() {
        assert_eq!(
            pairs(&["-log-prefix", "-x-"]),
            vec![("log-prefix".into(), "-x-".into())]
        );
    }

    #[test]
    fn booleans_never_take_the_next_argument() {
        assert_eq!(
            pairs(&["-snappy", "false", "-deflate=false"]),
            vec![("snappy".into(), "true".into())],
            "'false' is a non-flag argument, so parsing stops there"
        );
        assert_eq!(
            pairs(&["-snappy=false"]),
            vec![("snappy".into(), "false".into())]
        );
    }

    #[test]
    fn parsing_stops_at_non_flags_and_double_dash() {
        assert_eq!(pairs(&["-snappy", "x", "-nope"]).len(), 1);
        assert_eq!(pairs(&["-snappy", "--", "-nope"]).len(), 1);
        assert_eq!(pairs(&["-snappy", "-", "-nope"]).len(), 1);
        assert!(pairs(&[]).is_empty());
    }

    #[test]
    fn errors_read_like_go() {
        assert_eq!(
            error(&["-no-such-flag"]),
            "flag provided but not defined: -no-such-flag"
        );
        assert_eq!(
            error(&["--no-such-flag=1"]),
            "flag provided but not defined: -no-such-flag"
        );
        assert_eq!(
            error(&["-mem-queue-size"]),
            "flag needs an argument: -mem-queue-size"
        );
        assert_eq!(error(&["---x"]), "bad flag syntax: ---x");
        assert_eq!(error(&["-=x"]), "bad flag syntax: -=x");
        assert_eq!(
            error(&["-snappy=yes"]),
            "invalid boolean value \"yes\" for -snappy: parse error"
        );
        assert_eq!(
            error(&["-mem-queue-size=lots"]),
            "invalid value \"lots\" for flag -mem-queue-size: parse error"
        );
        assert_eq!(
            error(&["-mem-queue-size=99999999999999999999"]),
            "invalid value \"99999999999999999999\" for flag -mem-queue-size: value out of range"
        );
        assert_eq!(
            error(&["-msg-timeout", "60"]),
            "invalid value \"60\" for flag -msg-timeout: time: missing unit in duration \"60\""
        );
    }

    #[test]
    fn the_first_bad_flag_wins() {
        assert_eq!(
            error(&["-snappy=x", "-nope"]),
            "invalid boolean value \"x\" for -snappy: parse error"
        );
        assert!(matches!(scan(&args(&["-h", "-nope"])), Ok(Scan::Help)));
        assert!(scan(&args(&["-nope", "-h"])).is_err());
    }

    #[test]
    fn help_in_every_spelling() {
        for form in ["-h", "--h", "-help", "--help", "-help=1"] {
            assert!(matches!(scan(&args(&[form])), Ok(Scan::Help)), "{form}");
        }
    }
}
