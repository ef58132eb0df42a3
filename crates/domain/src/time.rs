//! Timestamps: the query grammar, the wire format, and the integer the database stores.
//!
//! Times are kept as microseconds since the Unix epoch (UTC) in a 64-bit integer. PostgreSQL
//! and SQLite compare and sort integers identically, which is not true of their text or
//! timestamp types, and microseconds are the precision of the wire format.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};

use crate::ParamError;

/// Microseconds since 1970-01-01T00:00:00 UTC.
pub type Micros = i64;

/// Parses `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1–6 digits, and an optional `Z` or
/// `±HH:MM` zone (no zone means UTC), into microseconds since the epoch.
///
/// A space where the zone's `+` belongs is read as `+`: form encoding turns an unescaped `+` in
/// a query string into a space, and a space is never valid there otherwise.
pub fn parse_timestamp(parameter: &str, value: &str) -> Result<Micros, ParamError> {
    parse(value).ok_or_else(|| {
        ParamError::new(
            parameter,
            format!("'{value}' is not a time of the form YYYY-MM-DDTHH:MM:SS[.ffffff][Z|±HH:MM]"),
        )
    })
}

/// Formats microseconds since the epoch as the wire format: `2017-04-15T04:20:37.277880`.
pub fn format_timestamp(micros: Micros) -> String {
    match DateTime::from_timestamp_micros(micros) {
        Some(time) => time.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        // Only reachable for values beyond year 262143, which `parse_timestamp` never makes.
        None => micros.to_string(),
    }
}

fn parse(value: &str) -> Option<Micros> {
    let bytes = value.as_bytes();
    if bytes.len() < 19 || bytes[10] != b'T' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        digits(&bytes[0..4])? as i32,
        digits_after(bytes, 4, b'-', 2)?,
        digits_after(bytes, 7, b'-', 2)?,
    )?;
    let hour = digits(&bytes[11..13])?;
    let minute = digits_after(bytes, 13, b':', 2)?;
    let second = digits_after(bytes, 16, b':', 2)?;

    let mut rest = &bytes[19..];
    let mut micros = 0u32;
    if let Some((b'.', tail)) = rest.split_first() {
        let len = tail.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=6).contains(&len) {
            return None;
        }
        micros = digits(&tail[..len])? * 10u32.pow(6 - len as u32);
        rest = &tail[len..];
    }
    let offset_seconds: i64 = match rest {
        [] | [b'Z'] => 0,
        [sign @ (b'+' | b'-' | b' '), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let magnitude = i64::from(hours * 3600 + minutes * 60);
            if *sign == b'-' {
                -magnitude
            } else {
                magnitude
            }
        }
        _ => return None,
    };
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros)?;
    let local = NaiveDateTime::new(date, time).and_utc().timestamp_micros();
    // A zone may push the time out of the four-digit years the wire format can write back.
    local
        .checked_sub(offset_seconds * 1_000_000)
        .filter(|utc| (FIRST_MICROS..=LAST_MICROS).contains(utc))
}

/// 0001-01-01T00:00:00 UTC and 9999-12-31T23:59:59.999999 UTC.
const FIRST_MICROS: Micros = -62_135_596_800_000_000;
const LAST_MICROS: Micros = 253_402_300_799_999_999;

/// The unsigned decimal number in `bytes`, which must all be ASCII digits.
fn digits(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// The `len` digits that follow the separator `sep` at `bytes[at]`.
fn digits_after(bytes: &[u8], at: usize, sep: u8, len: usize) -> Option<u32> {
    if *bytes.get(at)? != sep {
        return None;
    }
    digits(bytes.get(at + 1..at + 1 + len)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(text: &str) -> Micros {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_micros()
    }

    #[test]
    fn accepted_forms() {
        let cases = [
            ("2017-04-15T04:20:37", "2017-04-15T04:20:37Z"),
            ("2017-04-15T04:20:37Z", "2017-04-15T04:20:37Z"),
            ("2017-04-15T04:20:37.277880", "2017-04-15T04:20:37.277880Z"),
            ("2017-04-15T04:20:37.2", "2017-04-15T04:20:37.200Z"),
            ("2017-04-15T04:20:37.123456Z", "2017-04-15T04:20:37.123456Z"),
            ("2017-04-15T06:20:37+02:00", "2017-04-15T04:20:37Z"),
            ("2017-04-15T06:20:37 02:00", "2017-04-15T04:20:37Z"),
            ("2017-04-15T00:20:37-04:00", "2017-04-15T04:20:37Z"),
            ("2017-04-15T04:20:37.5+00:00", "2017-04-15T04:20:37.5Z"),
            ("2024-02-29T00:00:00", "2024-02-29T00:00:00Z"),
            ("0001-01-01T00:00:00", "0001-01-01T00:00:00Z"),
            ("9999-12-31T23:59:59.999999", "9999-12-31T23:59:59.999999Z"),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_timestamp("t", input), Ok(micros(expected)), "{input}");
        }
    }

    #[test]
    fn refused_forms() {
        for input in [
            "",
            "2017-04-15",
            "2017-04-15 04:20:37",
            "2017-04-15T04:20",
            "2017-04-15T04:20:37.",
            "2017-04-15T04:20:37.1234567",
            "2017-04-15T04:20:37z",
            "2017-04-15T04:20:37+0200",
            "2017-04-15T04:20:37+24:00",
            "2017-13-15T04:20:37",
            "2023-02-29T04:20:37",
            "2017-04-15T25:20:37",
            "2017-04-15T04:60:37",
            "2017-04-15T04:20:37UTC",
            "+017-04-15T04:20:37",
            "2017-4-15T04:20:37",
            "1492228837",
            "0000-01-01T00:00:00",
            "0001-01-01T00:00:00+00:01",
            "9999-12-31T23:59:59-00:01",
        ] {
            let err = parse_timestamp("start_time", input).unwrap_err();
            assert_eq!(err.parameter, "start_time", "{input}");
        }
    }

    #[test]
    fn wire_format_has_six_fraction_digits_and_no_zone() {
        assert_eq!(
            format_timestamp(micros("2017-04-15T04:20:37.2778Z")),
            "2017-04-15T04:20:37.277800"
        );
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000000");
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_is_identity(value in FIRST_MICROS..=LAST_MICROS) {
            let text = format_timestamp(value);
            proptest::prop_assert_eq!(parse_timestamp("t", &text), Ok(value));
        }
    }
}
