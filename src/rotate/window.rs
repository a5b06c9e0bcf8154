//! Maintenance windows: `"Sat 02:00-04:00 UTC"`, `"Mon,Thu 01:30-03:00 UTC"`,
//! `"daily 02:00-04:00 UTC"`. Times are UTC (the CA host's and the nodes' clocks agree on
//! nothing else); a window may run past midnight (`"Sat 23:00-01:00 UTC"` ends on Sunday).

use std::fmt;

use time::{Duration, OffsetDateTime, Time, Weekday};

/// A weekly window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// The days it opens on; all seven for `daily`.
    pub days: Vec<Weekday>,
    /// Minutes after midnight UTC it opens.
    pub start: u16,
    /// How long it stays open, in minutes (1 to 24 h).
    pub length: u16,
    text: String,
}

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

fn hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl std::str::FromStr for Window {
    type Err = String;

    fn from_str(s: &str) -> Result<Window, String> {
        let bad = || {
            format!(
                "window {:?} is not DAYS HH:MM-HH:MM UTC (such as \"Sat 02:00-04:00 UTC\", \"Mon,Thu 01:30-03:00 UTC\" or \"daily 02:00-04:00 UTC\")",
                crate::terminal::printable(s)
            )
        };
        let parts: Vec<&str> = s.split_whitespace().collect();
        let [days, range, zone] = parts[..] else {
            return Err(bad());
        };
        if !zone.eq_ignore_ascii_case("UTC") {
            return Err(format!("{}: only UTC windows are taken", bad()));
        }
        let days: Vec<Weekday> = if days.eq_ignore_ascii_case("daily") {
            DAYS.iter().map(|(_, d)| *d).collect()
        } else {
            let mut v = Vec::new();
            for d in days.split(',') {
                let l = d.to_ascii_lowercase();
                let w = DAYS
                    .iter()
                    .map(|(_, w)| *w)
                    .find(|w| {
                        let full = w.to_string().to_ascii_lowercase();
                        l == full || l == full[..3]
                    })
                    .ok_or_else(bad)?;
                if !v.contains(&w) {
                    v.push(w);
                }
            }
            v
        };
        let (a, b) = range.split_once('-').ok_or_else(bad)?;
        let (start, end) = (hhmm(a).ok_or_else(bad)?, hhmm(b).ok_or_else(bad)?);
        let length = if end > start {
            end - start
        } else {
            end + 24 * 60 - start
        };
        Ok(Window {
            days,
            start,
            length,
            text: s.split_whitespace().collect::<Vec<_>>().join(" "),
        })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Window {
    /// The opening of the window on the day of `at` (whether or not it opens that day).
    fn opening_on(&self, at: OffsetDateTime) -> OffsetDateTime {
        let t = Time::from_hms(
            u8::try_from(self.start / 60).unwrap_or(0),
            u8::try_from(self.start % 60).unwrap_or(0),
            0,
        )
        .unwrap_or(Time::MIDNIGHT);
        at.to_offset(time::UtcOffset::UTC).replace_time(t)
    }

    /// The open window containing `now`: when it closes.
    pub fn closes(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        // The window that contains `now` opened today or yesterday (it lasts < 1 day + 1).
        for back in [0i64, 1] {
            let open = self.opening_on(now - Duration::days(back));
            if !self.days.contains(&open.weekday()) {
                continue;
            }
            let close = open + Duration::minutes(i64::from(self.length));
            if open <= now && now < close {
                return Some(close);
            }
        }
        None
    }

    /// The next time the window opens after `now` (now itself if it opens right now).
    pub fn next_open(&self, now: OffsetDateTime) -> OffsetDateTime {
        for ahead in 0i64..=8 {
            let open = self.opening_on(now + Duration::days(ahead));
            if open >= now && self.days.contains(&open.weekday()) {
                return open;
            }
        }
        // Unreachable with at least one day; a week on as a bound.
        now + Duration::weeks(1)
    }

    /// systemd's `OnCalendar=` for the openings: `Sat *-*-* 02:00:00 UTC`.
    pub fn on_calendar(&self) -> String {
        let names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        let days: Vec<&str> = DAYS
            .iter()
            .zip(names)
            .filter(|((_, w), _)| self.days.contains(w))
            .map(|(_, n)| n)
            .collect();
        let d = if days.len() == 7 {
            String::new()
        } else {
            format!("{} ", days.join(","))
        };
        format!(
            "{d}*-*-* {:02}:{:02}:00 UTC",
            self.start / 60,
            self.start % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn parses_and_answers() {
        let w: Window = "Sat 02:00-04:00 UTC".parse().unwrap();
        // 2026-12-05 is a Saturday.
        assert_eq!(
            w.closes(datetime!(2026-12-05 02:30 UTC)),
            Some(datetime!(2026-12-05 04:00 UTC))
        );
        assert_eq!(w.closes(datetime!(2026-12-05 04:00 UTC)), None);
        assert_eq!(w.closes(datetime!(2026-12-04 02:30 UTC)), None);
        assert_eq!(
            w.next_open(datetime!(2026-12-02 10:00 UTC)),
            datetime!(2026-12-05 02:00 UTC)
        );
        assert_eq!(
            w.next_open(datetime!(2026-12-05 03:00 UTC)),
            datetime!(2026-12-12 02:00 UTC)
        );
        assert_eq!(w.on_calendar(), "Sat *-*-* 02:00:00 UTC");

        let n: Window = "Fri 23:00-01:00 UTC".parse().unwrap();
        assert_eq!(
            n.closes(datetime!(2026-12-05 00:30 UTC)),
            Some(datetime!(2026-12-05 01:00 UTC))
        );
        assert_eq!(
            n.closes(datetime!(2026-12-04 23:30 UTC)),
            Some(datetime!(2026-12-05 01:00 UTC))
        );

        let d: Window = "daily 01:30-03:00 UTC".parse().unwrap();
        assert_eq!(d.on_calendar(), "*-*-* 01:30:00 UTC");
        assert!(d.closes(datetime!(2026-12-02 02:00 UTC)).is_some());
        let m: Window = "mon,Thursday 01:00-02:00 utc".parse().unwrap();
        assert_eq!(m.days, vec![Weekday::Monday, Weekday::Thursday]);
        assert_eq!(m.on_calendar(), "Mon,Thu *-*-* 01:00:00 UTC");

        for bad in [
            "Sat 02:00-04:00",
            "Sat 2-4 UTC",
            "Xyz 02:00-04:00 UTC",
            "Sat 25:00-04:00 UTC",
            "Sat 02:00-04:00 CET",
            "Satxyz 02:00-04:00 UTC",
            "",
        ] {
            assert!(bad.parse::<Window>().is_err(), "{bad}");
        }
    }
}
