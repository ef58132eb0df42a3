//! The one-shot commands' progress bars: drawn on a terminal, hidden otherwise so that logs
//! and redirected output stay clean.

use std::io::{self, IsTerminal};
use std::time::Duration;

use indicatif::{HumanCount, ProgressBar, ProgressState, ProgressStyle};

/// How often a bar is redrawn while nothing is reported: a batch is stored as one transaction
/// (20,000 items on SQLite), and the elapsed time and spinner show that work goes on meanwhile.
const TICK: Duration = Duration::from_millis(200);

/// A bar of `total` items (`seed`, the benchmark's data generation), moving as batches are
/// stored.
pub fn items(total: u64) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total).with_style(style(
        "{spinner} {bar:40} {human_pos}/{human_len} items stored, {rate} items/s, {elapsed} (eta {eta})",
        ProgressStyle::default_bar(),
    ));
    bar.enable_steady_tick(TICK);
    bar
}

/// A bar of bytes read from a file of `length` bytes, or a spinner when the length is unknown
/// (standard input).
pub fn bytes(length: Option<u64>) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match length {
        Some(length) => ProgressBar::new(length).with_style(style(
            "{spinner} {bar:40} {bytes}/{total_bytes} read, {bytes_per_sec}, {elapsed} (eta {eta})",
            ProgressStyle::default_bar(),
        )),
        None => ProgressBar::new_spinner().with_style(style(
            "{spinner} {bytes} read, {bytes_per_sec}, {elapsed}",
            ProgressStyle::default_spinner(),
        )),
    };
    bar.enable_steady_tick(TICK);
    bar
}

fn style(template: &str, fallback: ProgressStyle) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .map(|style| {
            style.with_key(
                "rate",
                |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                    let _ = out.write_str(&per_second(state.per_sec()));
                },
            )
        })
        .unwrap_or(fallback)
}

/// A rate as a whole number with thousands separated: `4,422`, not `4,421.5101`.
pub fn per_second(rate: f64) -> String {
    let whole = if rate.is_finite() && rate > 0.0 {
        rate.round() as u64
    } else {
        0
    };
    HumanCount(whole).to_string()
}

#[cfg(test)]
mod tests {
    use super::per_second;

    #[test]
    fn rates_are_whole_numbers_with_separators() {
        assert_eq!(per_second(4_421.510_1), "4,422");
        assert_eq!(per_second(999.4), "999");
        assert_eq!(per_second(1_234_567.0), "1,234,567");
        assert_eq!(per_second(0.0), "0");
        assert_eq!(per_second(f64::NAN), "0");
    }
}
