//! Plain HTTP(S) downloads for `ADD https://...`: one GET, streamed into
//! the caller's writer with a size bound, redirects followed, and the
//! `Last-Modified` time (which Docker gives the added file).

use std::io::Write;
use std::time::Duration;

use crate::error::{Error, Result};

/// What a download brought.
pub struct Downloaded {
    pub bytes: u64,
    /// `Last-Modified`, in seconds since the epoch.
    pub last_modified: Option<i64>,
}

/// GET `url` into `out`, at most `max` bytes.
pub fn download(url: &str, out: &mut dyn Write, max: u64) -> Result<Downloaded> {
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| Error::Other(format!("http client: {e}")))?;
    let resp = client
        .get(url)
        .send()
        .map_err(|e| Error::Other(format!("GET {url}: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(Error::Other(format!("GET {url}: {status}")));
    }
    let last_modified = resp
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(http_date);
    let mut limited = std::io::Read::take(resp, max + 1);
    let bytes =
        std::io::copy(&mut limited, out).map_err(|e| Error::Other(format!("GET {url}: {e}")))?;
    if bytes > max {
        return Err(Error::Other(format!("GET {url}: larger than {max} bytes")));
    }
    Ok(Downloaded {
        bytes,
        last_modified,
    })
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) in epoch seconds.
fn http_date(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, mon, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = months.iter().position(|x| x == mon)? as i64 + 1;
    let (d, y): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let t: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [hh, mm, ss] = t.as_slice() else {
        return None;
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_dates() {
        assert_eq!(
            super::http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784111777)
        );
        assert_eq!(super::http_date("yesterday"), None);
    }
}
