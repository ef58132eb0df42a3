//! The SQL side of the benchmark run by PostgreSQL's own load generator, `pgbench`: a C client
//! with prepared statements and no result handling to speak of, the fastest way to put a query
//! to the server. The service is compared with it at the same number of clients.
//!
//! Each shape's SQL becomes a one-line pgbench script with its bind values written in as
//! literals (`-M prepared` still prepares it once per connection). Latencies come from
//! pgbench's per-transaction log (`-l`), throughput from its own `tps` line. pgbench reads its
//! clock lazily and logs some transactions as taking 0 µs (mostly the one after a slow one, and
//! under load most of a short run's); as a client starts its next transaction as soon as one
//! ends, such a transaction's latency is the time between its end and the end of the client's
//! previous one, both of which the log records. A client's first transaction logged as 0 µs
//! counts as a request but is left out of the percentiles.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

use super::{percentile, Bind, Latency};

/// Whether `pgbench` can be run.
pub fn available() -> bool {
    Command::new("pgbench")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// `sql` with `$1`, `$2`, … replaced by `binds` as SQL literals.
pub fn inline_binds(sql: &str, binds: &[Bind]) -> String {
    let mut text = sql.to_owned();
    // From the highest number down, so that `$1` never eats the start of `$10`.
    for (index, bind) in binds.iter().enumerate().rev() {
        let literal = match bind {
            Bind::Text(value) => format!("'{}'", value.replace('\'', "''")),
            Bind::BigInt(value) => value.to_string(),
        };
        text = text.replace(&format!("${}", index + 1), &literal);
    }
    text
}

/// Runs `sql` from `clients` connections, `warmup` unmeasured and then `requests` measured
/// transactions in all, and returns their latencies and pgbench's throughput.
pub fn measure(
    database_url: &str,
    sql: &str,
    clients: usize,
    requests: usize,
    warmup: usize,
    work_dir: &Path,
) -> anyhow::Result<Latency> {
    let clients = clients.max(1);
    let script = work_dir.join("shape.sql");
    std::fs::write(&script, format!("{sql};\n"))?;
    if warmup > 0 {
        run(
            database_url,
            &script,
            clients,
            warmup.div_ceil(clients),
            None,
        )?;
    }
    let log_prefix = work_dir.join("pgbench_log");
    let output = run(
        database_url,
        &script,
        clients,
        requests.div_ceil(clients),
        Some(&log_prefix),
    )?;
    let throughput = tps(&output).context("pgbench printed no tps")?;
    let log = read_logs(work_dir)?;
    let mut latencies = log.latencies;
    latencies.sort_unstable();
    Ok(Latency {
        requests: log.requests,
        errors: log.errors,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        throughput,
    })
}

fn run(
    database_url: &str,
    script: &Path,
    clients: usize,
    transactions_per_client: usize,
    log_prefix: Option<&Path>,
) -> anyhow::Result<String> {
    let mut command = Command::new("pgbench");
    command
        .args(["--no-vacuum", "--protocol=prepared"])
        .arg(format!("--client={clients}"))
        .arg(format!("--jobs={clients}"))
        .arg(format!("--transactions={transactions_per_client}"))
        .arg(format!("--file={}", script.display()));
    if let Some(prefix) = log_prefix {
        command
            .arg("--log")
            .arg(format!("--log-prefix={}", prefix.display()));
    }
    // The URL (with the benchmark schema in its `options`) is the database name argument.
    command.arg(database_url);
    let output = command
        .current_dir(script.parent().unwrap_or(Path::new(".")))
        .output()
        .context("cannot run pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "pgbench failed: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// The `tps = …` figure of pgbench's report.
fn tps(output: &str) -> Option<f64> {
    output
        .lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

/// What pgbench's per-transaction logs say.
#[derive(Debug, Default, PartialEq)]
struct TransactionLog {
    /// Transactions logged, failed ones included.
    requests: usize,
    /// Failed (or skipped) transactions.
    errors: usize,
    /// The latency of every transaction that succeeded and whose latency is known.
    latencies: Vec<Duration>,
}

/// Reads the per-thread logs in `dir` (and removes them).
fn read_logs(dir: &Path) -> anyhow::Result<TransactionLog> {
    let mut log = TransactionLog::default();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_log = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("pgbench_log."));
        if !is_log {
            continue;
        }
        parse_log(&std::fs::read_to_string(&path)?, &mut log);
        std::fs::remove_file(&path)?;
    }
    Ok(log)
}

/// Adds one thread's log to `log`. A line is `client transaction latency_us script epoch_s
/// epoch_us …`, where the epoch is when the transaction ended; a failed transaction has
/// `failed` (or `skipped`) for its latency. A latency logged as 0 is replaced by the time since
/// the same client's previous transaction ended (see the module's documentation).
fn parse_log(text: &str, log: &mut TransactionLog) {
    let mut previous_end: HashMap<&str, u64> = HashMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(client), Some(latency)) = (fields.first(), fields.get(2)) else {
            continue;
        };
        log.requests += 1;
        let end = match (fields.get(4), fields.get(5)) {
            (Some(seconds), Some(micros)) => seconds
                .parse::<u64>()
                .ok()
                .zip(micros.parse::<u64>().ok())
                .map(|(seconds, micros)| seconds * 1_000_000 + micros),
            _ => None,
        };
        let since_previous = end
            .zip(previous_end.get(client).copied())
            .map(|(end, previous)| end.saturating_sub(previous));
        if let Some(end) = end {
            previous_end.insert(client, end);
        }
        match latency.parse::<u64>() {
            Ok(0) => match since_previous {
                Some(micros) if micros > 0 => log.latencies.push(Duration::from_micros(micros)),
                _ => {}
            },
            Ok(micros) => log.latencies.push(Duration::from_micros(micros)),
            Err(_) => log.errors += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_become_literals_without_clashing_numbers() {
        let binds: Vec<Bind> = (1..=10)
            .map(|i| {
                if i == 10 {
                    Bind::Text("it's".into())
                } else {
                    Bind::BigInt(i)
                }
            })
            .collect();
        assert_eq!(
            inline_binds("a = $1 AND b = $10 AND c = $2", &binds),
            "a = 1 AND b = 'it''s' AND c = 2"
        );
    }

    #[test]
    fn a_latency_logged_as_zero_is_the_time_since_the_clients_previous_transaction() {
        // Two clients interleaved, as in one thread's log; client 0's third transaction and
        // client 1's first are logged as 0 µs; one transaction failed.
        let text = "0 1 1195 0 1795865557 741475\n\
                    1 1 0 0 1795865557 741500\n\
                    0 2 3464 0 1795865557 744939\n\
                    0 3 0 0 1795865557 745002\n\
                    1 2 failed 0 1795865557 745100\n\
                    1 3 43 0 1795865557 745143\n\
                    0 4 0 0 1795865558 000010\n";
        let mut log = TransactionLog::default();
        parse_log(text, &mut log);
        assert_eq!(log.requests, 7);
        assert_eq!(log.errors, 1);
        assert_eq!(
            log.latencies,
            [1195, 3464, 63, 43, 255_008].map(Duration::from_micros),
            "client 1's first transaction has no known latency; the second-boundary is crossed"
        );
    }

    #[test]
    fn the_tps_line_is_read() {
        let report = "number of failed transactions: 0 (0.000%)\n\
                      latency average = 0.301 ms\n\
                      initial connection time = 3.456 ms\n\
                      tps = 6634.512345 (without initial connection time)\n";
        assert_eq!(tps(report), Some(6634.512345));
        assert_eq!(tps("nothing"), None);
    }
}
