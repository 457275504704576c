//! `GET /config/:opt` and `PUT /config/:opt`.
//!
//! `GET` answers every option Go's `Options` gives a flag, by its config (TOML) name, as
//! Go's `encoding/json` writes the Go value: durations as integer nanoseconds, lists as
//! arrays (an unset percentile list is Go's nil slice, `null`), `log_level` as Go's
//! number, `tls_min_version` as the TLS version number Go stores (`769` for tls1.0).
//! Options Go keeps out of flags (`queue_scan_interval`, `client_timeout`, ...) are
//! INVALID_OPTION, as in Go.
//!
//! `PUT` sets only `nsqlookupd_tcp_addresses` (a JSON array of strings) and `log_level`
//! (a level name; the answer is its number), and answers with the new value.

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use super::body::read_body;
use super::respond::{error, json_bytes, HttpResponse};
use crate::nsqd::runtime_options::{LogLevel, LookupdAddresses};
use crate::nsqd::NsqdInner;

pub(super) async fn config(
    nsqd: &NsqdInner,
    opt: &str,
    request: Request<Incoming>,
) -> HttpResponse {
    if request.method() == Method::PUT {
        if let Err((status, text)) = set_option(nsqd, opt, request).await {
            return error(nsqd, status, text);
        }
    }
    match option_json(nsqd, opt) {
        Some(json) => json_bytes(nsqd, StatusCode::OK, json.into_bytes()),
        None => error(nsqd, StatusCode::BAD_REQUEST, "INVALID_OPTION"),
    }
}

/// Go reads at most `--max-msg-size` bytes of value; an empty or longer one is 413.
async fn set_option(
    nsqd: &NsqdInner,
    opt: &str,
    request: Request<Incoming>,
) -> Result<(), (StatusCode, &'static str)> {
    const INVALID_VALUE: (StatusCode, &str) = (StatusCode::BAD_REQUEST, "INVALID_VALUE");
    const TOO_BIG_OR_EMPTY: (StatusCode, &str) = (StatusCode::PAYLOAD_TOO_LARGE, "INVALID_VALUE");
    let limit = usize::try_from(nsqd.opts.max_msg_size).unwrap_or(usize::MAX);
    let body = match read_body(request, limit).await {
        Ok(Some(body)) if !body.is_empty() => body,
        Ok(_) => return Err(TOO_BIG_OR_EMPTY),
        Err(()) => return Err((StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR")),
    };
    match opt {
        "nsqlookupd_tcp_addresses" => {
            let addresses = parse_go_string_list(&body).ok_or(INVALID_VALUE)?;
            nsqd.runtime.set_lookupd_addresses(addresses);
        }
        "log_level" => {
            let text = std::str::from_utf8(&body).map_err(|_| INVALID_VALUE)?;
            let level = LogLevel::parse(text).ok_or(INVALID_VALUE)?;
            nsqd.runtime.set_log_level(level);
        }
        _ => return Err((StatusCode::BAD_REQUEST, "INVALID_OPTION")),
    }
    Ok(())
}

/// What Go's `json.Unmarshal` into a `[]string` accepts: `null` (a nil list), or an
/// array whose items are strings or `null` (left as ""). Invalid UTF-8 becomes U+FFFD
/// as Go's decoder makes it.
fn parse_go_string_list(body: &[u8]) -> Option<LookupdAddresses> {
    let text = String::from_utf8_lossy(body);
    let list: Option<Vec<Option<String>>> = serde_json::from_str(&text).ok()?;
    Some(match list {
        None => LookupdAddresses {
            addresses: Vec::new(),
            null: true,
        },
        Some(items) => LookupdAddresses {
            addresses: items.into_iter().map(Option::unwrap_or_default).collect(),
            null: false,
        },
    })
}

/// The option `name` (its cfg name) as Go's JSON encoder writes it; `None` when Go has no
/// such flag-backed option.
fn option_json(nsqd: &NsqdInner, name: &str) -> Option<String> {
    let o = &nsqd.opts;
    let int = |v: i64| v.to_string();
    let duration =
        |d: std::time::Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX).to_string();
    let text = |s: &str| crate::go_json::string(s);
    let json = match name {
        "id" => int(o.id),
        "log_level" => nsqd.runtime.log_level().go_number().to_string(),
        "log_prefix" => text(&o.log_prefix),
        "tcp_address" => text(&o.tcp_address),
        "http_address" => text(&o.http_address),
        "https_address" => text(&o.https_address),
        "broadcast_address" => text(&o.broadcast_address),
        "broadcast_tcp_port" => o.broadcast_tcp_port.to_string(),
        "broadcast_http_port" => o.broadcast_http_port.to_string(),
        "nsqlookupd_tcp_addresses" => {
            let current = nsqd.runtime.lookupd_addresses();
            if current.null {
                "null".to_string()
            } else {
                string_list(&current.addresses)
            }
        }
        "auth_http_addresses" => string_list(&o.auth_http_addresses),
        "http_client_connect_timeout" => duration(o.http_client_connect_timeout),
        "http_client_request_timeout" => duration(o.http_client_request_timeout),
        "data_path" => text(&o.data_path),
        "mem_queue_size" => int(o.mem_queue_size),
        "max_deferred_memory" => int(o.max_deferred_memory),
        "max_bytes_per_file" => int(o.max_bytes_per_file),
        "sync_every" => int(o.sync_every),
        "sync_timeout" => duration(o.sync_timeout),
        "queue_scan_selection_count" => int(o.queue_scan_selection_count),
        "queue_scan_worker_pool_max" => int(o.queue_scan_worker_pool_max),
        "msg_timeout" => duration(o.msg_timeout),
        "max_msg_timeout" => duration(o.max_msg_timeout),
        "max_msg_size" => int(o.max_msg_size),
        "max_body_size" => int(o.max_body_size),
        "max_req_timeout" => duration(o.max_req_timeout),
        "max_heartbeat_interval" => duration(o.max_heartbeat_interval),
        "max_rdy_count" => int(o.max_rdy_count),
        "max_output_buffer_size" => int(o.max_output_buffer_size),
        "max_output_buffer_timeout" => duration(o.max_output_buffer_timeout),
        "min_output_buffer_timeout" => duration(o.min_output_buffer_timeout),
        "output_buffer_timeout" => duration(o.output_buffer_timeout),
        "max_channel_consumers" => int(o.max_channel_consumers),
        "statsd_address" => text(&o.statsd_address),
        "statsd_prefix" => text(&o.statsd_prefix),
        "statsd_interval" => duration(o.statsd_interval),
        "statsd_mem_stats" => o.statsd_mem_stats.to_string(),
        "statsd_udp_packet_size" => int(o.statsd_udp_packet_size),
        "statsd_exclude_ephemeral" => o.statsd_exclude_ephemeral.to_string(),
        "e2e_processing_latency_window_time" => duration(o.e2e_processing_latency_window_time),
        "e2e_processing_latency_percentiles" => float_list(&o.e2e_processing_latency_percentiles),
        "tls_cert" => text(&o.tls_cert),
        "tls_key" => text(&o.tls_key),
        "tls_client_auth_policy" => text(&o.tls_client_auth_policy),
        "tls_root_ca_file" => text(&o.tls_root_ca_file),
        "tls_required" => int(o.tls_required),
        "tls_min_version" => tls_version_number(&o.tls_min_version).to_string(),
        "deflate" => o.deflate.to_string(),
        "max_deflate_level" => int(o.max_deflate_level),
        "snappy" => o.snappy.to_string(),
        _ => return None,
    };
    Some(json)
}

/// Go's `tls.VersionSSL30` .. `tls.VersionTLS13`, what its `TLSMinVersion` field holds.
fn tls_version_number(name: &str) -> u16 {
    match name {
        "ssl3.0" => 0x0300,
        "tls1.1" => 0x0302,
        "tls1.2" => 0x0303,
        "tls1.3" => 0x0304,
        _ => 0x0301,
    }
}

fn string_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| crate::go_json::string(s)).collect();
    format!("[{}]", items.join(","))
}

/// Go leaves the percentile list nil unless it was given, and a nil slice is `null`.
fn float_list(items: &[f64]) -> String {
    if items.is_empty() {
        return "null".to_string();
    }
    let items: Vec<String> = items.iter().map(|f| crate::go_json::float(*f)).collect();
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_lists_are_json_arrays_or_null() {
        assert_eq!(float_list(&[]), "null");
        assert_eq!(float_list(&[1.0, 0.99]), "[1,0.99]");
    }

    #[test]
    fn string_lists_parse_as_go_unmarshals_them() {
        let parsed = |text: &[u8]| parse_go_string_list(text);
        assert_eq!(
            parsed(br#" ["127.0.0.1:4160", null] "#).unwrap().addresses,
            ["127.0.0.1:4160", ""]
        );
        let null = parsed(b"null").unwrap();
        assert!(null.null && null.addresses.is_empty());
        for bad in [&b"not json"[..], b"\"a\"", b"[1]", b"{}", b"[\"a\"] x"] {
            assert!(parsed(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn tls_versions_are_go_numbers() {
        assert_eq!(tls_version_number("tls1.0"), 769);
        assert_eq!(tls_version_number("ssl3.0"), 768);
        assert_eq!(tls_version_number("tls1.3"), 772);
    }
}
