#!/usr/bin/env bash
# The prediction log's crash test at length: 1,000 kill -9s of `ballast serve` under heavy
# durable logging (6 clients sending as fast as they can; every third kill lands during startup
# and WAL recovery), then a clean restart and stop, and a check that every acknowledged record
# is in the log exactly once and no record twice. CI runs the same test with 50 kills.
#
#   bash bench/kill_loop.sh            # ITERATIONS=1000
set -euo pipefail
cd "$(dirname "$0")/.."
ITERATIONS=${ITERATIONS:-1000}
BALLAST_KILL_LOOP_ITERATIONS=$ITERATIONS cargo test --release -p ballast --test prediction_logs \
  kill_9_loop_under_durable_logging_loses_and_duplicates_nothing -- --nocapture
