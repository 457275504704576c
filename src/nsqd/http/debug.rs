//! Go nsqd's two non-pprof debug endpoints, answered as Go v1.3.0 answers them.
//!
//! Both exist in Go's route table, so they keep their methods (a wrong one is 405 with
//! Go's `Allow`). Their work is Go-runtime-only and has no Rust counterpart, so here they
//! do nothing. Their answers are Go's, quirk included: Go wraps both handlers in its
//! plain-text decorator, which panics on the handlers' empty success, and the router's
//! panic handler turns that into 500 `{"message":"INTERNAL_ERROR"}`. A script that calls
//! them against Go nsqd sees exactly what it sees here.
//!
//! `/debug/pprof/*` is deliberately not here: pprof's profiles describe the Go runtime,
//! nothing in a Rust process answers them, so those paths are 404 NOT_FOUND (see the
//! route table).

use hyper::StatusCode;

use super::respond::{error, plain, HttpResponse};
use super::Query;
use crate::go_fmt::go_quote;
use crate::nsqd::NsqdInner;

/// `PUT /debug/setblockrate?rate=N`: Go sets the goroutine blocking-profile rate. Here a
/// rate Go accepts changes nothing (there is no block profile) and gets Go's 500; one
/// Go's `strconv.Atoi` refuses gets Go's 400 plain-text message. The rate is read from
/// the query string only (Go's `FormValue` would also read a form-encoded body).
pub(super) fn set_block_rate(nsqd: &NsqdInner, query: &Query) -> HttpResponse {
    let raw = query.params.get("rate").map(String::as_str).unwrap_or("");
    if let Err(why) = raw.parse::<i64>() {
        let reason = match why.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        let text = format!(
            "invalid block rate : strconv.Atoi: parsing {}: {reason}",
            go_quote(raw)
        );
        return plain(nsqd, StatusCode::BAD_REQUEST, &text, false);
    }
    go_plain_text_panic(nsqd)
}

/// `POST /debug/freememory`: Go returns freed heap to the OS (`debug.FreeOSMemory`).
/// Rust's allocator has no such call to make, so this is a no-op with Go's answer.
pub(super) fn free_memory(nsqd: &NsqdInner) -> HttpResponse {
    go_plain_text_panic(nsqd)
}

/// What Go's router answers when the plain-text decorator panics on an empty success.
fn go_plain_text_panic(nsqd: &NsqdInner) -> HttpResponse {
    error(nsqd, StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR")
}
