//! IP address values: the `ip` filter and the addresses stored for it.

use std::net::IpAddr;

use crate::ParamError;

/// Parses an IPv4 or IPv6 address and returns its canonical text, so that `2001:DB8::0:1`
/// and `2001:db8::1` are the same address to the filter.
pub fn normalize_ip(parameter: &str, value: &str) -> Result<String, ParamError> {
    value
        .parse::<IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| ParamError::new(parameter, format!("'{value}' is not an IP address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let cases = [
            ("192.168.0.209", Some("192.168.0.209")),
            ("2001:DB8:0:0::1", Some("2001:db8::1")),
            ("::ffff:10.0.0.1", Some("::ffff:10.0.0.1")),
            ("192.168.0.256", None),
            ("192.168.0", None),
            ("example.com", None),
            ("10.0.0.1/24", None),
            ("", None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                normalize_ip("ip", input).ok().as_deref(),
                expected,
                "{input}"
            );
        }
    }
}
