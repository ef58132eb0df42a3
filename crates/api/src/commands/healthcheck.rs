//! `csbs-api healthcheck`: ask the local service whether it is ready.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::Context;

use crate::settings::Settings;

/// Whether `GET /readyz` on the configured port answers 200 within two seconds.
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
    let timeout = Duration::from_secs(2);
    let Ok(mut stream) = TcpStream::connect_timeout(&target, timeout) else {
        return Ok(false);
    };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut head = [0u8; 12];
    let read = stream.read(&mut head).unwrap_or(0);
    Ok(head[..read].starts_with(b"HTTP/1.1 200") || head[..read].starts_with(b"HTTP/1.0 200"))
}
