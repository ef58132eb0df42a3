//! Logging: `tracing` with a filter from the configuration (or `RUST_LOG`), as text or JSON.

use std::io::IsTerminal;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSettings};

/// The directive that silences actix's per-request parse-error lines.
const QUIET_DISPATCHER: &str = "actix_http::h1::dispatcher=off";

/// Installs the global subscriber writing to `sink`. A second call does nothing, so tests may
/// call it freely.
pub fn init<W>(settings: &LogSettings, sink: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let text = std::env::var("RUST_LOG")
        .ok()
        .filter(|text| EnvFilter::try_new(text).is_ok())
        .unwrap_or_else(|| settings.filter.clone());
    let mut filter = EnvFilter::try_new(&text).unwrap_or_else(|_| EnvFilter::new("info"));
    // actix's HTTP/1 dispatcher logs every request it cannot parse at ERROR, one line each,
    // so anyone could flood the logs; those requests are answered and logged at INFO by the
    // service itself (`http_refusals`). Kept quiet unless the filter names it.
    if !text.contains("actix_http") {
        if let Ok(directive) = QUIET_DISPATCHER.parse() {
            filter = filter.add_directive(directive);
        }
    }
    // Colours only for a person at a terminal: the service logs to stderr, and escape codes in
    // a log file or a collector are noise. `NO_COLOR` (no-color.org) turns them off anywhere.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(sink);
    let _already_set = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
