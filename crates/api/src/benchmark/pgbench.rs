//! The SQL side of the benchmark run by PostgreSQL's own load generator, `pgbench`: a C client
//! with prepared statements and no result handling to speak of, the fastest way to put a query
//! to the server. The service is compared with it at the same number of clients.
//!
//! Each shape's SQL becomes a one-line pgbench script with its bind values written in as
//! literals (`-M prepared` still prepares it once per connection). Latencies come from
//! pgbench's per-transaction log (`-l`), throughput from its own `tps` line. pgbench reads its
//! clock lazily and logs about one transaction in a hundred as taking 0 µs; those count as
//! requests but are left out of the percentiles.

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
    let (mut latencies, errors) = read_logs(work_dir)?;
    let requests = latencies.len();
    latencies.retain(|latency| !latency.is_zero());
    latencies.sort_unstable();
    Ok(Latency {
        requests,
        errors,
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

/// Every transaction's latency from the per-thread logs in `dir` (which are removed), and the
/// number of failed transactions. A log line is `client transaction latency_us script …`;
/// a failed transaction has `failed` (or `skipped`) for its latency.
fn read_logs(dir: &Path) -> anyhow::Result<(Vec<Duration>, usize)> {
    let mut latencies = Vec::new();
    let mut errors = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_log = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("pgbench_log."));
        if !is_log {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            match line.split_whitespace().nth(2).map(str::parse::<u64>) {
                Some(Ok(micros)) => latencies.push(Duration::from_micros(micros)),
                Some(Err(_)) => errors += 1,
                None => {}
            }
        }
        std::fs::remove_file(&path)?;
    }
    Ok((latencies, errors))
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
    fn the_tps_line_is_read() {
        let report = "number of failed transactions: 0 (0.000%)\n\
                      latency average = 0.301 ms\n\
                      initial connection time = 3.456 ms\n\
                      tps = 6634.512345 (without initial connection time)\n";
        assert_eq!(tps(report), Some(6634.512345));
        assert_eq!(tps("nothing"), None);
    }
}
