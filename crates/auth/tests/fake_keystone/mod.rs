//! A Keystone stand-in on a loopback port, for the validator's tests: the two calls the
//! service makes (password login, token validation), with knobs for what a real one does
//! wrong (slow, failing, dropping connections, forgetting the service's token).
//!
//! HTTP/1.1 with keep-alive, written by hand: what matters here is what goes over the socket,
//! and a connection dropped without an answer must be possible.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use csbs_domain::format_timestamp;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

pub const SERVICE_PASSWORD: &str = "service-password-0123";

/// What the fake knows and how it behaves; tests change it through [`FakeKeystone::with`].
#[derive(Default)]
pub struct State {
    /// Subject tokens Keystone knows, with their token bodies.
    pub tokens: HashMap<String, Value>,
    /// The service tokens it accepts.
    pub service_tokens: Vec<String>,
    /// Lifetime of a service token.
    pub service_token_seconds: i64,
    /// Answer every validation with this status.
    pub fail_status: Option<u16>,
    /// Wait this long before answering a validation.
    pub delay: Duration,
    /// Drop this many validation requests' connections without an answer.
    pub drop_next: usize,
    pub logins: usize,
    pub validations: usize,
    active: usize,
    pub max_active: usize,
}

pub struct FakeKeystone {
    /// The identity URL with its version, as `auth.keystone.url` takes it.
    pub url: String,
    state: Arc<Mutex<State>>,
}

/// `expires_at` for `seconds` from now, as Keystone writes it.
pub fn expires_in(seconds: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    format!("{}Z", format_timestamp(now + seconds * 1_000_000))
}

/// A token body for `user`, scoped to `project` (or to nothing), with `roles`.
pub fn token_body(user: &str, project: Option<&str>, roles: &[&str], seconds: i64) -> Value {
    let mut token = json!({
        "methods": ["password"],
        "user": {"id": user, "name": user, "domain": {"id": "default", "name": "Default"}},
        "roles": roles.iter().map(|r| json!({"id": format!("id-{r}"), "name": r})).collect::<Vec<_>>(),
        "expires_at": expires_in(seconds),
        "issued_at": expires_in(0),
        "audit_ids": ["a"],
    });
    if let Some(project) = project {
        token["project"] = json!({"id": project, "name": project, "domain": {"id": "default"}});
    }
    json!({ "token": token })
}

impl FakeKeystone {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v3", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            service_token_seconds: 3600,
            ..State::default()
        }));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&shared)));
            }
        });
        Self { url, state }
    }

    /// Changes the fake's state.
    pub fn with<T>(&self, change: impl FnOnce(&mut State) -> T) -> T {
        change(&mut self.state.lock().unwrap())
    }

    /// Makes `token` known, with its body.
    pub fn add_token(&self, token: &str, body: Value) {
        self.with(|s| s.tokens.insert(token.to_owned(), body));
    }

    pub fn validations(&self) -> usize {
        self.with(|s| s.validations)
    }

    pub fn logins(&self) -> usize {
        self.with(|s| s.logins)
    }
}

struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

async fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut words = line.split_whitespace();
    let method = words.next()?.to_owned();
    let path = words.next()?.to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// An answer, or `None` to drop the connection without one.
type Answer = Option<(u16, Vec<(String, String)>, String)>;

async fn serve(stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader).await {
        let Some((status, headers, body)) = answer(&request, &state).await else {
            return;
        };
        let mut head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let stream = reader.get_mut();
        if stream.write_all(head.as_bytes()).await.is_err()
            || stream.write_all(body.as_bytes()).await.is_err()
        {
            return;
        }
    }
}

async fn answer(request: &Request, state: &Arc<Mutex<State>>) -> Answer {
    let header = |name: &str| request.headers.get(name).cloned().unwrap_or_default();
    match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/v3/auth/tokens?nocatalog") => {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            let password = &body["auth"]["identity"]["password"]["user"]["password"];
            let mut s = state.lock().unwrap();
            s.logins += 1;
            if password != SERVICE_PASSWORD || body["auth"]["scope"]["project"]["name"] != "service"
            {
                return Some((401, vec![], r#"{"error": {"code": 401}}"#.to_owned()));
            }
            let token = format!("service-token-{}", s.logins);
            s.service_tokens.push(token.clone());
            let expires = expires_in(s.service_token_seconds);
            Some((
                201,
                vec![("X-Subject-Token".to_owned(), token)],
                json!({"token": {"expires_at": expires}}).to_string(),
            ))
        }
        ("GET", "/v3/auth/tokens?nocatalog") => {
            let delay = {
                let mut s = state.lock().unwrap();
                s.validations += 1;
                if s.drop_next > 0 {
                    s.drop_next -= 1;
                    return None;
                }
                s.active += 1;
                s.max_active = s.max_active.max(s.active);
                s.delay
            };
            tokio::time::sleep(delay).await;
            let mut s = state.lock().unwrap();
            s.active -= 1;
            if let Some(status) = s.fail_status {
                return Some((status, vec![], "{}".to_owned()));
            }
            if !s.service_tokens.contains(&header("x-auth-token")) {
                return Some((401, vec![], "{}".to_owned()));
            }
            match s.tokens.get(&header("x-subject-token")) {
                Some(body) => Some((200, vec![], body.to_string())),
                None => Some((404, vec![], r#"{"error": {"code": 404}}"#.to_owned())),
            }
        }
        _ => Some((404, vec![], "{}".to_owned())),
    }
}
