//! Wall-clock time as text: RFC 3339 read (the metadata service's stamps, NAB's timestamps)
//! and written (log lines), on one proleptic Gregorian calendar. Pure: no clock is read here.

/// Formats milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_rfc3339_millis(unix_millis: i64) -> String {
    let days = unix_millis.div_euclid(86_400_000);
    let ms_of_day = unix_millis.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, ms) =
        (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60, ms_of_day / 1000 % 60, ms_of_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

/// Converts days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Parses an RFC 3339 timestamp such as `2025-02-27T05:22:49.186680233Z` into nanoseconds since
/// the Unix epoch. Accepts 1 to 9 fraction digits (more are truncated), `Z` or a `±hh:mm`
/// offset. Returns `None` when malformed, and for instants before the epoch: that covers Go's
/// zero time `0001-01-01T00:00:00Z`, which TMDS sends for "no sample".
pub fn parse_rfc3339_nanos(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let number = |at: usize, len: usize| -> Option<i64> {
        let digits = b.get(at..at + len)?;
        digits.iter().try_fold(0i64, |acc, d| d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0')))
    };
    let expect = |at: usize, allowed: &[u8]| -> Option<()> { allowed.contains(b.get(at)?).then_some(()) };

    let year = number(0, 4)?;
    expect(4, b"-")?;
    let month = number(5, 2)?;
    expect(7, b"-")?;
    let day = number(8, 2)?;
    expect(10, b"Tt ")?;
    let hour = number(11, 2)?;
    expect(13, b":")?;
    let minute = number(14, 2)?;
    expect(16, b":")?;
    let second = number(17, 2)?;

    let mut at = 19;
    let mut nanos = 0i64;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        let mut scale = 100_000_000;
        while let Some(d) = b.get(at).filter(|d| d.is_ascii_digit()) {
            nanos += i64::from(d - b'0') * scale;
            scale /= 10;
            at += 1;
        }
        if at == start {
            return None;
        }
    }

    let offset_seconds = match b.get(at)? {
        b'Z' | b'z' => {
            at += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            let hours = number(at + 1, 2).filter(|h| *h <= 23)?;
            expect(at + 3, b":")?;
            let minutes = number(at + 4, 2).filter(|m| *m <= 59)?;
            at += 6;
            let magnitude = hours * 3600 + minutes * 60;
            if *sign == b'+' { magnitude } else { -magnitude }
        }
        _ => return None,
    };
    if at != b.len() {
        return None;
    }

    let valid = year >= 1
        && (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
        && hour <= 23
        && minute <= 59
        // 60 is a leap second.
        && second <= 60;
    if !valid {
        return None;
    }

    let seconds =
        days_since_epoch(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    if seconds < 0 {
        return None;
    }
    seconds.checked_mul(1_000_000_000)?.checked_add(nanos)
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given date of the proleptic Gregorian calendar (year ≥ 1).
fn days_since_epoch(year: i64, month: i64, day: i64) -> i64 {
    // Days from 0001-01-01 to January 1st of `year`: 365 a year plus one per leap year before.
    let days_before_year = |y: i64| {
        let past = y - 1;
        past * 365 + past / 4 - past / 100 + past / 400
    };
    const DAYS_BEFORE_MONTH: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let leap_day = i64::from(month > 2 && is_leap_year(year));
    days_before_year(year) + DAYS_BEFORE_MONTH[(month - 1) as usize] + leap_day + day
        - 1
        - days_before_year(1970)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_milliseconds() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_123, "2000-02-29T00:00:00.123Z"),
            (1_795_334_400_000, "2026-11-22T08:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
        ];
        for (millis, expected) in cases {
            assert_eq!(format_rfc3339_millis(millis), expected);
        }
    }

    #[test]
    fn parses_timestamps() {
        let cases: &[(&str, Option<i64>)] = &[
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2025-02-27T05:22:49.186680233Z", Some(1_740_633_769_186_680_233)),
            ("2025-06-01T12:00:10.5Z", Some(1_748_779_210_500_000_000)),
            ("2025-06-01T14:00:10.5+02:00", Some(1_748_779_210_500_000_000)),
            ("2025-06-01T10:30:10.5-01:30", Some(1_748_779_210_500_000_000)),
            ("2025-06-01t12:00:10.5z", Some(1_748_779_210_500_000_000)),
            ("2025-06-01 12:00:10.5Z", Some(1_748_779_210_500_000_000)),
            // More than nine fraction digits are truncated to nanoseconds.
            ("1970-01-01T00:00:00.1234567899Z", Some(123_456_789)),
            ("2000-02-29T00:00:00Z", Some(951_782_400_000_000_000)),
            ("2024-02-29T00:00:00Z", Some(1_709_164_800_000_000_000)),
            ("2100-03-01T00:00:00Z", Some(4_107_542_400_000_000_000)),
            // A leap second reads as the next second.
            ("2025-12-31T23:59:60Z", Some(1_767_225_600_000_000_000)),
            // Go's zero time, and anything else before the epoch, is no stamp.
            ("0001-01-01T00:00:00Z", None),
            ("1969-12-31T23:59:59.999Z", None),
            ("2023-02-29T00:00:00Z", None),
            ("2100-02-29T00:00:00Z", None),
            ("2025-13-01T00:00:00Z", None),
            ("2025-04-31T00:00:00Z", None),
            ("2025-02-27T24:00:00Z", None),
            ("2025-02-27T05:60:00Z", None),
            ("2025-02-27T05:22:49", None),
            ("2025-02-27T05:22:49.Z", None),
            ("2025-02-27T05:22:49Zjunk", None),
            ("2025-02-27T05:22:49+0200", None),
            ("2025-02-27T05:22:49+24:00", None),
            ("2025-02-27", None),
            ("", None),
            ("not a time at all!!", None),
            ("２025-02-27T05:22:49Z", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_rfc3339_nanos(text), *expected, "{text}");
        }
    }

    #[test]
    fn the_two_directions_of_the_calendar_agree() {
        for days in (-800_000..3_000_000).step_by(997) {
            let (year, month, day) = civil_from_days(days);
            if year >= 1 {
                assert_eq!(
                    days_since_epoch(year, i64::from(month), i64::from(day)),
                    days,
                    "{year}-{month}-{day}"
                );
            }
        }
    }
}
