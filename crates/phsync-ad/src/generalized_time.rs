//! LDAP GeneralizedTime.

use std::fmt;
use std::str::FromStr;

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::ParseError;

/// `YYYYMMDDHHMMSS`: the part of the LDAP form before the fraction and the zone.
const CIVIL_14: &[FormatItem<'static>] =
    format_description!("[year][month][day][hour][minute][second]");
const RFC3339_SECONDS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// An LDAP GeneralizedTime (RFC 4517 §3.3.13) in the form AD uses for whenChanged and
/// whenCreated: `YYYYMMDDHHMMSS[.fraction](Z|±HHMM)`, e.g. `20261122001233.0Z`.
///
/// Held as a UTC [`OffsetDateTime`] so calendar arithmetic (leap years, offsets) is the
/// `time` crate's, not ours. Display writes AD's form (`…SS.0Z`, or the fraction when there
/// is one); [`GeneralizedTime::to_rfc3339`] the whole-second ISO 8601 form for reports.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GeneralizedTime(OffsetDateTime);

impl GeneralizedTime {
    /// [`FromStr`] as an `Option`.
    pub fn parse(s: &str) -> Option<GeneralizedTime> {
        s.parse().ok()
    }

    /// The instant (UTC).
    pub fn from_offset_date_time(t: OffsetDateTime) -> GeneralizedTime {
        GeneralizedTime(t.to_offset(UtcOffset::UTC))
    }

    /// The instant (UTC).
    pub fn to_offset_date_time(self) -> OffsetDateTime {
        self.0
    }

    /// Whole seconds since the Unix epoch (rounded down).
    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// ISO 8601 / RFC 3339 in UTC to the second, e.g. `2026-11-22T00:12:33Z`.
    pub fn to_rfc3339(self) -> String {
        self.0
            .format(RFC3339_SECONDS)
            .expect("a 4-digit-year UTC time formats")
    }
}

impl FromStr for GeneralizedTime {
    type Err = ParseError;

    /// Parse `YYYYMMDDHHMMSS`, an optional `.` or `,` fraction, then `Z` or `±HHMM`. A leap
    /// second (`60`) is read as the first second of the next minute.
    fn from_str(s: &str) -> Result<GeneralizedTime, ParseError> {
        let bad = |reason: &str| ParseError::new("GeneralizedTime", format!("{s:?}: {reason}"));
        let t = s.trim();
        if t.len() < 15 || !t.is_char_boundary(14) || !t[..14].bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad("expected YYYYMMDDHHMMSS then a zone"));
        }
        let (civil, mut rest) = t.split_at(14);
        let leap_second = &civil[12..] == "60";
        let civil = if leap_second {
            format!("{}59", &civil[..12])
        } else {
            civil.to_owned()
        };
        let mut when = PrimitiveDateTime::parse(&civil, CIVIL_14)
            .map_err(|e| bad(&format!("not a calendar date and time ({e})")))?;
        if let Some(r) = rest.strip_prefix(['.', ',']) {
            let digits = r.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad("empty fraction"));
            }
            // Nanoseconds from the first nine digits; finer digits are dropped.
            let nanos = r[..digits]
                .bytes()
                .chain(std::iter::repeat(b'0'))
                .take(9)
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
            when += Duration::nanoseconds(nanos);
            rest = &r[digits..];
        }
        let offset = match rest {
            "Z" => UtcOffset::UTC,
            _ => {
                let (sign, hhmm) = match rest.split_at_checked(1) {
                    Some(("+", hhmm)) => (1, hhmm),
                    Some(("-", hhmm)) => (-1, hhmm),
                    _ => return Err(bad("expected Z or ±HHMM after the time")),
                };
                if hhmm.len() != 4 || !hhmm.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(bad("expected Z or ±HHMM after the time"));
                }
                let h: i8 = hhmm[..2].parse().expect("two digits");
                let m: i8 = hhmm[2..].parse().expect("two digits");
                if h > 23 || m > 59 {
                    return Err(bad("zone offset out of range"));
                }
                UtcOffset::from_hms(sign * h, sign * m, 0)
                    .map_err(|_| bad("zone offset out of range"))?
            }
        };
        let mut at = when.assume_offset(offset).to_offset(UtcOffset::UTC);
        if leap_second {
            at += Duration::SECOND;
        }
        Ok(GeneralizedTime(at))
    }
}

impl fmt::Display for GeneralizedTime {
    /// AD's form: `YYYYMMDDHHMMSS.0Z`, or with the fraction when it is not zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let civil = self.0.format(CIVIL_14).map_err(|_| fmt::Error)?;
        let nanos = self.0.nanosecond();
        if nanos == 0 {
            write!(f, "{civil}.0Z")
        } else {
            let frac = format!("{nanos:09}");
            write!(f, "{civil}.{}Z", frac.trim_end_matches('0'))
        }
    }
}

impl fmt::Debug for GeneralizedTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GeneralizedTime({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn gt(s: &str) -> GeneralizedTime {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn ad_form() {
        let t = gt("20261122001233.0Z");
        assert_eq!(t.to_offset_date_time(), datetime!(2026-11-22 0:12:33 UTC));
        assert_eq!(t.to_rfc3339(), "2026-11-22T00:12:33Z");
        assert_eq!(t.to_string(), "20261122001233.0Z");
        assert_eq!(gt("19700101000000Z").unix_seconds(), 0);
        assert_eq!(gt("19700101000000.0Z").to_string(), "19700101000000.0Z");
    }

    #[test]
    fn leap_years() {
        assert_eq!(
            gt("20000229235959.123Z").to_rfc3339(),
            "2000-02-29T23:59:59Z"
        );
        assert_eq!(gt("20240229120000.0Z").to_rfc3339(), "2024-02-29T12:00:00Z");
        // 1900 and 2100 are not leap years; 2000 is.
        for bad in [
            "19000229000000.0Z",
            "21000229000000.0Z",
            "20230229000000.0Z",
        ] {
            assert!(bad.parse::<GeneralizedTime>().is_err(), "{bad}");
        }
        // Day after Feb 29 in a leap year.
        assert_eq!(
            gt("20240301000000Z").unix_seconds() - gt("20240228000000Z").unix_seconds(),
            2 * 86_400
        );
    }

    #[test]
    fn fractions_and_offsets() {
        let t = gt("20240102030405,5Z");
        assert_eq!(t.to_offset_date_time(), datetime!(2024-01-02 3:04:05.5 UTC));
        assert_eq!(t.to_string(), "20240102030405.5Z");
        assert_eq!(t.to_rfc3339(), "2024-01-02T03:04:05Z");
        assert_eq!(
            gt("20240102030405.1234567891Z")
                .to_offset_date_time()
                .nanosecond(),
            123_456_789
        );
        assert_eq!(gt("20240102030405+0000"), gt("20240102030405Z"));
        assert_eq!(gt("20240102030405-0000"), gt("20240102030405Z"));
        assert_eq!(gt("20240102050405+0200"), gt("20240102030405Z"));
        assert_eq!(
            gt("20231231233000-0100").to_rfc3339(),
            "2024-01-01T00:30:00Z"
        );
        assert_eq!(gt("20161231235960Z").to_rfc3339(), "2017-01-01T00:00:00Z");
    }

    #[test]
    fn round_trip_through_display() {
        for s in [
            "20261122001233.0Z",
            "16010101000000.0Z",
            "99991231235959.9999999Z",
        ] {
            let t = gt(s);
            assert_eq!(t.to_string(), s);
            assert_eq!(gt(&t.to_string()), t);
        }
        let t = GeneralizedTime::from_offset_date_time(datetime!(2024-06-01 12:00 +2));
        assert_eq!(t.to_string(), "20240601100000.0Z");
    }

    #[test]
    fn malformed_rejected() {
        for bad in [
            "",
            "2026",
            "20261322001233.0Z",
            "20261100001233.0Z",
            "20261132001233.0Z",
            "20261122241233.0Z",
            "20261122006033.0Z",
            "20261122001261.0Z",
            "20261122001233.0",
            "2026112200123x.0Z",
            "20261122001233.Z",
            "20261122001233.0+01",
            "20261122001233.0+2400",
            "20261122001233.0+0160",
            "20261122001233.0ZZ",
            "20261122001233é",
        ] {
            let e = bad.parse::<GeneralizedTime>().unwrap_err();
            assert_eq!(e.what, "GeneralizedTime", "{bad}");
            assert!(GeneralizedTime::parse(bad).is_none(), "{bad}");
        }
    }
}
