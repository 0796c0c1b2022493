//! The `Date` header's value, IMF-fixdate (RFC 9110 §5.6.7), from a count
//! of seconds the caller read off its clock: the protocol layer reads none.

/// `Sun, 06 Nov 1994 08:49:37 GMT`: always 29 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HttpDate {
    text: [u8; 29],
    secs: u64,
}

impl HttpDate {
    /// The date `secs` seconds after the Unix epoch.
    pub fn from_unix(secs: u64) -> HttpDate {
        const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
        const MONTHS: [&[u8; 3]; 12] = [
            b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
        ];
        let days = secs / 86_400;
        let (year, month, day) = civil_from_days(days);
        let rem = secs % 86_400;
        let mut text = *b"Thu, 01 Jan 1970 00:00:00 GMT";
        text[..3].copy_from_slice(DAYS[(days % 7) as usize]);
        two(&mut text[5..7], day);
        text[8..11].copy_from_slice(MONTHS[month as usize - 1]);
        two(&mut text[12..14], (year / 100) % 100);
        two(&mut text[14..16], year % 100);
        two(&mut text[17..19], rem / 3600);
        two(&mut text[20..22], rem / 60 % 60);
        two(&mut text[23..25], rem % 60);
        HttpDate { text, secs }
    }

    /// The seconds it was made from (to tell when to make the next one).
    pub fn secs(&self) -> u64 {
        self.secs
    }

    /// The header value.
    pub fn as_str(&self) -> &str {
        // Built from ASCII only.
        std::str::from_utf8(&self.text).unwrap_or("")
    }
}

impl Default for HttpDate {
    fn default() -> Self {
        HttpDate::from_unix(0)
    }
}

impl std::fmt::Debug for HttpDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn two(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// `secs` after the Unix epoch as RFC 3339 in UTC: `2026-12-01T17:10:16Z`.
pub fn rfc3339(secs: u64) -> String {
    let (y, m, d) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), proleptic
/// Gregorian (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_imf_fixdate() {
        // RFC 9110 §5.6.7's example.
        assert_eq!(
            HttpDate::from_unix(784_111_777).as_str(),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(HttpDate::from_unix(0).as_str(), "Thu, 01 Jan 1970 00:00:00 GMT");
        // A leap day and the turn of a century divisible by 400.
        assert_eq!(
            HttpDate::from_unix(951_782_400).as_str(),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(
            HttpDate::from_unix(1_798_761_599).as_str(),
            "Thu, 31 Dec 2026 23:59:59 GMT"
        );
    }
}
