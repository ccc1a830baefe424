//! The suite's own calendar: Unix seconds to RFC 3339 UTC timestamps, as the metadata emulator
//! writes them (`read`, `StartedAt`, …). Kept here once for the whole suite.

/// Formats Unix seconds as RFC 3339 UTC with nanoseconds, as TMDS does.
pub fn rfc3339(unix_seconds: f64) -> String {
    let secs = unix_seconds.floor() as i64;
    let nanos = ((unix_seconds - secs as f64) * 1e9) as u64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates_format_as_rfc3339() {
        let rows = [
            (0.0, "1970-01-01T00:00:00.000000000Z"),
            (951_782_400.0, "2000-02-29T00:00:00.000000000Z"),
            (951_868_799.0, "2000-02-29T23:59:59.000000000Z"),
            (951_868_800.0, "2000-03-01T00:00:00.000000000Z"),
            (1_745_807_422.25, "2025-04-28T02:30:22.250000000Z"),
            (1_735_689_599.5, "2024-12-31T23:59:59.500000000Z"),
            (1_735_689_600.0, "2025-01-01T00:00:00.000000000Z"),
            (-1.0, "1969-12-31T23:59:59.000000000Z"),
        ];
        for (unix, expected) in rows {
            assert_eq!(rfc3339(unix), expected, "{unix}");
        }
    }

    #[test]
    fn days_map_to_civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_088), (2024, 12, 31));
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
    }
}
