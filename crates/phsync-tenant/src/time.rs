//! Timestamps: microseconds since the Unix epoch (UTC), RFC 3339 on the wire.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A UTC instant with microsecond precision. On-prem change times (converted by the engine
/// from AD's FILETIMEs) and cloud times share this type so "newest wins" compares like with
/// like; the tenant itself knows nothing of AD's time formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The earliest instant RFC 3339 can write: 0000-01-01T00:00:00Z.
    pub const MIN: Timestamp = Timestamp(-62_167_219_200_000_000);
    /// The latest instant RFC 3339 can write: 9999-12-31T23:59:59.999999Z.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999_999);

    pub const fn from_unix_micros(us: i64) -> Self {
        Timestamp(us)
    }

    pub fn unix_micros(self) -> i64 {
        self.0
    }

    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        Timestamp((now.unix_timestamp_nanos() / 1000) as i64)
    }

    /// Saturates at [`Timestamp::MIN`] and [`Timestamp::MAX`], so times the tenant
    /// computes (expiry, lockout, session end) can always be written.
    pub fn plus_seconds(self, seconds: i64) -> Self {
        Timestamp(self.0.saturating_add(seconds.saturating_mul(1_000_000))).clamped()
    }

    fn clamped(self) -> Self {
        self.clamp(Timestamp::MIN, Timestamp::MAX)
    }

    /// The error never quotes `s` (it may be huge or hostile).
    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        let dt = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
            format!("invalid time ({e}); expected RFC 3339, e.g. 2026-01-01T00:00:00Z")
        })?;
        Ok(Timestamp((dt.unix_timestamp_nanos() / 1000) as i64))
    }

    /// RFC 3339 in UTC. An instant outside years 0000-9999 (which RFC 3339 cannot write;
    /// only a damaged store holds one) is written as the nearest one inside.
    pub fn to_rfc3339(self) -> String {
        let us = self.clamped().0;
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
            .ok()
            .and_then(|dt| dt.format(&Rfc3339).ok())
            .expect("every instant of years 0000-9999 formats as RFC 3339")
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

/// Accepts only strings; its errors never echo the value it was given (a number, or a
/// string of any length).
struct TimestampVisitor;

impl serde::de::Visitor<'_> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an RFC 3339 time string")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Timestamp, E> {
        Timestamp::parse_rfc3339(s).map_err(E::custom)
    }

    // serde's default errors for these quote the value.
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Timestamp, E> {
        Err(not_a_string("a boolean"))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Timestamp, E> {
        Err(not_a_string("a number"))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Timestamp, E> {
        Err(not_a_string("a number"))
    }

    fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<Timestamp, E> {
        Err(not_a_string("a number"))
    }

    fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<Timestamp, E> {
        Err(not_a_string("a number"))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Timestamp, E> {
        Err(not_a_string("a number"))
    }

    fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<Timestamp, E> {
        Err(not_a_string("bytes"))
    }
}

fn not_a_string<E: serde::de::Error>(what: &str) -> E {
    E::custom(format_args!("expected an RFC 3339 time string, not {what}"))
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `any`, not `str`: a format's own "wrong type" error would quote the value.
        d.deserialize_any(TimestampVisitor)
    }
}

/// Where "now" comes from; tests move it by hand to cross expiry and lockout windows.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to (shared between threads).
#[derive(Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock(std::sync::atomic::AtomicI64::new(start.0))
    }

    pub fn advance_seconds(&self, seconds: i64) {
        self.0
            .fetch_add(seconds * 1_000_000, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        // 2021-01-01T00:00:00Z
        let t = Timestamp::from_unix_micros(1_609_459_200_000_000);
        assert_eq!(t.to_rfc3339(), "2021-01-01T00:00:00Z");
        assert_eq!(Timestamp::parse_rfc3339("2021-01-01T00:00:00Z").unwrap(), t);
    }

    #[test]
    fn huge_times_still_print_as_rfc3339() {
        for (t, text) in [
            (
                Timestamp::from_unix_micros(i64::MAX),
                "9999-12-31T23:59:59.999999Z",
            ),
            (
                Timestamp::from_unix_micros(i64::MIN),
                "0000-01-01T00:00:00Z",
            ),
            (Timestamp::MAX, "9999-12-31T23:59:59.999999Z"),
        ] {
            assert_eq!(t.to_string(), text);
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{text}\""));
        }
        // Computed times saturate at what RFC 3339 can write.
        let far = Timestamp::now().plus_seconds(i64::from(u32::MAX) * 86_400);
        assert_eq!(far, Timestamp::MAX);
        assert_eq!(Timestamp::MIN.plus_seconds(-1), Timestamp::MIN);
        let round = serde_json::to_string(&far).unwrap();
        assert_eq!(
            serde_json::from_str::<Timestamp>(&round).unwrap(),
            Timestamp::MAX
        );
    }

    #[test]
    fn bad_times_are_not_echoed() {
        for json in ["1234567890123", "-7", "true", "{\"a\":1}", "[1]", "1.5e300"] {
            let e = serde_json::from_str::<Timestamp>(json)
                .unwrap_err()
                .to_string();
            assert!(e.contains("an RFC 3339 time string"), "{json}: {e}");
            for leak in ["1234567890123", "-7", "true", "1.5"] {
                assert!(!e.contains(leak), "{json}: {e}");
            }
        }
        let hostile = format!("\"2026-01-01T{}\"", "\\u001b[2J".repeat(10_000));
        let e = serde_json::from_str::<Timestamp>(&hostile)
            .unwrap_err()
            .to_string();
        assert!(e.len() < 200 && !e.contains('\u{1b}'), "{e}");
    }
}
