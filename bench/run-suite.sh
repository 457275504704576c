#!/usr/bin/env bash
# Builds the release binaries and runs `nsq-bench suite` with the given arguments, e.g.
#
#   bench/run-suite.sh                                  # every case, A/B/A/B... ours only
#   bench/run-suite.sh --quick                          # a smoke test of every case
#   bench/run-suite.sh --baseline-nsqd ~/go/bin/nsqd    # ours against Go's nsqd
#   bench/run-suite.sh --cases pub-mem1m,latency-default --rounds 3
#
# The markdown report goes to stdout, progress to stderr. CARGO_TARGET_DIR is honoured.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release -p nsq
target_dir="${CARGO_TARGET_DIR:-target}"
exec "${target_dir}/release/nsq-bench" suite "$@"
