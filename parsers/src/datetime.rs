//! Instrument date-times (`YYYYMMDDHHMM[SS[.S…]][±ZZZZ]`) to zoned date-times.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone};
use nom::bytes::complete::{take_while1, take_while_m_n};
use nom::character::complete::one_of;
use nom::combinator::{all_consuming, map_res, opt};
use nom::sequence::preceded;
use nom::{IResult, Parser};

fn digits<'a>(
    n: usize,
) -> impl Parser<&'a [u8], Output = u32, Error = nom::error::Error<&'a [u8]>> {
    map_res(
        take_while_m_n(n, n, |b: u8| b.is_ascii_digit()),
        |d: &[u8]| {
            d.iter()
                .try_fold(0u32, |acc, &b| {
                    acc.checked_mul(10)?.checked_add(u32::from(b - b'0'))
                })
                .ok_or("overflow")
        },
    )
}

struct Parts {
    ymd: (u32, u32, u32),
    hms: (u32, u32, u32),
    nanos: u32,
    offset_s: Option<i32>,
}

fn parts(i: &[u8]) -> IResult<&[u8], Parts> {
    let (i, (y, mo, d, h, mi)) =
        (digits(4), digits(2), digits(2), digits(2), digits(2)).parse(i)?;
    let (i, s) = opt(digits(2)).parse(i)?;
    let (i, frac) = opt(preceded(
        one_of("."),
        take_while1(|b: u8| b.is_ascii_digit()),
    ))
    .parse(i)?;
    let (i, off) = opt((one_of("+-"), digits(2), digits(2))).parse(i)?;
    let nanos = frac.map_or(0, |f: &[u8]| {
        // Keep nanosecond precision at most; extra digits are truncated.
        let mut n = 0u32;
        for k in 0..9 {
            n = n * 10 + f.get(k).map_or(0, |b| u32::from(b - b'0'));
        }
        n
    });
    let offset_s = off.map(|(sign, oh, om)| {
        let secs = (oh * 3600 + om * 60) as i32;
        if sign == '-' {
            -secs
        } else {
            secs
        }
    });
    Ok((
        i,
        Parts {
            ymd: (y, mo, d),
            hms: (h, mi, s.unwrap_or(0)),
            nanos,
            offset_s,
        },
    ))
}

/// The common forms, `YYYYMMDDHHMM` and `YYYYMMDDHHMMSS`, without the parser machinery:
/// every result carries one, so this is on the hot path.
fn plain(t: &[u8]) -> Option<Parts> {
    if !(t.len() == 12 || t.len() == 14) {
        return None;
    }
    let mut d = [0u32; 14];
    for (slot, &b) in d.iter_mut().zip(t) {
        let v = b.wrapping_sub(b'0');
        if v > 9 {
            return None;
        }
        *slot = u32::from(v);
    }
    let two = |i: usize| d[i] * 10 + d[i + 1];
    Some(Parts {
        ymd: (two(0) * 100 + two(2), two(4), two(6)),
        hms: (two(8), two(10), two(12)),
        nanos: 0,
        offset_s: None,
    })
}

/// Parse a compact instrument date-time; a time without its own offset is local time at
/// `local`. `None` for anything that is not a real calendar date and time.
pub fn parse_compact(text: &[u8], local: FixedOffset) -> Option<DateTime<FixedOffset>> {
    let text = text.trim_ascii();
    let p = match plain(text) {
        Some(p) => p,
        None => all_consuming(parts).parse(text).ok()?.1,
    };
    let date = NaiveDate::from_ymd_opt(p.ymd.0 as i32, p.ymd.1, p.ymd.2)?;
    let time = if p.nanos == 0 {
        NaiveTime::from_hms_opt(p.hms.0, p.hms.1, p.hms.2)?
    } else {
        NaiveTime::from_hms_nano_opt(p.hms.0, p.hms.1, p.hms.2, p.nanos)?
    };
    let zone = match p.offset_s {
        Some(s) => FixedOffset::east_opt(s)?,
        None => local,
    };
    zone.from_local_datetime(&date.and_time(time)).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cst() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    fn fmt(s: &str) -> Option<String> {
        parse_compact(s.as_bytes(), cst()).map(|d| d.to_rfc3339())
    }

    #[test]
    fn forms() {
        assert_eq!(
            fmt("20261128093215").as_deref(),
            Some("2026-11-28T09:32:15+08:00")
        );
        assert_eq!(
            fmt("202611280932").as_deref(),
            Some("2026-11-28T09:32:00+08:00")
        );
        assert_eq!(
            fmt("20261128093215.5-0500").as_deref(),
            Some("2026-11-28T09:32:15.500-05:00")
        );
        assert_eq!(
            fmt("202611280932+0000").as_deref(),
            Some("2026-11-28T09:32:00+00:00")
        );
    }

    #[test]
    fn rejects_non_dates() {
        for bad in [
            "",
            "2026112809",
            "20261332093215",
            "20260230120000",
            "20261128250000",
            "2026112809321x",
            "20261128093215+99",
        ] {
            assert_eq!(fmt(bad), None, "{bad}");
        }
    }
}
