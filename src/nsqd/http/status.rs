//! `/info` and `/stats`.

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::StatusCode;

use super::respond::{error, json, plain, HttpResponse};
use crate::nsqd::stats::StatsFilter;
use crate::nsqd::NsqdInner;

pub(super) fn info(nsqd: &NsqdInner) -> HttpResponse {
    #[derive(serde::Serialize)]
    struct Info<'a> {
        version: &'a str,
        broadcast_address: &'a str,
        hostname: String,
        http_port: u16,
        tcp_port: u16,
        start_time: i64,
        max_heartbeat_interval: i64,
        max_output_buffer_size: i64,
        max_output_buffer_timeout: i64,
        max_deflate_level: i64,
    }
    let opts = &nsqd.opts;
    let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let tcp_port = match opts.broadcast_tcp_port {
        0 => nsqd.tcp_addr.port(),
        p => p,
    };
    let http_port = match opts.broadcast_http_port {
        0 => nsqd.http_addr.map(|a| a.port()).unwrap_or(0),
        p => p,
    };
    let body = Info {
        version: crate::nsqd::options::VERSION,
        broadcast_address: &opts.broadcast_address,
        hostname: crate::env::os_hostname(),
        http_port,
        tcp_port,
        start_time: nsqd.start_time,
        max_heartbeat_interval: nanos(opts.max_heartbeat_interval),
        max_output_buffer_size: opts.max_output_buffer_size,
        max_output_buffer_timeout: nanos(opts.max_output_buffer_timeout),
        max_deflate_level: opts.max_deflate_level,
    };
    json(nsqd, StatusCode::OK, &body)
}

pub(super) fn stats(nsqd: &NsqdInner, query: &BTreeMap<String, String>) -> HttpResponse {
    let flag = |name: &str| match query.get(name).map(String::as_str) {
        None => Ok(true),
        Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(_) => Err(()),
    };
    let (Ok(include_clients), Ok(include_mem)) = (flag("include_clients"), flag("include_mem"))
    else {
        return error(nsqd, StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    };
    let filter = StatsFilter {
        // An empty value filters nothing, as Go's `topic == ""` check.
        topic: query.get("topic").filter(|t| !t.is_empty()).cloned(),
        channel: query.get("channel").filter(|c| !c.is_empty()).cloned(),
        include_clients,
        include_mem,
    };
    let stats = nsqd.stats(&filter);
    if query.get("format").map(String::as_str) == Some("json") {
        json(nsqd, StatusCode::OK, &stats)
    } else {
        let text = crate::nsqd::stats_text::render(&stats, nsqd.now_ns());
        plain(nsqd, StatusCode::OK, &text, true)
    }
}
