//! Without a reachable PostgreSQL (outside CI) the PostgreSQL tests pass without running; the
//! notice that says so must reach the terminal even though the harness captures test output.

use std::process::Command;

const PROBE: &str = "CSBS_TEST_SUPPORT_NOTICE_PROBE";

/// Runs only inside the child below: asks for a PostgreSQL database where there is none.
#[test]
fn probe() {
    if std::env::var_os(PROBE).is_some() {
        assert!(csbs_test_support::postgres_database().is_none());
    }
}

#[test]
fn the_unreachable_postgres_notice_is_shown_with_captured_output() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "probe", "--test-threads=1"])
        .env(PROBE, "1")
        .env(
            "CSBS_TEST_POSTGRES_URL",
            "postgres://postgres@127.0.0.1:1/none",
        )
        .env_remove("CI")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stderr.contains("note: PostgreSQL unreachable at CSBS_TEST_POSTGRES_URL"),
        "the notice is not shown: {stderr}"
    );
}
