//! The service's own CPU per request: what one request costs the service process, measured
//! from CPU clocks under a steady load, not from latencies.
//!
//! The service runs in this process, beside the HTTP clients that load it. The process's CPU
//! clock (`CLOCK_PROCESS_CPUTIME_ID`) over the measured window, less what each client thread's
//! own clock (`CLOCK_THREAD_CPUTIME_ID`) says it spent, is the service's CPU: its workers, its
//! blocking database threads, its pool. Divided by the requests answered, it is comparable
//! between requests of one run; `/healthz` (the HTTP stack alone) is the yardstick, so the
//! report gives each request's cost as a multiple of it.
//!
//! A count is measured twice: with a JWT and with a Keystone token that the service has
//! validated once and then answers from its cache. The Keystone is a stand-in that answers
//! the service's login and that one validation; a cached validation asks nothing of Keystone,
//! so the stand-in does not change the figure.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use csbs_test_support::identity_provider::{Answer, IdentityProvider};
use serde_json::json;

use crate::{HttpConnection, RunningService};

/// One request's cost.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuCost {
    /// What was asked.
    pub name: String,
    /// `GET` target.
    pub request: String,
    /// Requests answered in the window.
    pub requests: usize,
    /// Service CPU per request, in microseconds.
    pub micros: f64,
    /// `micros` over the same figure of `/healthz` in the same run.
    pub vs_healthz: f64,
}

/// A request to measure.
pub(crate) struct CpuProbe {
    pub(crate) name: String,
    pub(crate) target: String,
    pub(crate) token: String,
}

/// The Keystone stand-in of the benchmark's service: the login and validation answer for
/// tokens of `project`.
pub(crate) struct KeystoneStandIn {
    provider: IdentityProvider,
    /// A caller's opaque token, as Keystone hands them out.
    pub(crate) caller_token: String,
}

impl KeystoneStandIn {
    pub(crate) fn start(project: &str) -> Self {
        let provider = IdentityProvider::start();
        let expires = csbs_domain::format_timestamp(
            (std::time::SystemTime::now() + Duration::from_secs(24 * 3600))
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| {
                    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
                }),
        );
        // One body serves both calls: the login reads `expires_at`, the validation the rest.
        let body = json!({"token": {
            "methods": ["password"],
            "user": {"id": "bench-user", "name": "bench-user",
                     "domain": {"id": "default", "name": "Default"}},
            "project": {"id": project, "name": project, "domain": {"id": "default"}},
            "roles": [{"id": "r-member", "name": "member"}, {"id": "r-reader", "name": "reader"}],
            "expires_at": format!("{expires}Z"),
            "issued_at": format!("{}Z", csbs_domain::format_timestamp(0)),
        }});
        provider.answer(
            "/v3/auth/tokens?nocatalog",
            Answer {
                headers: vec![(
                    "X-Subject-Token".to_owned(),
                    "gAAAAABbench-service-token".to_owned(),
                )],
                ..Answer::json(&body)
            },
        );
        Self {
            provider,
            caller_token: format!("gAAAAAB{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// The settings that point the service at the stand-in.
    pub(crate) fn service_settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CSBS__AUTH__KEYSTONE__URL", self.provider.url("/v3")),
            (
                "CSBS__AUTH__KEYSTONE__PASSWORD",
                "bench-service-password".to_owned(),
            ),
        ]
    }

    /// Calls the service made to the stand-in (logins and validations).
    pub(crate) fn calls(&self) -> usize {
        self.provider.requests("/v3/auth/tokens?nocatalog")
    }
}

/// Measures each probe for `seconds` with `clients` connections, `/healthz` first.
pub(crate) fn measure_all(
    service: &RunningService,
    probes: &[CpuProbe],
    clients: usize,
    seconds: f64,
) -> anyhow::Result<Vec<CpuCost>> {
    let mut costs: Vec<CpuCost> = Vec::new();
    let healthz = CpuProbe {
        name: "/healthz (the HTTP stack alone)".to_owned(),
        target: "/healthz".to_owned(),
        token: String::new(),
    };
    for probe in std::iter::once(&healthz).chain(probes) {
        let (requests, cpu) = measure(service, probe, clients, seconds)
            .with_context(|| format!("CPU of {}", probe.name))?;
        let micros = cpu.as_secs_f64() * 1e6 / requests.max(1) as f64;
        let yardstick = costs.first().map_or(micros, |healthz| healthz.micros);
        costs.push(CpuCost {
            name: probe.name.clone(),
            request: probe.target.clone(),
            requests,
            micros,
            vs_healthz: micros / yardstick.max(1e-9),
        });
    }
    Ok(costs)
}

/// Requests answered, and the service's CPU over them.
fn measure(
    service: &RunningService,
    probe: &CpuProbe,
    clients: usize,
    seconds: f64,
) -> anyhow::Result<(usize, Duration)> {
    let clients = clients.max(1);
    let mut connections = (0..clients)
        .map(|_| HttpConnection::connect(service.address()))
        .collect::<Result<Vec<_>, _>>()?;
    // Warm: connections open, caches (statements, tokens) filled.
    for connection in &mut connections {
        for _ in 0..20 {
            let (status, body) = connection.get(&probe.target, &probe.token)?;
            if status != 200 {
                bail!(
                    "GET {} answered {status}: {}",
                    probe.target,
                    String::from_utf8_lossy(&body)
                );
            }
        }
    }
    let window = Duration::from_secs_f64(seconds);
    let start = Barrier::new(clients + 1);
    let (process_cpu, runs) = std::thread::scope(|scope| {
        let handles: Vec<_> = connections
            .into_iter()
            .map(|mut connection| {
                let start = &start;
                scope.spawn(move || -> anyhow::Result<(usize, Duration)> {
                    start.wait();
                    let own_cpu = thread_cpu();
                    let until = Instant::now() + window;
                    let mut answered = 0;
                    while Instant::now() < until {
                        let (status, _) = connection.get(&probe.target, &probe.token)?;
                        if status != 200 {
                            bail!("GET {} answered {status}", probe.target);
                        }
                        answered += 1;
                    }
                    Ok((answered, thread_cpu().saturating_sub(own_cpu)))
                })
            })
            .collect();
        let before = process_cpu();
        start.wait();
        let runs: Vec<_> = handles.into_iter().map(|handle| handle.join()).collect();
        (process_cpu().saturating_sub(before), runs)
    });
    let mut requests = 0;
    let mut clients_cpu = Duration::ZERO;
    for run in runs {
        let (answered, cpu) = run.map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        requests += answered;
        clients_cpu += cpu;
    }
    Ok((requests, process_cpu.saturating_sub(clients_cpu)))
}

/// CPU time of every thread of this process, the ended ones included.
fn process_cpu() -> Duration {
    cpu_time::ProcessTime::try_now().map_or(Duration::ZERO, |now| now.as_duration())
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    cpu_time::ThreadTime::try_now().map_or(Duration::ZERO, |now| now.as_duration())
}

/// The costs as a Markdown table.
pub fn table(costs: &[CpuCost], clients: usize) -> String {
    let mut table = format!(
        "Service CPU per request ({clients} clients on keep-alive connections, the process's \
         CPU clock less the clients' own):\n\n\
         | request | `GET` | requests | service CPU µs/request | × /healthz |\n\
         |---|---|---:|---:|---:|\n"
    );
    for cost in costs {
        table.push_str(&format!(
            "| {} | `{}` | {} | {:.0} | {:.1}× |\n",
            cost.name, cost.request, cost.requests, cost.micros, cost.vs_healthz
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_clocks_advance_with_work() {
        let (process, thread) = (process_cpu(), thread_cpu());
        // Work until this thread's clock shows 20 ms of it: on a busy machine that takes
        // longer than 20 ms of wall time, but never 10 s unless the clock stands still.
        let mut x: u64 = 1;
        let started = Instant::now();
        while thread_cpu() - thread < Duration::from_millis(20) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the thread's CPU clock does not advance"
            );
            for _ in 0..10_000 {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            }
        }
        std::hint::black_box(x);
        let spent = thread_cpu() - thread;
        assert!(process_cpu() - process >= spent);
    }
}
