//! Windows FILETIME values.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ParseError;

/// Seconds from 1601-01-01 (the FILETIME and DSTIME epoch) to 1970-01-01 (the Unix epoch).
pub const SECONDS_1601_TO_1970: i64 = 11_644_473_600;

const TICKS_PER_SECOND: i64 = 10_000_000;

/// A Windows FILETIME (MS-DTYP §2.3.3): 100-nanosecond ticks since 1601-01-01 UTC, as AD
/// stores Integer8 times such as pwdLastSet and accountExpires.
///
/// Kept as the raw signed value because AD gives two values a meaning of their own:
/// 0 ("never set"; in pwdLastSet "must change at next logon") and `i64::MAX` ("never",
/// e.g. an account that never expires). Neither is an instant, so the conversions to
/// instants return `None` for them (and for negative values). Serde uses the raw integer.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct FileTime(pub i64);

impl FileTime {
    /// 0: never set (pwdLastSet: must change at next logon; accountExpires: never).
    pub const UNSET: FileTime = FileTime(0);
    /// `i64::MAX`: never (accountExpires of an account that never expires).
    pub const NEVER: FileTime = FileTime(i64::MAX);
    /// 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: FileTime = FileTime(SECONDS_1601_TO_1970 * TICKS_PER_SECOND);

    /// The raw value.
    pub const fn ticks(self) -> i64 {
        self.0
    }

    /// True when the value denotes an instant: neither 0, `i64::MAX` nor negative.
    pub fn is_instant(self) -> bool {
        self.0 > 0 && self.0 != i64::MAX
    }

    /// The instant as whole seconds since the Unix epoch (rounded down); `None` when the
    /// value is not an instant.
    pub fn to_unix_seconds(self) -> Option<i64> {
        self.is_instant()
            .then(|| self.0.div_euclid(TICKS_PER_SECOND) - SECONDS_1601_TO_1970)
    }

    /// The instant as microseconds since the Unix epoch (rounded down); `None` when the
    /// value is not an instant.
    pub fn to_unix_micros(self) -> Option<i64> {
        self.is_instant()
            .then(|| (self.0 - Self::UNIX_EPOCH.0).div_euclid(10))
    }

    /// The instant in UTC, to the full 100 ns precision; `None` when the value is not an
    /// instant.
    pub fn to_offset_date_time(self) -> Option<OffsetDateTime> {
        if !self.is_instant() {
            return None;
        }
        let nanos = i128::from(self.0 - Self::UNIX_EPOCH.0) * 100;
        OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
    }

    /// From seconds since the Unix epoch.
    pub fn from_unix_seconds(seconds: i64) -> Result<FileTime, ParseError> {
        seconds
            .checked_add(SECONDS_1601_TO_1970)
            .and_then(|s| s.checked_mul(TICKS_PER_SECOND))
            .filter(|t| *t > 0 && *t != i64::MAX)
            .map(FileTime)
            .ok_or_else(|| {
                ParseError::new(
                    "FILETIME",
                    format!("{seconds} s since 1970 is outside 1601..=30828"),
                )
            })
    }

    /// From an instant (truncated to 100 ns); fails before 1601 or after year 30828.
    pub fn from_offset_date_time(t: OffsetDateTime) -> Result<FileTime, ParseError> {
        let ticks = t.unix_timestamp_nanos().div_euclid(100) + i128::from(Self::UNIX_EPOCH.0);
        i64::try_from(ticks)
            .ok()
            .filter(|t| *t > 0 && *t != i64::MAX)
            .map(FileTime)
            .ok_or_else(|| ParseError::new("FILETIME", format!("{t} is outside 1601..=30828")))
    }
}

impl From<i64> for FileTime {
    fn from(raw: i64) -> FileTime {
        FileTime(raw)
    }
}

impl From<FileTime> for i64 {
    fn from(ft: FileTime) -> i64 {
        ft.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn known_vectors() {
        assert_eq!(FileTime(116_444_736_000_000_000).to_unix_seconds(), Some(0));
        assert_eq!(FileTime::UNIX_EPOCH.0, 116_444_736_000_000_000);
        // 2021-01-01T00:00:00Z.
        let ft = FileTime(132_539_328_000_000_000);
        assert_eq!(ft.to_unix_seconds(), Some(1_609_459_200));
        assert_eq!(ft.to_unix_micros(), Some(1_609_459_200_000_000));
        assert_eq!(
            ft.to_offset_date_time(),
            Some(datetime!(2021-01-01 0:00 UTC))
        );
        // 1601-01-01T00:00:00.0000001Z: the first instant.
        assert_eq!(
            FileTime(1).to_offset_date_time(),
            Some(datetime!(1601-01-01 0:00:00.0000001 UTC))
        );
        assert_eq!(FileTime(1).to_unix_seconds(), Some(-SECONDS_1601_TO_1970));
    }

    #[test]
    fn unset_and_never_are_not_instants() {
        for ft in [
            FileTime::UNSET,
            FileTime::NEVER,
            FileTime(-1),
            FileTime(i64::MIN),
        ] {
            assert!(!ft.is_instant());
            assert_eq!(ft.to_unix_seconds(), None);
            assert_eq!(ft.to_unix_micros(), None);
            assert_eq!(ft.to_offset_date_time(), None);
        }
        assert_eq!(FileTime::default(), FileTime::UNSET);
    }

    #[test]
    fn round_trips() {
        let t = datetime!(2024-02-29 23:59:59.1234567 UTC);
        let ft = FileTime::from_offset_date_time(t).unwrap();
        assert_eq!(ft.to_offset_date_time(), Some(t));
        assert_eq!(
            FileTime::from_unix_seconds(ft.to_unix_seconds().unwrap())
                .unwrap()
                .to_unix_seconds(),
            ft.to_unix_seconds()
        );
        for s in [
            -SECONDS_1601_TO_1970 + 1,
            -1,
            0,
            1,
            1_700_000_000,
            253_402_300_799,
        ] {
            let ft = FileTime::from_unix_seconds(s).unwrap();
            assert_eq!(ft.to_unix_seconds(), Some(s), "{s}");
            assert_eq!(
                FileTime::from_offset_date_time(ft.to_offset_date_time().unwrap()).unwrap(),
                ft
            );
        }
        // Sub-second ticks round down.
        assert_eq!(
            FileTime(FileTime::UNIX_EPOCH.0 + 9_999_999).to_unix_seconds(),
            Some(0)
        );
        assert_eq!(
            FileTime(FileTime::UNIX_EPOCH.0 - 1).to_unix_seconds(),
            Some(-1)
        );
    }

    #[test]
    fn out_of_range_rejected() {
        assert!(FileTime::from_unix_seconds(-SECONDS_1601_TO_1970).is_err());
        assert!(FileTime::from_unix_seconds(i64::MAX).is_err());
        assert!(FileTime::from_offset_date_time(datetime!(1600-12-31 23:59 UTC)).is_err());
        assert_eq!(
            FileTime::from_unix_seconds(i64::MIN).unwrap_err().what,
            "FILETIME"
        );
    }

    #[test]
    fn serde_is_the_raw_integer() {
        assert_eq!(serde_json::to_string(&FileTime(42)).unwrap(), "42");
        assert_eq!(
            serde_json::from_str::<FileTime>("42").unwrap(),
            FileTime(42)
        );
    }
}
