//! Times as the console shows them: RFC 3339 from the API and nanoseconds from spans, written
//! as UTC wall-clock text and as an age ("3 min ago").

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// `2026-12-08 01:23:45 UTC` for an RFC 3339 time; the text itself when it does not parse.
pub fn rfc3339(text: &str) -> String {
    match OffsetDateTime::parse(text, &Rfc3339) {
        Ok(at) => wall(at),
        Err(_) => text.to_owned(),
    }
}

/// `01:23:45.678` (UTC) for nanoseconds since the epoch.
pub fn clock_nanos(nanos: u64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    at.format(format_description!(
        "[hour]:[minute]:[second].[subsecond digits:3]"
    ))
    .unwrap_or_default()
}

/// `3 min ago` for an RFC 3339 time (empty when it does not parse).
pub fn age(text: &str) -> String {
    let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) else {
        return String::new();
    };
    let seconds = (OffsetDateTime::now_utc() - at).whole_seconds().max(0);
    match seconds {
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} d ago", s / 86_400),
    }
}

fn wall(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
        ))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc() {
        assert_eq!(
            rfc3339("2026-12-08T02:23:45+01:00"),
            "2026-12-08 01:23:45 UTC"
        );
        assert_eq!(rfc3339("yesterday"), "yesterday");
        assert_eq!(clock_nanos(1_500_000_000), "00:00:01.500");
        assert_eq!(age("not a time"), "");
    }
}
