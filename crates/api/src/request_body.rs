//! Reading a request body within bounds: at most [`BodyLimits::max_bytes`] bytes however it is
//! encoded, within [`BodyLimits::timeout`], in an encoding the service reads.
//!
//! actix's own body extractors inflate a compressed body chunk by chunk before they compare
//! its size with the limit, so one small gzip chunk could expand to tens of megabytes first
//! (32 such requests took the process to 2.5 GiB), and they read a slow body for as long as the
//! client cares to send it. Here the raw stream is read with a deadline, and a compressed one is
//! inflated into a buffer that refuses to grow past the limit, so no request makes the service
//! hold more than the limit (plus one inflation buffer) for its body.

use std::io::Write;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header::CONTENT_ENCODING;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest};
use flate2::write::{MultiGzDecoder, ZlibDecoder};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;

use crate::errors::ApiError;

/// The bounds of a request body, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// The most bytes a body may hold once decoded (and as it arrives).
    pub max_bytes: usize,
    /// How long the whole body may take to arrive.
    pub timeout: Duration,
}

/// A request body read within the [`BodyLimits`] the application holds.
#[derive(Debug)]
pub struct RequestBody(pub Bytes);

impl FromRequest for RequestBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limits = req
            .app_data::<web::Data<BodyLimits>>()
            .map(|limits| *limits.get_ref());
        let encoding = Encoding::of(req);
        let payload = payload.take();
        Box::pin(async move {
            let limits = limits.ok_or_else(|| {
                ApiError::Internal("no body limits are registered with the application".into())
            })?;
            read(payload, encoding?, limits).await.map(RequestBody)
        })
    }
}

/// The `Content-Encoding`s the service reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

impl Encoding {
    /// The request's encoding; one the service does not read (`br`, `zstd`, a list such as
    /// `gzip, gzip`, anything unknown) is 415, never read as if it were plain.
    fn of(req: &HttpRequest) -> Result<Self, ApiError> {
        let mut values = req.headers().get_all(CONTENT_ENCODING);
        let (Some(value), None) = (values.next(), values.next()) else {
            return if req.headers().contains_key(CONTENT_ENCODING) {
                Err(unsupported("more than one Content-Encoding"))
            } else {
                Ok(Self::Identity)
            };
        };
        let text = value.to_str().unwrap_or_default().trim();
        match text.to_ascii_lowercase().as_str() {
            "identity" => Ok(Self::Identity),
            "gzip" | "x-gzip" => Ok(Self::Gzip),
            "deflate" => Ok(Self::Deflate),
            _ => Err(unsupported(&format!(
                "Content-Encoding '{}' is not read here",
                text.chars().take(40).collect::<String>()
            ))),
        }
    }
}

fn unsupported(reason: &str) -> ApiError {
    ApiError::UnsupportedEncoding(format!(
        "{reason}; send the body as it is, or with gzip or deflate"
    ))
}

fn too_large(limits: BodyLimits) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the request body is larger than {} bytes",
        limits.max_bytes
    ))
}

/// A buffer that refuses to hold more than `cap` bytes: the inflater writes into it and stops
/// at the first refusal.
struct Capped {
    buffer: Vec<u8>,
    cap: usize,
}

/// The refusal of a [`Capped`] buffer, told apart from a corrupt stream.
#[derive(Debug)]
struct Overflow;

impl std::fmt::Display for Overflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the decoded body is over the limit")
    }
}

impl std::error::Error for Overflow {}

impl Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.buffer.len() + bytes.len() > self.cap {
            return Err(std::io::Error::other(Overflow));
        }
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where the arriving bytes go: straight into the body, or through an inflater.
enum Sink {
    Plain(BytesMut),
    Gzip(Box<MultiGzDecoder<Capped>>),
    Deflate(Box<ZlibDecoder<Capped>>),
}

impl Sink {
    fn new(encoding: Encoding, limits: BodyLimits) -> Self {
        let capped = || Capped {
            buffer: Vec::new(),
            cap: limits.max_bytes,
        };
        match encoding {
            Encoding::Identity => Self::Plain(BytesMut::new()),
            Encoding::Gzip => Self::Gzip(Box::new(MultiGzDecoder::new(capped()))),
            Encoding::Deflate => Self::Deflate(Box::new(ZlibDecoder::new(capped()))),
        }
    }

    fn push(&mut self, chunk: &[u8], limits: BodyLimits) -> Result<(), ApiError> {
        match self {
            Self::Plain(body) => {
                body.extend_from_slice(chunk);
                Ok(())
            }
            Self::Gzip(decoder) => decoder
                .write_all(chunk)
                .map_err(|e| decode_error(&e, limits)),
            Self::Deflate(decoder) => decoder
                .write_all(chunk)
                .map_err(|e| decode_error(&e, limits)),
        }
    }

    fn finish(self, limits: BodyLimits) -> Result<Bytes, ApiError> {
        let inflated = match self {
            Self::Plain(body) => return Ok(body.freeze()),
            Self::Gzip(decoder) => decoder.finish(),
            Self::Deflate(decoder) => decoder.finish(),
        };
        inflated
            .map(|capped| Bytes::from(capped.buffer))
            .map_err(|e| decode_error(&e, limits))
    }
}

fn decode_error(error: &std::io::Error, limits: BodyLimits) -> ApiError {
    let overflow = error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<Overflow>().is_some());
    if overflow {
        too_large(limits)
    } else {
        csbs_domain::ParamError::new("(body)", format!("cannot be decoded: {error}")).into()
    }
}

/// Reads `payload` within `limits`.
async fn read(
    mut payload: Payload,
    encoding: Encoding,
    limits: BodyLimits,
) -> Result<Bytes, ApiError> {
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let mut sink = Sink::new(encoding, limits);
    let mut received = 0usize;
    let mut stream = Pin::new(&mut payload);
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| {
                ApiError::BodyTimeout(format!(
                    "the request body did not arrive within {} ms",
                    limits.timeout.as_millis()
                ))
            })?;
        let Some(chunk) = next else {
            break;
        };
        let chunk = chunk.map_err(|e| {
            csbs_domain::ParamError::new("(body)", format!("could not be read: {e}"))
        })?;
        received += chunk.len();
        // The encoded body is bounded too: nothing the client sends is held beyond the limit.
        if received > limits.max_bytes {
            return Err(too_large(limits));
        }
        sink.push(&chunk, limits)?;
    }
    sink.finish(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_bytes: usize) -> BodyLimits {
        BodyLimits {
            max_bytes,
            timeout: Duration::from_secs(5),
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn inflation_stops_at_the_limit() {
        // A megabyte of zeros compresses to about a kilobyte.
        let bomb = gzip(&vec![0u8; 1 << 20]);
        let mut sink = Sink::new(Encoding::Gzip, limits(64 << 10));
        let pushed = sink.push(&bomb, limits(64 << 10));
        let refused = match pushed {
            Err(error) => error,
            Ok(()) => sink.finish(limits(64 << 10)).unwrap_err(),
        };
        assert!(
            matches!(refused, ApiError::PayloadTooLarge(_)),
            "{refused:?}"
        );

        let mut sink = Sink::new(Encoding::Gzip, limits(2 << 20));
        sink.push(&bomb, limits(2 << 20)).unwrap();
        assert_eq!(sink.finish(limits(2 << 20)).unwrap().len(), 1 << 20);
    }

    #[test]
    fn a_corrupt_stream_is_a_bad_body() {
        let mut broken = gzip(b"{\"checkpoint_items\": []}");
        broken.truncate(broken.len() - 6);
        let mut sink = Sink::new(Encoding::Gzip, limits(1 << 20));
        let outcome = sink
            .push(&broken, limits(1 << 20))
            .and_then(|()| sink.finish(limits(1 << 20)).map(|_| ()));
        assert!(
            matches!(outcome, Err(ApiError::InvalidParameter(_))),
            "{outcome:?}"
        );
    }
}
