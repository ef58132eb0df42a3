//! The service-versus-SQL benchmark at smoke size: it runs end to end on PostgreSQL and
//! produces a table with every shape and sane numbers. (The numbers themselves mean nothing
//! here; `cargo run --release -p csbs-bench` measures.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use csbs_bench::{self as benchmark, BenchmarkOptions, SqlClient};
use csbs_test_support::{postgres_admin_url, TestDatabase};

#[test]
fn the_benchmark_measures_every_shape() {
    let Some(admin_url) = postgres_admin_url() else {
        eprintln!("note: no PostgreSQL; the benchmark smoke test is skipped");
        return;
    };
    // pgbench comes with the PostgreSQL server; both clients are checked.
    for sql_client in [SqlClient::Pgbench, SqlClient::Diesel] {
        let db = TestDatabase::postgres(&admin_url);
        let options = BenchmarkOptions {
            items: 2000,
            requests: 6,
            warmup: 2,
            concurrency: vec![1, 2],
            explain: true,
            sql_client,
            sqlite_items: 300,
            cpu_seconds: 0.3,
            ..BenchmarkOptions::default()
        };
        let report = benchmark::run(db.url(), &options, &|message| eprintln!("{message}")).unwrap();
        check(&report);

        // Again on the data already there, for a few shapes only.
        let again = BenchmarkOptions {
            generate: false,
            requests: 2,
            concurrency: vec![1],
            explain: false,
            sqlite_items: 0,
            only: vec!["time range".into()],
            cpu_seconds: 0.0,
            ..options
        };
        let report = benchmark::run(db.url(), &again, &|message| eprintln!("{message}")).unwrap();
        assert!(report.import.is_none());
        assert!(report.incremental_import.is_none());
        if sql_client == SqlClient::Diesel {
            check_matrix(db.url(), &again);
        }
        assert!(!report.results.is_empty());
        assert!(
            report
                .results
                .iter()
                .all(|r| r.shape.contains("time range")),
            "{:?}",
            report.results
        );
    }
}

/// The same on SQLite: the service on a SQLite file against diesel connections to it, the
/// named shapes and the whole matrix agreeing with their SQL.
#[test]
fn the_benchmark_measures_sqlite_too() {
    let db = TestDatabase::sqlite();
    let options = BenchmarkOptions {
        items: 2000,
        requests: 4,
        warmup: 1,
        concurrency: vec![2],
        sql_client: SqlClient::Pgbench,
        cpu_seconds: 0.3,
        matrix: true,
        ..BenchmarkOptions::default()
    };
    let report = benchmark::run(db.url(), &options, &|message| eprintln!("{message}")).unwrap();
    assert_eq!(
        report.sql_client,
        SqlClient::Diesel,
        "pgbench is PostgreSQL's"
    );
    assert!(report.import_reference.is_none());
    assert_eq!(report.items, 2200, "the import and a tenth more");
    assert!(report.table_bytes > 0);
    assert_agreed(&report);
    let matrix = report
        .results
        .iter()
        .filter(|r| r.shape.starts_with("matrix "))
        .count();
    assert_eq!(matrix, (11 + 28 + 5) * 2 * 3);
    assert!(report.results.len() > matrix, "the named shapes too");
    for row in &report.results {
        for (side, latency) in [("service", &row.service), ("SQL", &row.sql)] {
            assert_eq!(latency.errors, 0, "{} {side}", row.shape);
            assert!(!latency.p50.is_zero(), "{} {side}: {latency:?}", row.shape);
        }
    }
    assert_eq!(report.cpu.len(), 6);
    let explain = BenchmarkOptions {
        generate: false,
        explain: true,
        ..options
    };
    assert!(benchmark::run(db.url(), &explain, &|_| {}).is_err());
}

/// The filter matrix on the same data: every combination for the three scopes, as a count and
/// as a page, each agreeing with its SQL.
fn check_matrix(url: &str, options: &BenchmarkOptions) {
    let matrix = BenchmarkOptions {
        matrix: true,
        only: vec!["matrix".into()],
        ..options.clone()
    };
    let report = benchmark::run(url, &matrix, &|message| eprintln!("{message}")).unwrap();
    assert_agreed(&report);
    // 11 single filters, 28 pairs, 5 triples; a count and a page of each; three scopes.
    assert_eq!(
        report.results.len(),
        (11 + 28 + 5) * 2 * 3,
        "{:?}",
        report.results.len()
    );
    for scope in ["largest", "median", "all tenants"] {
        for what in [
            "count status + time range + az",
            "page name + resource_name",
            "count ip",
            "page policy_id",
        ] {
            let name = format!("matrix {scope}: {what}");
            assert!(
                report.results.iter().any(|r| r.shape == name),
                "{name} is missing"
            );
        }
    }
}

/// Every shape answered alike through the service and as SQL, and none was refused.
fn assert_agreed(report: &benchmark::BenchmarkReport) {
    assert!(
        report.disagreements.is_empty(),
        "{:?}",
        report.disagreements
    );
    assert!(report.unavailable.is_empty(), "{:?}", report.unavailable);
}

fn check(report: &benchmark::BenchmarkReport) {
    // The CPU report: /healthz first as the yardstick, every request answered and costing
    // something, and the Keystone count answered from the cache (one login, one validation).
    let names: Vec<&str> = report
        .cpu
        .iter()
        .map(|cost| cost.request.as_str())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    assert_eq!(names[0], "/healthz");
    assert!((report.cpu[0].vs_healthz - 1.0).abs() < 1e-9);
    for cost in &report.cpu {
        assert!(cost.requests > 0 && cost.micros > 0.0, "{cost:?}");
    }
    assert!(
        report.cpu.iter().any(|cost| cost.name.contains("Keystone")),
        "{names:?}"
    );
    assert_eq!(report.keystone_calls, 2, "one login and one validation");
    let table = benchmark::cpu_table(&report.cpu, benchmark::CPU_CLIENTS);
    assert_eq!(
        table.lines().filter(|l| l.starts_with("| ")).count(),
        7,
        "{table}"
    );
    let import = report.import.as_ref().expect("the data was generated");
    assert_eq!(import.items, 2000);
    assert!(import.items_per_second() > 0.0);
    assert_eq!(import.batch_size, Some(2000), "PostgreSQL's default batch");
    assert!(import.finish_seconds > 0.0 && import.finish_seconds < import.seconds);
    let more = report.incremental_import.as_ref().expect("a tenth more");
    assert_eq!(more.items, 200);
    assert!(more.items_per_second() > 0.0);
    let reference = report.import_reference.as_ref().expect("always measured");
    assert_eq!(
        reference.items,
        import.items + more.items,
        "every row, as there are fewer than the limit"
    );
    let sqlite = report.sqlite_import.as_ref().expect("asked for");
    assert_eq!(sqlite.items, 300);
    assert!(sqlite.items_per_second() > 0.0);
    assert_eq!(
        sqlite.batch_size,
        Some(20_000),
        "SQLite's own default batch, as `seed` takes it"
    );
    let sqlite_reference = report
        .sqlite_import_reference
        .as_ref()
        .expect("measured with the SQLite import");
    assert_eq!(
        sqlite_reference.items, 300,
        "the reference copies every imported row"
    );
    assert!(sqlite_reference.items_per_second() > 0.0);
    assert!(
        report.peak_rss_bytes > 1024 * 1024,
        "{} bytes resident",
        report.peak_rss_bytes
    );
    assert_eq!(report.items, import.items + more.items, "both loads");
    assert!(report.table_bytes > 0);
    assert_agreed(report);
    let largest = &report.tenants[0];
    assert_eq!(largest.label, "largest");
    assert!(largest.items > 1000, "{largest:?}");

    let table = report.table();
    let expected = [
        "largest: count |",
        "largest: count status=available",
        "largest: count time range",
        "largest: count resource_id",
        "largest: list first page",
        // The deep pages are as deep as a tenant of this size allows.
        "by marker |",
        "by offset ",
        "largest: count status=available,error",
        "largest: count name=<one server's upgrade backups>",
        "largest: count status + resource_type + time range",
        "median: count |",
        "all tenants: count (admin)",
        "all tenants: count status=available (admin)",
    ];
    for shape in expected {
        assert!(table.contains(shape), "{shape} is missing from\n{table}");
    }
    let shapes = report
        .results
        .iter()
        .map(|r| &r.shape)
        .collect::<std::collections::HashSet<_>>();
    assert_eq!(
        report.results.len(),
        shapes.len() * 2,
        "one row per client count"
    );
    for row in &report.results {
        for (side, latency) in [("service", &row.service), ("SQL", &row.sql)] {
            assert_eq!(latency.requests, 6, "{} {side}", row.shape);
            assert_eq!(latency.errors, 0, "{} {side}", row.shape);
            assert!(!latency.p50.is_zero(), "{} {side}: {latency:?}", row.shape);
            assert!(latency.p50 <= latency.p99, "{} {side}", row.shape);
            assert!(latency.throughput > 0.0, "{} {side}", row.shape);
        }
        assert!(row.ratio_p50() > 0.0);
        assert!(row.ratio_throughput() > 0.0);
    }
    assert_eq!(report.plans.len(), shapes.len());
    for plan in &report.plans {
        assert!(plan.sql.contains("Execution Time"), "{plan:?}");
        if plan.shape.contains(": count") {
            // The service's own statement, run and measured.
            let service = plan.service.as_deref().unwrap_or_default();
            assert!(service.contains("Execution Time"), "{plan:?}");
        } else {
            assert!(plan.service.is_none(), "{plan:?}");
        }
    }
    // Counts the counters answer are planned on the counters: a total on the totals alone, a
    // time range on the daily and hourly counters and, for the partial hours at its ends, the
    // items.
    let service_plan = |shape: &str| {
        report
            .plans
            .iter()
            .find(|plan| plan.shape.starts_with(shape))
            .and_then(|plan| plan.service.clone())
            .unwrap_or_else(|| panic!("{shape} is planned"))
    };
    let total = service_plan("largest: count");
    assert!(
        total.contains(" on item_counts")
            && !total.contains("item_counts_daily")
            && !total.contains("backup_items"),
        "{total}"
    );
    let range = service_plan("largest: count time range");
    for table in ["item_counts_daily", "item_counts_hourly", "backup_items"] {
        assert!(range.contains(table), "{table} in\n{range}");
    }
    assert!(report.summary().contains(&largest.project_id));
}
