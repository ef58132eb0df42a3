//! `csbs-api healthcheck`: ask the local service whether it is ready.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::Context;

use crate::settings::Settings;

/// Whether `GET /readyz` on the configured port answers 200 within two seconds; when not, why
/// (on stderr: a container runtime keeps it with the failed check).
pub fn run(settings: &Settings) -> anyhow::Result<bool> {
    let bound: SocketAddr = settings
        .server
        .bind
        .to_socket_addrs()
        .context("server.bind is not an address")?
        .next()
        .context("server.bind resolves to nothing")?;
    // A wildcard listener is reached on loopback.
    let target = if bound.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], bound.port()))
    } else {
        bound
    };
    match ask(target) {
        Ok(status) if status == "200" => Ok(true),
        Ok(status) => {
            eprintln!("not ready: GET http://{target}/readyz answered {status}");
            Ok(false)
        }
        Err(error) => {
            eprintln!(
                "not ready: no answer from http://{target}/readyz (server.bind, \
                 CSBS__SERVER__BIND): {error}"
            );
            Ok(false)
        }
    }
}

/// The status code `GET /readyz` at `target` answers with.
fn ask(target: SocketAddr) -> std::io::Result<String> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut head = [0u8; 12];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..])? {
            0 => break,
            n => read += n,
        }
    }
    // `HTTP/1.1 200`: the status is the second word.
    let text = String::from_utf8_lossy(&head[..read]);
    match text.split(' ').nth(1) {
        Some(status) if status.len() == 3 => Ok(status.to_owned()),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP answer: {text:?}"),
        )),
    }
}
