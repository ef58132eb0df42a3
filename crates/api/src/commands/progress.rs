//! The one-shot commands' progress bars: drawn on a terminal, hidden otherwise so that logs
//! and redirected output stay clean.

use std::io::{self, IsTerminal};

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `total` items (`seed`, the benchmark's data generation).
pub fn items(total: u64) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{bar:40} {human_pos}/{human_len} items {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    )
}

/// A bar of bytes read from a file of `length` bytes, or a spinner when the length is unknown
/// (standard input).
pub fn bytes(length: Option<u64>) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    match length {
        Some(length) => ProgressBar::new(length).with_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} read {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    }
}
