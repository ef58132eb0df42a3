//! The base URL of the links the service writes into answers (`checkpoint_items_links`).
//!
//! `server.public_base_url` when configured. Otherwise the request's own `Host` and the
//! scheme it came in on; `Forwarded` / `X-Forwarded-Proto` / `X-Forwarded-Host` only when the
//! request comes from one of `server.trusted_proxies` (anyone else could write any link into
//! the answer, `javascript://…` included). Either way the scheme must be `http` or `https` and
//! the host a syntactically valid host and port, else the request is refused naming the header.

use std::net::IpAddr;

use actix_web::http::header::{HeaderMap, HOST};
use actix_web::HttpRequest;
use csbs_domain::ParamError;

/// An address or network (`10.0.0.0/8`, `192.0.2.7`, `fd00::/8`) whose requests may say, in
/// forwarding headers, how the client reached the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy {
    network: IpAddr,
    prefix: u8,
}

impl TrustedProxy {
    /// Parses an address or `address/prefix`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("'{text}' is not an IP address or network"))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| format!("'{text}' has a prefix length outside 0–{bits}"))?,
        };
        Ok(Self { network, prefix })
    }

    /// Whether `address` is in this network.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        let (network, address, bits) = match (self.network, address) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                (u128::from(u32::from(n)), u128::from(u32::from(a)), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => (u128::from(n), u128::from(a), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        if shift >= 128 {
            return true;
        }
        (network >> shift) == (address >> shift)
    }
}

/// The base (`scheme://host[:port]`) of links in the answer to `req`.
pub fn base_url(
    req: &HttpRequest,
    configured: Option<&str>,
    trusted: &[TrustedProxy],
) -> Result<String, ParamError> {
    if let Some(base) = configured {
        return Ok(base.trim_end_matches('/').to_owned());
    }
    let from_proxy = req
        .peer_addr()
        .is_some_and(|peer| trusted.iter().any(|proxy| proxy.contains(peer.ip())));
    let direct_host = || {
        header_text(req.headers(), HOST.as_str())
            .map(|host| ("Host", host))
            .or_else(|| {
                req.uri()
                    .authority()
                    .map(|a| ("Host", a.as_str().to_owned()))
            })
    };
    let (scheme, host) = if from_proxy {
        let forwarded = forwarded_pairs(req.headers());
        let pick = |name: &str| {
            forwarded
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| ("Forwarded", value.clone()))
        };
        let scheme = pick("proto").or_else(|| {
            first_value(req.headers(), "x-forwarded-proto").map(|v| ("X-Forwarded-Proto", v))
        });
        let host = pick("host")
            .or_else(|| {
                first_value(req.headers(), "x-forwarded-host").map(|v| ("X-Forwarded-Host", v))
            })
            .or_else(direct_host);
        (scheme, host)
    } else {
        (None, direct_host())
    };
    let scheme = match scheme {
        None => "http".to_owned(),
        Some((header, scheme)) => {
            let scheme = scheme.to_ascii_lowercase();
            if scheme != "http" && scheme != "https" {
                return Err(ParamError::new(header, "the scheme must be http or https"));
            }
            scheme
        }
    };
    let (header, host) = host.ok_or_else(|| ParamError::new("Host", "is required"))?;
    if !valid_host(&host) {
        return Err(ParamError::new(
            header,
            "is not a valid host (a name or address, and an optional port)",
        ));
    }
    Ok(format!("{scheme}://{host}"))
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(|text| text.trim().to_owned())
}

/// The first of the comma-separated values of `name` (the proxy nearest the client).
fn first_value(headers: &HeaderMap, name: &str) -> Option<String> {
    header_text(headers, name)
        .map(|text| text.split(',').next().unwrap_or_default().trim().to_owned())
}

/// The `key=value` pairs of the first element of `Forwarded` (RFC 7239), quotes removed.
fn forwarded_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    let Some(text) = header_text(headers, "forwarded") else {
        return Vec::new();
    };
    let first = text.split(',').next().unwrap_or_default();
    first
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| {
            (
                key.trim().to_owned(),
                value.trim().trim_matches('"').to_owned(),
            )
        })
        .collect()
}

/// `name[:port]` or `[ipv6][:port]`: a DNS name or IPv4 address of letters, digits, `-` and
/// `.`, or a bracketed IPv6 address; a port of 1–5 digits up to 65535.
fn valid_host(host: &str) -> bool {
    let (name_ok, port) = match host.strip_prefix('[') {
        Some(bracketed) => {
            let Some((address, after)) = bracketed.split_once(']') else {
                return false;
            };
            let port = match after {
                "" => None,
                _ => match after.strip_prefix(':') {
                    Some(port) => Some(port),
                    None => return false,
                },
            };
            (address.parse::<std::net::Ipv6Addr>().is_ok(), port)
        }
        None => {
            let (name, port) = match host.rsplit_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (host, None),
            };
            (valid_name(name), port)
        }
    };
    name_ok
        && port.is_none_or(|port| {
            (1..=5).contains(&port.len())
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u32>().is_ok_and(|p| p <= 65535)
        })
}

/// A DNS name (or dotted IPv4 address): labels of 1–63 letters, digits and inner hyphens.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn hosts() {
        for (host, valid) in [
            ("csbs.example.com", true),
            ("csbs.example.com:8443", true),
            ("127.0.0.1:8080", true),
            ("[2001:db8::1]:443", true),
            ("[::1]", true),
            ("localhost", true),
            ("", false),
            ("javascript://x", false),
            ("evil.com/path", false),
            ("a b", false),
            ("host:", false),
            ("host:99999", false),
            ("host:80:80", false),
            ("[not-ipv6]:80", false),
            ("-bad.example", false),
            ("user@host", false),
        ] {
            assert_eq!(valid_host(host), valid, "{host:?}");
        }
    }

    #[test]
    fn networks() {
        let net = TrustedProxy::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(!net.contains("fd00::1".parse().unwrap()));
        let one = TrustedProxy::parse("192.0.2.7").unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        assert!(TrustedProxy::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
        assert!(TrustedProxy::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "example.com", "10.0.0.0/x", ""] {
            assert!(TrustedProxy::parse(bad).is_err(), "{bad}");
        }
    }

    fn request(peer: &str, headers: &[(&str, &str)]) -> HttpRequest {
        let mut request = TestRequest::get()
            .uri("/v1/p/checkpoint_items")
            .peer_addr(peer.parse().unwrap());
        for (name, value) in headers {
            request = request.insert_header((*name, *value));
        }
        request.to_http_request()
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let proxies = [TrustedProxy::parse("10.0.0.0/8").unwrap()];
        let headers = [
            ("Host", "internal:8080"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "csbs.example.com"),
        ];
        let base = |peer: &str, headers: &[(&str, &str)]| {
            base_url(&request(peer, headers), None, &proxies)
        };
        assert_eq!(
            base("10.0.0.5:4000", &headers).unwrap(),
            "https://csbs.example.com"
        );
        assert_eq!(
            base("203.0.113.9:4000", &headers).unwrap(),
            "http://internal:8080"
        );
        assert_eq!(
            base(
                "10.0.0.5:4000",
                &[
                    ("Host", "i"),
                    (
                        "Forwarded",
                        "for=1.2.3.4;proto=https;host=\"api.example:443\", for=10.0.0.1"
                    )
                ]
            )
            .unwrap(),
            "https://api.example:443"
        );
        // What an attacker can send, from anywhere.
        let refused = base(
            "10.0.0.5:4000",
            &[("Host", "h"), ("X-Forwarded-Proto", "javascript")],
        )
        .unwrap_err();
        assert_eq!(refused.parameter, "X-Forwarded-Proto");
        let refused = base(
            "10.0.0.5:4000",
            &[("Host", "h"), ("X-Forwarded-Host", "evil.com/x?")],
        )
        .unwrap_err();
        assert_eq!(refused.parameter, "X-Forwarded-Host");
        let refused = base("203.0.113.9:4000", &[("Host", "javascript://alert(1)")]).unwrap_err();
        assert_eq!(refused.parameter, "Host");
        // A configured base wins over everything.
        assert_eq!(
            base_url(
                &request("203.0.113.9:1", &headers),
                Some("https://csbs.example/"),
                &proxies
            )
            .unwrap(),
            "https://csbs.example"
        );
    }
}
