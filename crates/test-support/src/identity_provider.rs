//! An identity provider stand-in on a loopback port: answers requests by path (and query,
//! whatever the method) with what a test set (a JWKS, a discovery document, a Keystone token,
//! an error status), and counts what it is asked. Plain
//! threads, so that it serves tokio and actix tests alike.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// One answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: String,
    /// A `Cache-Control` header, when set.
    pub cache_control: Option<&'static str>,
    /// More headers (name, value).
    pub headers: Vec<(String, String)>,
}

impl Answer {
    /// 200 with `body`.
    pub fn json(body: &serde_json::Value) -> Self {
        Self {
            status: 200,
            body: body.to_string(),
            cache_control: None,
            headers: Vec::new(),
        }
    }

    /// `status` with an empty JSON object.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            body: "{}".to_owned(),
            cache_control: None,
            headers: Vec::new(),
        }
    }
}

/// The keys of the JWKS file at `path` whose `kid` is one of `kids`, as a JWKS: a provider's
/// key set before and after a rotation, from one fixture file.
pub fn jwks_subset(path: &std::path::Path, kids: &[&str]) -> serde_json::Value {
    let text = std::fs::read(path).expect("the JWKS fixture");
    let all: serde_json::Value = serde_json::from_slice(&text).expect("a JWKS");
    let keys: Vec<serde_json::Value> = all["keys"]
        .as_array()
        .expect("a JWKS has keys")
        .iter()
        .filter(|key| key["kid"].as_str().is_some_and(|kid| kids.contains(&kid)))
        .cloned()
        .collect();
    assert_eq!(keys.len(), kids.len(), "every kid is in {}", path.display());
    serde_json::json!({ "keys": keys })
}

#[derive(Default)]
struct State {
    answers: HashMap<String, Answer>,
    requests: HashMap<String, usize>,
    /// Connections are closed at once, unanswered: the provider's host is up, the provider not.
    down: bool,
}

/// The stand-in; it serves until the test process ends. Unknown paths are 404.
pub struct IdentityProvider {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    state: Arc<Mutex<State>>,
}

impl IdentityProvider {
    /// Listens on a free loopback port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("its address"));
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || answer_one(stream, &shared));
            }
        });
        Self { base, state }
    }

    /// The URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Answers `path` with `answer` from now on.
    pub fn answer(&self, path: &str, answer: Answer) {
        self.lock().answers.insert(path.to_owned(), answer);
    }

    /// Closes every connection without an answer once its request is read (`true`), or
    /// answers again.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// How many requests `path` has had.
    pub fn requests(&self, path: &str) -> usize {
        self.lock().requests.get(path).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One request per connection (`Connection: close`).
fn answer_one(mut stream: std::net::TcpStream, state: &Mutex<State>) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let path = text.split(' ').nth(1).unwrap_or("").to_owned();
    let answer = {
        let mut state = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *state.requests.entry(path.clone()).or_default() += 1;
        if state.down {
            // Read and counted, then the connection is closed unanswered.
            return;
        }
        state.answers.get(&path).cloned()
    }
    .unwrap_or_else(|| Answer::status(404));
    let mut extra = answer
        .cache_control
        .map(|value| format!("Cache-Control: {value}\r\n"))
        .unwrap_or_default();
    for (name, value) in &answer.headers {
        extra.push_str(&format!("{name}: {value}\r\n"));
    }
    let response = format!(
        "HTTP/1.1 {} Stand-in\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         {extra}Connection: close\r\n\r\n{}",
        answer.status,
        answer.body.len(),
        answer.body
    );
    let _ = stream.write_all(response.as_bytes());
}
