//! The README's worked example, run as written: its shell block becomes a script (with the
//! built binary for `cargo run … --`, a free port for 8080, and a data folder of its own), and
//! the output of every command followed by `# → …` lines must match them, `…` standing for
//! anything. A stale figure in the README, or a step that no longer works, fails here.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The README, and the shell block of its worked example.
fn worked_example() -> String {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let text = std::fs::read_to_string(&readme).unwrap();
    let section = text
        .split("## A worked example")
        .nth(1)
        .expect("the README has a worked example");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the worked example is a sh block");
    block.to_owned()
}

/// One step of the example: a command (continuation lines joined) and what it must print.
#[derive(Debug)]
struct Step {
    command: String,
    expected: Vec<String>,
}

fn steps(block: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut pending = String::new();
    for line in block.lines() {
        if let Some(expected) = line.strip_prefix("# → ") {
            steps
                .last_mut()
                .expect("an expectation follows a command")
                .expected
                .push(expected.to_owned());
            continue;
        }
        if pending.is_empty() && (line.trim().is_empty() || line.trim_start().starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => pending.push_str(start),
            None => {
                pending.push_str(line);
                steps.push(Step {
                    command: std::mem::take(&mut pending),
                    expected: Vec::new(),
                });
            }
        }
    }
    steps
}

/// Whether `text` matches `pattern`, where `…` stands for any text.
fn matches(pattern: &str, text: &str) -> bool {
    let pieces: Vec<&str> = pattern.split('…').collect();
    if pieces.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if !text.starts_with(first) || !text.ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for piece in &pieces[1..pieces.len() - 1] {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

fn tool_exists(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The script the example becomes: each checked command's output captured into its own file.
fn script(steps: &[Step], binary: &Path, port: u16, outputs: &Path) -> String {
    // Whatever happens, the service the example starts in the background stops with it.
    let mut script = String::from("set -eu\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n");
    for (index, step) in steps.iter().enumerate() {
        let command = step
            .command
            .replace(
                "cargo run -q -p csbs-api --",
                &format!("'{}'", binary.display()),
            )
            .replace("cargo run -p csbs-api", &format!("'{}'", binary.display()))
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
        if step.expected.is_empty() {
            script.push_str(&command);
        } else {
            let out = outputs.join(index.to_string());
            script.push_str(&format!("{{ {command} ; }} > '{}' 2>&1", out.display()));
        }
        script.push('\n');
    }
    script
}

#[test]
fn readme_example() {
    let missing: Vec<&str> = ["curl", "python3"]
        .into_iter()
        .filter(|tool| !tool_exists(tool))
        .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs {missing:?} for the README example"
        );
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "note: {missing:?} not installed; the README example passes without running"
        );
        return;
    }
    let steps = steps(&worked_example());
    assert!(
        steps.iter().filter(|s| !s.expected.is_empty()).count() >= 8,
        "the example's checked steps were found: {steps:#?}"
    );

    let root = std::env::temp_dir().join(format!("csbs-readme-{}", uuid::Uuid::new_v4().simple()));
    // Removed however the test ends.
    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _scratch = Scratch(root.clone());
    let outputs = root.join("outputs");
    std::fs::create_dir_all(root.join("examples")).unwrap();
    std::fs::create_dir_all(&outputs).unwrap();
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::copy(
        repository.join("examples/items.jsonl"),
        root.join("examples/items.jsonl"),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_csbs-api"));
    // Bounded: a service that never gets ready would keep the example's `until` loop going.
    let output = Command::new("timeout")
        .args(["300", "bash", "-c"])
        .arg(script(&steps, &binary, port, &outputs))
        .current_dir(&root)
        .env("CSBS__DATA_DIR", root.join("data"))
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", root.join("data/csbs.db").display()),
        )
        .env("CSBS__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("CSBS__LOG__FILTER", "warn")
        .env_remove("CSBS_ENV")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the example's steps run: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for (index, step) in steps.iter().enumerate() {
        if step.expected.is_empty() {
            continue;
        }
        let printed = std::fs::read_to_string(outputs.join(index.to_string())).unwrap();
        let printed: Vec<&str> = printed.lines().collect();
        assert_eq!(
            printed.len(),
            step.expected.len(),
            "{}: printed {printed:#?}",
            step.command
        );
        for (pattern, line) in step.expected.iter().zip(&printed) {
            let pattern = pattern.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
            assert!(
                matches(&pattern, line),
                "{}\n  README: {pattern}\n  prints: {line}",
                step.command
            );
        }
    }
}

#[test]
fn the_wildcard_stands_for_any_text() {
    assert!(matches("{\"count\":5}", "{\"count\":5}"));
    assert!(!matches("{\"count\":5}", "{\"count\":6}"));
    assert!(matches("in … s (… items/s)", "in 0.1 s (731 items/s)"));
    assert!(!matches("in … s (… items/s)", "in 0.1 s (731 rows/s)"));
    assert!(matches("a…b…c", "a-b-c"));
    assert!(!matches("a…b…c", "a-c"));
    assert!(!matches("ab…ba", "aba"));
}
