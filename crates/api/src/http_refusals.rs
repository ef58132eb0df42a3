//! The HTTP layer's own refusals, in the service's error format.
//!
//! actix answers some requests before any handler or middleware sees them: a request line or
//! headers it cannot parse or that are too long (400, and 431 past its 128 KiB head buffer; a
//! URI over 64 KiB is a parse error), a head that does not arrive within
//! `server.header_timeout_ms` (408). It writes those answers itself, with an empty body and no
//! request id, and logs each at ERROR, so that anyone can fill the logs.
//!
//! Every connection's stream is wrapped here ([`Refusals`]). Such an answer is recognisable
//! on the way out: actix ends the connection with it, so it is the last thing written, and its
//! head is exactly `HTTP/1.1 NNN …\r\ncontent-length: 0\r\nconnection: close\r\ndate: …\r\n\r\n`
//! with nothing after it. (No answer of the service's own ends so: they all carry a request
//! id, and their bodies are JSON or Prometheus text, which never hold a raw CR LF.) The head
//! is replaced by the same status with the JSON error body and a request id, and one access-log
//! line is written at INFO, as for any other request.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_web::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::errors::ErrorAnswer;

/// A connection's stream, whose HTTP-layer refusals are rewritten on their way out.
pub struct Refusals<T> {
    io: T,
    /// The rewritten answer and how much of it is written.
    pending: Option<(Vec<u8>, usize)>,
}

impl<T> Refusals<T> {
    /// Wraps one connection.
    pub fn new(io: T) -> Self {
        Self { io, pending: None }
    }
}

/// Where in `buf` an HTTP-layer refusal head starts, and its status, if `buf` ends with one.
fn refusal_at_end(buf: &[u8]) -> Option<(usize, u16)> {
    // The head is short: only its last few hundred bytes can hold it.
    const MAX_HEAD: usize = 256;
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let window_start = buf.len().saturating_sub(MAX_HEAD);
    let window = &buf[window_start..];
    let start = window.windows(9).rposition(|w| w == b"HTTP/1.1 ")?;
    let head = &window[start..];
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.strip_suffix("\r\n\r\n")?.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.get(9..12)?.parse().ok()?;
    let rest: Vec<&str> = lines.collect();
    let shape = rest.len() == 3
        && rest[0] == "content-length: 0"
        && rest[1] == "connection: close"
        && rest[2].starts_with("date: ");
    shape.then_some((window_start + start, status))
}

/// The service's answer for an HTTP-layer refusal with `status`: the JSON error body and a
/// request id, and the connection closed.
fn rewritten(status: u16) -> Vec<u8> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    let mut body = ErrorAnswer::for_status(status);
    body.message = match status {
        StatusCode::BAD_REQUEST => "Invalid request parameters: the request line or headers are \
             malformed, or the URI is longer than 64 KiB"
            .to_owned(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            "Invalid request parameters: the request line and headers are longer than 128 KiB"
                .to_owned()
        }
        StatusCode::REQUEST_TIMEOUT => {
            "Invalid request parameters: the request headers did not arrive in time".to_owned()
        }
        _ => body.message,
    };
    tracing::info!(
        target: "csbs_api::access",
        route = "(refused by the HTTP layer)",
        status = status.as_u16(),
        request_id = %request_id,
        "request"
    );
    // Serializing two strings and a unit variant cannot fail.
    let json = serde_json::to_string(&body.body(&request_id)).unwrap_or_default();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\nx-request-id: {request_id}\r\nx-openstack-request-id: {request_id}\r\n\r\n{json}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        json.len()
    )
    .into_bytes()
}

impl<T: AsyncWrite + Unpin> Refusals<T> {
    /// Writes what is left of a rewritten answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((answer, written)) = &mut self.pending {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &answer[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
            if *written == answer.len() {
                self.pending = None;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Refusals<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Refusals<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        match refusal_at_end(buf) {
            // What comes before the refusal goes out as it is, first.
            Some((start, _)) if start > 0 => Pin::new(&mut self.io).poll_write(cx, &buf[..start]),
            Some((_, status)) => {
                self.pending = Some((rewritten(status), 0));
                // Accepted whole: the rewritten answer is written from here on.
                match self.poll_pending(cx) {
                    Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                    _ => Poll::Ready(Ok(buf.len())),
                }
            }
            None => Pin::new(&mut self.io).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFUSAL: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\
        connection: close\r\ndate: Tue, 01 Dec 2026 19:41:14 GMT\r\n\r\n";

    #[test]
    fn refusals_are_recognised_only_as_the_last_head() {
        assert_eq!(refusal_at_end(REFUSAL), Some((0, 431)));
        let mut after_an_answer =
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-request-id: r\r\n\r\n{}".to_vec();
        let start = after_an_answer.len();
        after_an_answer.extend_from_slice(REFUSAL);
        assert_eq!(refusal_at_end(&after_an_answer), Some((start, 431)));

        for not_one in [
            // An answer of the service's own.
            &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\nx-request-id: r\r\ndate: x\r\n\r\n"[..],
            // A body after the head.
            &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\nconnection: close\r\ndate: x\r\n\r\n{}"[..],
            // Text that only looks like it, inside a JSON body (no raw CR LF there).
            &b"{\"name\":\"HTTP/1.1 400 Bad Request\\r\\ncontent-length: 0\\r\\n\"}"[..],
            b"",
        ] {
            assert_eq!(refusal_at_end(not_one), None, "{}", String::from_utf8_lossy(not_one));
        }
    }

    #[test]
    fn the_rewritten_answer_is_json_with_a_request_id() {
        let answer = String::from_utf8(rewritten(400)).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains("content-type: application/json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error_code"], "CSBS.9001");
        let id = json["request_id"].as_str().unwrap();
        assert!(head.contains(&format!("x-request-id: {id}")));
        assert!(head.contains(&format!("x-openstack-request-id: {id}")));
    }
}
