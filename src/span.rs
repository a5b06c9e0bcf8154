//! Lifetimes as operators write them: `90d`, `1y`, `12h`, `10y`.
//!
//! A day is 86 400 s and a year 365 days; there are no months, so a validity never
//! depends on the calendar it starts in (cfssl's `8760h` is the counter-example).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};
use time::Duration;

/// A length of time given as a whole number and a unit (`h`, `d`, `w`, `y`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    seconds: i64,
}

impl Span {
    pub const fn from_days(days: i64) -> Span {
        Span {
            seconds: days * 86_400,
        }
    }

    pub fn duration(self) -> Duration {
        Duration::seconds(self.seconds)
    }

    pub fn seconds(self) -> i64 {
        self.seconds
    }
}

impl FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Span, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("'{s}' has no unit; write it like 90d, 1y or 12h"))?;
        let (num, unit) = s.split_at(split);
        let n: i64 = num.parse().map_err(|_| {
            format!("'{s}' does not start with a whole number; write it like 90d, 1y or 12h")
        })?;
        let per = match unit {
            "h" => 3_600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "y" => 365 * 86_400,
            _ => {
                return Err(format!(
                    "'{s}' has an unknown unit '{unit}'; use h, d, w or y (a year is 365 days)"
                ))
            }
        };
        if n == 0 {
            return Err(format!("'{s}' is zero; a lifetime must be at least 1h"));
        }
        if n > 100_000 {
            return Err(format!("'{s}' is too long"));
        }
        Ok(Span { seconds: n * per })
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        for (per, unit) in [(365 * 86_400, "y"), (86_400, "d"), (3_600, "h")] {
            if s % per == 0 {
                return write!(f, "{}{unit}", s / per);
            }
        }
        write!(f, "{s}s")
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Formats a remaining time the way a person plans with it: `364d 23h`, `5h 12m`, `expired 3d ago`.
pub fn human_left(seconds: i64) -> String {
    let (neg, s) = (seconds < 0, seconds.unsigned_abs());
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3_600, (s % 3_600) / 60);
    let body = if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m")
    };
    if neg {
        format!("expired {body} ago")
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!("1y".parse::<Span>().unwrap().seconds(), 365 * 86_400);
        assert_eq!("90d".parse::<Span>().unwrap().seconds(), 90 * 86_400);
        assert_eq!("12h".parse::<Span>().unwrap().seconds(), 12 * 3_600);
        assert_eq!("2w".parse::<Span>().unwrap().seconds(), 14 * 86_400);
        assert_eq!("10y".parse::<Span>().unwrap().to_string(), "10y");
        assert_eq!("36h".parse::<Span>().unwrap().to_string(), "36h");
    }

    #[test]
    fn rejects_bad_spans() {
        for bad in ["", "10", "y", "10m", "0d", "-1d", "1.5y"] {
            assert!(bad.parse::<Span>().is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn human() {
        assert_eq!(human_left(86_400 * 3 + 3_600), "3d 1h");
        assert_eq!(human_left(-86_400), "expired 1d 0h ago");
        assert_eq!(human_left(125), "2m");
    }
}
