//! The command-line tool: `import`, `token`, `migrate`, `seed` and `counters`, as an operator
//! runs them.

use std::io::Write;
use std::process::Command;

use csbs_api::commands::import::import;
use csbs_test_support::{backend_tests, execute_sql, item_json, TestDatabase};
use serde_json::json;

use crate::helpers::pool_mode_name;

fn csbs_api(database_url: &str, data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_csbs-api"));
    command
        .env("DATABASE_URL", database_url)
        .env("CSBS__DATABASE__POOL_MODE", pool_mode_name(database_url))
        .env("CSBS__DATA_DIR", data_dir)
        .env("CSBS__LOG__FILTER", "warn")
        .env_remove("CSBS_ENV");
    command
}

fn jsonl(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn import_reports_bad_lines_stores_good_ones_and_is_idempotent(db: TestDatabase) {
    let repository = db.repository();
    let good: Vec<String> = (0..5)
        .map(|i| item_json("tenant-a", json!({"name": format!("i{i}")})).to_string())
        .collect();
    let mut lines = good.clone();
    lines.insert(2, "{not json".into());
    lines.insert(4, json!({"id": "x"}).to_string());
    lines.push(String::new());
    lines.push(item_json("tenant-a", json!({"status": "bogus"})).to_string());
    let input = jsonl(&lines);

    let mut reported = Vec::new();
    let summary = import(&repository, input.as_bytes(), 2, 2, |line, reason| {
        reported.push((line, reason))
    })
    .unwrap();
    assert_eq!(summary.lines, 8, "{db:?}");
    assert_eq!(summary.items, 5);
    assert_eq!(summary.written, 5);
    assert_eq!(summary.bad_lines, 3);
    let numbers: Vec<u64> = reported.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, vec![3, 5, 9]);
    assert!(reported[0].1.contains("JSON"), "{:?}", reported[0]);
    assert!(reported[1].1.contains("project_id"), "{:?}", reported[1]);
    assert!(reported[2].1.contains("status"), "{:?}", reported[2]);

    let again = import(&repository, input.as_bytes(), 3, 2, |_, _| {}).unwrap();
    assert_eq!(again.written, 0, "{db:?}: importing twice changes nothing");
    let filter = csbs_domain::BackupFilter {
        scope: csbs_domain::TenantScope::Project(
            csbs_domain::ProjectId::parse("p", "tenant-a").unwrap(),
        ),
        criteria: Default::default(),
    };
    assert_eq!(repository.count(&filter).unwrap(), 5);
}

/// The import's summary adds up: every non-blank line is an item or a bad line (invalid UTF-8
/// included), and a line repeated later in its batch is neither "unchanged" nor stored.
fn the_import_summary_adds_up(db: TestDatabase) {
    let repository = db.repository();
    let first = item_json("tenant-a", json!({"name": "first"}));
    let mut input: Vec<u8> = Vec::new();
    for line in [
        first.to_string(),
        item_json("tenant-a", json!({})).to_string(),
        "{not json".into(),
        // The same item again, renamed: the last line wins.
        item_json("tenant-a", json!({"id": first["id"], "name": "second"})).to_string(),
    ] {
        input.extend(line.as_bytes());
        input.push(b'\n');
    }
    input.extend(b"{\"name\": \"\xff\"}\n");
    let summary = import(&repository, input.as_slice(), 100, 1, |_, _| {}).unwrap();
    assert_eq!(
        (summary.lines, summary.items, summary.bad_lines),
        (5, 3, 2),
        "{db:?}"
    );
    assert_eq!(
        (summary.written, summary.superseded, summary.unchanged()),
        (2, 1, 0)
    );
    assert_eq!(
        summary.to_string(),
        "5 lines read: 3 items, 2 bad lines; 2 new or changed, 0 unchanged, 1 replaced by a \
         later line for the same item"
    );
    let again = import(&repository, input.as_slice(), 100, 1, |_, _| {}).unwrap();
    assert_eq!(
        (again.written, again.superseded, again.unchanged()),
        (0, 1, 2),
        "{db:?}"
    );
    let stored = repository
        .find(
            &csbs_domain::ProjectId::parse("p", "tenant-a").unwrap(),
            &csbs_domain::ItemId::parse("id", first["id"].as_str().unwrap()).unwrap(),
        )
        .unwrap()
        .unwrap();
    assert!(stored.document.contains("\"name\":\"second\""), "{db:?}");
}

#[test]
fn the_binary_imports_mints_tokens_and_migrates() {
    let db = TestDatabase::sqlite();
    let data_dir = std::env::temp_dir().join(format!("csbs-cli-{}", uuid::Uuid::new_v4().simple()));
    let file = data_dir.join("items.jsonl");
    std::fs::create_dir_all(&data_dir).unwrap();
    let mut out = std::fs::File::create(&file).unwrap();
    write!(
        out,
        "{}",
        jsonl(&[item_json("tenant-a", json!({})).to_string(), "[]".into()])
    )
    .unwrap();

    let output = csbs_api(db.url(), &data_dir)
        .args(["import"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a bad line makes the exit code non-zero: {stderr}"
    );
    assert!(stderr.contains("line 2: field '(item)'"), "{stderr}");
    assert!(
        stderr.contains("2 lines read: 1 item, 1 bad line"),
        "{stderr}"
    );

    let output = csbs_api(db.url(), &data_dir)
        .args(["import", "-"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("; 0 new or changed, 1 unchanged;"));

    let output = csbs_api(db.url(), &data_dir)
        .args(["migrate"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("0 migration(s) applied"));

    // No key configured and no generated secret yet: only `serve` makes one; `token` says
    // where it looked and makes nothing.
    let output = csbs_api(db.url(), &data_dir)
        .args(["token", "--project-id", "tenant-a"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(output.stdout.is_empty());
    let secret_file = data_dir.join(csbs_auth::GENERATED_SECRET_FILE);
    assert!(
        stderr.contains(&secret_file.display().to_string()) && stderr.contains("csbs-api serve"),
        "{stderr}"
    );
    assert!(!secret_file.exists());

    // Once `serve` has made it, `token` signs with it.
    csbs_auth::AuthSettings::default()
        .with_generated_secret(&data_dir, csbs_auth::IfMissing::Create)
        .unwrap();
    let output = csbs_api(db.url(), &data_dir)
        .args([
            "token",
            "--project-id",
            "tenant-a",
            "--role",
            "admin",
            "--ttl",
            "10m",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap();
    let secret = std::fs::read_to_string(data_dir.join("hmac-secret")).unwrap();
    let settings = csbs_auth::AuthSettings {
        hmac_secret: Some(secrecy::SecretString::from(secret)),
        ..Default::default()
    };
    let caller = csbs_auth::TokenValidator::from_settings(&settings)
        .unwrap()
        .validate(token.trim())
        .unwrap();
    assert!(caller.is_admin());
    assert_eq!(caller.project_id.unwrap().as_str(), "tenant-a");

    let output = csbs_api(db.url(), &data_dir)
        .args(["token", "--project-id", "bad id"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    std::fs::remove_dir_all(&data_dir).unwrap();
}

fn counters_check_reports_drift_and_rebuild_repairs_it(db: TestDatabase) {
    let data_dir = std::env::temp_dir().join(format!("csbs-cli-{}", uuid::Uuid::new_v4().simple()));
    let output = csbs_api(db.url(), &data_dir)
        .args(["seed", "--items", "300", "--projects", "3"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{db:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let check = |expect_ok: bool| {
        let output = csbs_api(db.url(), &data_dir)
            .args(["counters", "check"])
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert_eq!(
            output.status.success(),
            expect_ok,
            "{db:?}: {:?}, stdout:\n{stdout}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    assert!(check(true).contains("every counter agrees with the rows"));

    // Damage one counter of each kind, as a bug or a manual edit would.
    execute_sql(
        &db.repository(),
        "UPDATE item_counts SET n = n + 3 WHERE project_id = (SELECT min(project_id) FROM item_counts); \
         DELETE FROM item_counts_daily WHERE day = (SELECT min(day) FROM item_counts_daily); \
         UPDATE item_counts_hourly SET n = n + 1 WHERE hour = (SELECT max(hour) FROM item_counts_hourly)",
    );
    let report = check(false);
    for kind in [" total: counter ", " day ", " hour "] {
        assert!(report.contains(kind), "{db:?}: {kind:?} in\n{report}");
    }

    let output = csbs_api(db.url(), &data_dir)
        .args(["counters", "rebuild"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{db:?}");
    let rebuilt = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        rebuilt.lines().count(),
        report.lines().count() + 1,
        "{db:?}: the repaired counters, then a summary:\n{rebuilt}"
    );
    assert!(check(true).contains("every counter agrees with the rows"));
}

/// `seed > tenants.txt` once held a log line before the tenants: stdout carries the tenants
/// alone, whatever is logged (here everything, at the most verbose level).
#[test]
fn seed_prints_only_tenants_on_stdout() {
    let db = TestDatabase::sqlite();
    let data_dir = std::env::temp_dir().join(format!("csbs-cli-{}", uuid::Uuid::new_v4().simple()));
    let output = csbs_api(db.url(), &data_dir)
        .env("CSBS__LOG__FILTER", "trace")
        .args(["seed", "--items", "200", "--projects", "4"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    for line in lines {
        let (project, count) = line.split_once(' ').unwrap_or_default();
        assert!(
            csbs_domain::ProjectId::parse("p", project).is_ok() && count.parse::<u64>().is_ok(),
            "a tenant line: {line:?}"
        );
    }
    assert!(!output.stderr.is_empty(), "the logs went to stderr");
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// Each request actix could not parse was logged at ERROR, one line each: anyone could flood
/// the logs with them. They are answered and logged at INFO as any request is, and nothing a
/// client sends makes an ERROR line.
#[test]
fn malformed_requests_do_not_log_errors() {
    use std::io::{BufRead, BufReader, Read};
    let db = TestDatabase::sqlite();
    let data_dir = std::env::temp_dir().join(format!("csbs-cli-{}", uuid::Uuid::new_v4().simple()));
    let mut service = csbs_api(db.url(), &data_dir)
        .env("CSBS__LOG__FILTER", "info")
        .env("CSBS__LOG__FORMAT", "json")
        .env("CSBS__SERVER__BIND", "127.0.0.1:0")
        .env("CSBS__SERVER__WORKERS", "1")
        .arg("serve")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut logs = BufReader::new(service.stderr.take().unwrap());
    let mut port = None;
    let mut line = String::new();
    while port.is_none() && logs.read_line(&mut line).unwrap() > 0 {
        let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if event["message"] == "csbs-api is serving" {
            port = event["port"].as_u64().and_then(|p| u16::try_from(p).ok());
        }
        line.clear();
    }
    let port = port.expect("the service says where it listens");

    let floods: [&[u8]; 3] = [
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\n\r\n",
    ];
    for i in 0..30 {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _ = stream.write_all(floods[i % floods.len()]);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(
            answer.starts_with(b"HTTP/1.1 400 "),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    let _ = Command::new("kill").arg(service.id().to_string()).status();
    let mut rest = String::new();
    logs.read_to_string(&mut rest).unwrap();
    service.wait().unwrap();
    let events: Vec<serde_json::Value> = rest
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let errors: Vec<&serde_json::Value> = events.iter().filter(|e| e["level"] == "ERROR").collect();
    assert!(errors.is_empty(), "{errors:?}");
    let refused = events
        .iter()
        .filter(|e| e["route"] == "(refused by the HTTP layer)" && e["level"] == "INFO")
        .count();
    assert_eq!(refused, 30, "{rest}");
    let _ = std::fs::remove_dir_all(&data_dir);
}

backend_tests!(
    import_reports_bad_lines_stores_good_ones_and_is_idempotent,
    the_import_summary_adds_up,
    counters_check_reports_drift_and_rebuild_repairs_it,
);

/// The data folder and the default SQLite database follow the configuration folder, not the
/// folder a command is run from: `token` run from two folders signs with the one secret kept
/// beside `config/`, and leaves nothing where it ran.
#[test]
fn the_data_folder_is_found_from_the_configuration_not_the_current_folder() {
    let root = std::env::temp_dir().join(format!("csbs-root-{}", uuid::Uuid::new_v4().simple()));
    let config = root.join("config");
    let (first, second) = (root.join("here"), root.join("there"));
    for dir in [&config, &first, &second] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(config.join("default.toml"), "").unwrap();
    // The secret `serve` makes, in the data folder beside `config/`.
    let mut made = csbs_auth::AuthSettings::default();
    made.with_generated_secret(&root.join("data"), csbs_auth::IfMissing::Create)
        .unwrap();
    let validator = csbs_auth::TokenValidator::from_settings(&made).unwrap();
    for cwd in [&first, &second] {
        let output = Command::new(env!("CARGO_BIN_EXE_csbs-api"))
            .current_dir(cwd)
            .env("CSBS_CONFIG_DIR", &config)
            .env_remove("CSBS__DATA_DIR")
            .env_remove("DATABASE_URL")
            .env_remove("CSBS_ENV")
            .env("CSBS__LOG__FILTER", "warn")
            .args(["token", "--project-id", "tenant-a"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let token = String::from_utf8(output.stdout).unwrap();
        assert!(
            validator.validate(token.trim()).is_ok(),
            "signed with the one secret, whatever the folder"
        );
        assert!(
            !cwd.join("data").exists(),
            "nothing is made in the folder the command ran from"
        );
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// Two processes migrating one new SQLite file at once (a `serve` and a `seed` started
/// together) both succeed: one applies the migrations, the other waits and finds none left.
#[test]
fn two_processes_migrate_one_new_sqlite_file_at_once() {
    for round in 0..6 {
        let dir = std::env::temp_dir().join(format!("csbs-race-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("csbs.db").display());
        let children: Vec<_> = (0..2)
            .map(|_| {
                csbs_api(&url, &dir)
                    .arg("migrate")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut applied = Vec::new();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            let count: usize = stdout
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("round {round}: no count in {stdout:?}"));
            applied.push(count);
        }
        applied.sort_unstable();
        assert_eq!(
            applied[0], 0,
            "round {round}: one of them found nothing to do"
        );
        assert!(applied[1] > 0, "round {round}: the other applied them");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Logs written to a file or a pipe carry no terminal colour codes.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    use std::io::{BufRead, BufReader};
    let db = TestDatabase::sqlite();
    let data_dir =
        std::env::temp_dir().join(format!("csbs-logs-{}", uuid::Uuid::new_v4().simple()));
    let mut service = csbs_api(db.url(), &data_dir)
        .env("CSBS__LOG__FILTER", "info")
        .env("CSBS__LOG__FORMAT", "text")
        .env("CSBS__SERVER__BIND", "127.0.0.1:0")
        .env("CSBS__SERVER__WORKERS", "1")
        .env_remove("NO_COLOR")
        .arg("serve")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut logs = BufReader::new(service.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while !seen.contains("csbs-api is serving") && logs.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        line.clear();
    }
    service.kill().unwrap();
    service.wait().unwrap();
    let _ = std::fs::remove_dir_all(&data_dir);
    assert!(
        seen.contains("INFO"),
        "the service logged its start: {seen}"
    );
    assert!(!seen.contains('\u{1b}'), "no escape codes: {seen:?}");
}

/// A one-shot command against a database it can never reach fails at once, with one line that
/// says what to do, instead of the pool's retries until its timeout; and a SQLite file in a
/// folder that does not exist is an error, not a folder made somewhere.
#[test]
fn one_shot_commands_fail_at_once_with_one_line_on_permanent_errors() {
    let data_dir = std::env::temp_dir().join(format!("csbs-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&data_dir).unwrap();
    let items = data_dir.join("items.jsonl");
    std::fs::write(&items, "").unwrap();
    let refused_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let missing_folder = data_dir.join("no-such-folder");
    let not_a_database = data_dir.join("notes.db");
    std::fs::write(&not_a_database, "these are not the droids\n".repeat(200)).unwrap();
    let mut cases = vec![
        (
            format!("sqlite://{}", not_a_database.display()),
            "check that the SQLite file can be opened and written",
        ),
        (
            format!("postgres://postgres@127.0.0.1:{refused_port}/csbs"),
            "check that PostgreSQL runs there",
        ),
        (
            format!("sqlite://{}", missing_folder.join("csbs.db").display()),
            "does not exist: create it",
        ),
    ];
    if let Some(admin) = csbs_test_support::postgres_admin_url() {
        let (server, _) = admin.rsplit_once('/').unwrap();
        let name = format!("csbs_missing_{}", uuid::Uuid::new_v4().simple());
        cases.push((format!("{server}/{name}"), "createdb"));
    }
    let commands: [&[&str]; 4] = [
        &["migrate"],
        &["seed", "--items", "10"],
        &["counters", "check"],
        &["import", items.to_str().unwrap()],
    ];
    for (url, advice) in &cases {
        for command in commands {
            let output = csbs_api(url, &data_dir).args(command).output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{command:?} {url}: {stderr}");
            let lines: Vec<&str> = stderr.lines().collect();
            assert_eq!(
                lines.len(),
                1,
                "{command:?} {url}: one line, no retries: {stderr}"
            );
            assert!(
                lines[0].starts_with("error: ") && lines[0].contains(advice),
                "{command:?} {url}: {stderr}"
            );
        }
    }
    assert!(
        !missing_folder.exists(),
        "no folder is made for a mistyped path"
    );
    std::fs::remove_dir_all(&data_dir).unwrap();
}

/// Every command's `--help` says what it does and how the configuration is found, so a
/// newcomer can point any of them at PostgreSQL from the help alone.
#[test]
fn every_command_helps_with_the_configuration() {
    use clap::CommandFactory;
    fn paths(command: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for sub in command.get_subcommands() {
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_owned());
            out.push(path.clone());
            paths(sub, &path, out);
        }
    }
    let mut commands = vec![Vec::new()];
    paths(&csbs_api::cli::Cli::command(), &[], &mut commands);
    assert!(commands.len() >= 9, "{commands:?}");
    for command in commands {
        let output = Command::new(env!("CARGO_BIN_EXE_csbs-api"))
            .args(&command)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8(output.stdout).unwrap();
        assert!(output.status.success(), "{command:?}");
        for needed in [
            "DATABASE_URL",
            "postgres://",
            "CSBS__SECTION__KEY",
            "config/default.toml",
        ] {
            assert!(
                help.contains(needed),
                "{command:?} --help lacks {needed}:\n{help}"
            );
        }
        assert!(
            help.lines().next().is_some_and(|first| first.len() > 20),
            "{command:?} --help starts by saying what it does:\n{help}"
        );
    }
}

/// Configuration mistakes name the setting and what it takes; a busy port says which setting
/// moves it; a failed health check says why.
#[test]
fn configuration_and_health_messages_name_the_setting() {
    let run = |vars: &[(&str, &str)], args: &[&str]| {
        let data_dir =
            std::env::temp_dir().join(format!("csbs-cli-{}", uuid::Uuid::new_v4().simple()));
        let mut command = csbs_api(
            &format!("sqlite://{}", data_dir.join("csbs.db").display()),
            &data_dir,
        );
        for (name, value) in vars {
            command.env(name, value);
        }
        let output = command.args(args).output().unwrap();
        let _ = std::fs::remove_dir_all(&data_dir);
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&[("CSBS__LOG__FORMAT", "xml")], &["migrate"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("log.format") && stderr.contains("`text` or `json`"),
        "{stderr}"
    );
    let (code, stderr) = run(&[("CSBS__DATABASE__POOL_MODE", "statement")], &["migrate"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("database.pool_mode") && stderr.contains("`session` or `transaction`"),
        "{stderr}"
    );
    let (code, stderr) = run(&[("CSBS__AUTH__SERVICE_TENANTS", "mine")], &["migrate"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("auth.service_tenants") && stderr.contains("`any` or `own`"),
        "{stderr}"
    );
    let (code, stderr) = run(
        &[
            ("CSBS__AUTH__HMAC_SECRET", "short"),
            ("CSBS__SERVER__BIND", "127.0.0.1:0"),
        ],
        &["serve"],
    );
    assert_eq!(code, Some(2));
    assert!(stderr.contains("CSBS__AUTH__HMAC_SECRET"), "{stderr}");

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = busy.local_addr().unwrap().to_string();
    let (code, stderr) = run(&[("CSBS__SERVER__BIND", &bind)], &["serve"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("CSBS__SERVER__BIND"), "{stderr}");
    // The busy port is a listener that never answers HTTP; a closed one refuses.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let (code, stderr) = run(&[("CSBS__SERVER__BIND", &closed)], &["healthcheck"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("not ready") && stderr.contains(&closed),
        "{stderr}"
    );
    drop(busy);
}
