//! The layout of Go's `flag.PrintDefaults`, which every NSQ binary's `-h` prints.

/// One flag in `flag.PrintDefaults`' layout: `  -name type`, then 4 spaces, a tab, the
/// usage and ` (default X)` when `default` is given (already formatted that way).
pub fn push_usage_entry(
    out: &mut String,
    name: &str,
    type_name: &str,
    usage: &str,
    default: Option<&str>,
) {
    out.push_str("  -");
    out.push_str(name);
    if !type_name.is_empty() {
        out.push(' ');
        out.push_str(type_name);
    }
    out.push_str("\n    \t");
    out.push_str(usage);
    if let Some(default) = default {
        out.push_str(default);
    }
    out.push('\n');
}
