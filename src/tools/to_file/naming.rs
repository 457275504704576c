//! nsq_to_file's file names: `--filename-format` with `<TOPIC>`, `<HOST>`, `<PID>`,
//! `<REV>` and `<DATETIME>` (`--datetime-format`, strftime codes) filled in as Go does.

use thiserror::Error;

/// Why a filename format cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NamingError {
    /// gzip, rotation or a work dir need `<REV>` to tell files apart.
    #[error("missing <REV> in --filename-format when gzip, rotation, or work dir enabled")]
    MissingRev,
}

/// A topic's filename template: everything but `<DATETIME>` and `<REV>` filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilenameTemplate {
    template: String,
}

/// What the template is built from.
#[derive(Debug, Clone)]
pub struct NamingInputs<'a> {
    /// `--filename-format`.
    pub format: &'a str,
    /// The topic.
    pub topic: &'a str,
    /// The OS hostname.
    pub hostname: &'a str,
    /// `--host-identifier` ("" for the short hostname).
    pub host_identifier: &'a str,
    /// This process's id.
    pub pid: u32,
    /// gzip, rotation or a work dir other than the output dir: `<REV>` is required.
    pub needs_rev: bool,
    /// `--gzip`: `.gz` is appended when missing.
    pub gzip: bool,
}

impl FilenameTemplate {
    /// Go's `computeFilenameFormat`.
    pub fn new(inputs: &NamingInputs<'_>) -> Result<Self, NamingError> {
        let short_host = inputs.hostname.split('.').next().unwrap_or(inputs.hostname);
        let identifier = if inputs.host_identifier.is_empty() {
            short_host.to_string()
        } else {
            inputs
                .host_identifier
                .replace("<SHORT_HOST>", short_host)
                .replace("<HOSTNAME>", inputs.hostname)
        };
        let mut template = inputs.format.to_string();
        if inputs.needs_rev {
            if !template.contains("<REV>") {
                return Err(NamingError::MissingRev);
            }
        } else {
            template = template.replace("<REV>", "");
        }
        template = template
            .replace("<TOPIC>", inputs.topic)
            .replace("<HOST>", &identifier)
            .replace("<PID>", &inputs.pid.to_string());
        if inputs.gzip && !template.ends_with(".gz") {
            template.push_str(".gz");
        }
        Ok(FilenameTemplate { template })
    }

    /// The name for `datetime` (already formatted), `<REV>` still in it.
    pub fn with_datetime(&self, datetime: &str) -> String {
        self.template.replace("<DATETIME>", datetime)
    }
}

/// `<REV>` as Go writes it: `-000042`.
pub fn with_rev(name: &str, rev: u32) -> String {
    name.replace("<REV>", &format!("-{rev:06}"))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A moment in UTC, split as strftime needs it.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    weekday: usize,
}

impl Civil {
    /// From nanoseconds since the Unix epoch (Howard Hinnant's days-to-civil).
    fn from_unix_ns(ns: i64) -> Civil {
        let seconds = ns.div_euclid(1_000_000_000);
        let days = seconds.div_euclid(86_400);
        let in_day = seconds.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: (in_day / 3600) as u32,
            minute: (in_day % 3600 / 60) as u32,
            second: (in_day % 60) as u32,
            weekday: (days + 4).rem_euclid(7) as usize,
        }
    }
}

/// `--datetime-format` applied to `unix_ns` (UTC), with the strftime codes Go's
/// nsq_to_file knows (`%Y %y %m %d %H %I %M %S %p %B %b %A %a %Z %z %%`); an unknown code
/// is copied as it is.
///
/// Differs from Go on purpose in one way: Go turns the format into a Go time layout, so
/// literal text that happens to be a layout token (`1`, `2`, `Jan`, `15`...) is replaced
/// by a date part; here literal text stays literal. Go also uses local time; this is UTC.
pub fn strftime(format: &str, unix_ns: i64) -> String {
    let t = Civil::from_unix_ns(unix_ns);
    let mut out = String::with_capacity(format.len() + 8);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(code) = chars.next() else {
            out.push('%');
            break;
        };
        let month_name = MONTHS[(t.month as usize).saturating_sub(1) % 12];
        let day_name = DAYS[t.weekday % 7];
        match code {
            'Y' => out.push_str(&t.year.to_string()),
            'y' => out.push_str(&format!("{:02}", t.year.rem_euclid(100))),
            'm' => out.push_str(&format!("{:02}", t.month)),
            'd' => out.push_str(&format!("{:02}", t.day)),
            'H' => out.push_str(&format!("{:02}", t.hour)),
            'I' => out.push_str(&format!("{:02}", (t.hour + 11) % 12 + 1)),
            'M' => out.push_str(&format!("{:02}", t.minute)),
            'S' => out.push_str(&format!("{:02}", t.second)),
            'p' => out.push_str(if t.hour < 12 { "AM" } else { "PM" }),
            'B' => out.push_str(month_name),
            'b' => out.push_str(&month_name[..3]),
            'A' => out.push_str(day_name),
            'a' => out.push_str(&day_name[..3]),
            'Z' => out.push_str("UTC"),
            'z' => out.push_str("+0000"),
            '%' => out.push('%'),
            other => {
                out.push('%');
                out.push(other);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(format: &'a str, needs_rev: bool, gzip: bool) -> NamingInputs<'a> {
        NamingInputs {
            format,
            topic: "test",
            hostname: "myhost.example.com",
            host_identifier: "",
            pid: 42,
            needs_rev,
            gzip,
        }
    }

    #[test]
    fn default_names_read_like_gos() {
        let format = "<TOPIC>.<HOST><REV>.<DATETIME>.log";
        let plain = FilenameTemplate::new(&inputs(format, false, false)).unwrap();
        assert_eq!(
            plain.with_datetime("2024-01-02_15"),
            "test.myhost.2024-01-02_15.log"
        );
        let gz = FilenameTemplate::new(&inputs(format, true, true)).unwrap();
        assert_eq!(
            with_rev(&gz.with_datetime("2024-01-02_15"), 0),
            "test.myhost-000000.2024-01-02_15.log.gz"
        );
        assert_eq!(
            FilenameTemplate::new(&inputs("<TOPIC>.log", true, false)),
            Err(NamingError::MissingRev)
        );
        let mut with_id = inputs("<HOST>-<PID>", false, false);
        with_id.host_identifier = "<SHORT_HOST>/<HOSTNAME>";
        assert_eq!(
            FilenameTemplate::new(&with_id).unwrap().with_datetime(""),
            "myhost/myhost.example.com-42"
        );
    }

    #[test]
    fn strftime_codes() {
        // 2024-01-02 15:04:05 UTC, a Tuesday.
        let ns = 1_704_207_845 * 1_000_000_000;
        assert_eq!(strftime("%Y-%m-%d_%H", ns), "2024-01-02_15");
        assert_eq!(
            strftime("%y %I:%M:%S %p %B %b %A %a %Z %z %% %q", ns),
            "24 03:04:05 PM January Jan Tuesday Tue UTC +0000 % %q"
        );
        assert_eq!(strftime("%Y-%m-%d", 0), "1970-01-01");
        assert_eq!(
            strftime("%Y-%m-%d", 951_782_400 * 1_000_000_000),
            "2000-02-29"
        );
    }
}
