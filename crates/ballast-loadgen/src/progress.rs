//! A terminal progress bar fed by [`crate::run`]'s `on_tick`; hidden when stderr is not a
//! terminal, so logs and CI output stay clean.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::LiveStats;

const TEMPLATE: &str = "{spinner} [{bar:30}] {msg}";

/// A progress bar over `duration` (pass `warmup + duration`: [`LiveStats::elapsed`] counts from
/// the start of the warmup) and the `on_tick` callback that drives it. Call
/// `finish_and_clear` on the bar when the run returns.
pub fn progress_bar(duration: Duration) -> (ProgressBar, impl FnMut(&LiveStats) + Send) {
    let total_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(total_ms)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let handle = bar.clone();
    let on_tick = move |s: &LiveStats| {
        let elapsed_ms = u64::try_from(s.elapsed.as_millis()).unwrap_or(u64::MAX);
        handle.set_position(elapsed_ms.min(total_ms));
        handle.set_message(describe(s, duration));
    };
    (bar, on_tick)
}

/// A bar over `steps` units of work with a message (what runs now), hidden when stderr is not
/// a terminal: for runs that are not driven by [`crate::run`] (`bench --in-process`).
pub fn steps_bar(steps: u64) -> ProgressBar {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(steps)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn describe(s: &LiveStats, total: Duration) -> String {
    format!(
        "{:.0}/{:.0} s{}  ok {:.0}/s  rejected {:.0}/s  errors {:.0}/s  p50 {}  p99 {}  in flight {}",
        s.elapsed.as_secs_f64(),
        total.as_secs_f64(),
        if s.warming_up { " (warmup)" } else { "" },
        s.ok_per_sec,
        s.rejected_per_sec,
        s.errors_per_sec,
        human(s.p50),
        human(s.p99),
        s.in_flight
    )
}

/// `850µs`, `12.3ms`, `1.50s`.
fn human(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.1}ms", us / 1e3)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_live_stats() {
        let s = LiveStats {
            elapsed: Duration::from_secs(3),
            warming_up: true,
            ok_per_sec: 1234.4,
            p50: Duration::from_micros(850),
            p99: Duration::from_micros(12_340),
            in_flight: 7,
            ..LiveStats::default()
        };
        let text = describe(&s, Duration::from_secs(10));
        assert_eq!(
            text,
            "3/10 s (warmup)  ok 1234/s  rejected 0/s  errors 0/s  p50 850µs  p99 12.3ms  in flight 7"
        );
        assert_eq!(human(Duration::from_millis(1500)), "1.50s");
    }

    #[test]
    fn the_tick_callback_moves_the_bar() {
        let (bar, mut on_tick) = progress_bar(Duration::from_secs(10));
        on_tick(&LiveStats {
            elapsed: Duration::from_secs(4),
            ..LiveStats::default()
        });
        assert!(bar.message().starts_with("4/10 s"));
        bar.finish_and_clear();
    }
}
