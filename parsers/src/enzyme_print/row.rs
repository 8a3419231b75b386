//! Body rows of the report table.
//!
//! `01   S0001      菠菜       0.105  74.5%   阳性`: channel, sample number, sample name,
//! ΔAt, inhibition rate, conclusion. The name may hold spaces and even end in digits, so
//! the row is read from both ends: channel and sample number from the left, conclusion,
//! rate and ΔAt from the right, and the name is what lies between.

use crate::reading::DeviceVerdict;
use crate::value::parse_decimal;
use nom::bytes::complete::{tag, take_while1, take_while_m_n};
use nom::character::complete::space1;
use nom::combinator::rest;
use nom::sequence::terminated;
use nom::{IResult, Parser};

/// One row of the table, as printed (text normalized to ASCII spaces).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TableRow<'a> {
    Used(UsedRow<'a>),
    /// `03   --`: the channel held no sample.
    Unused,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UsedRow<'a> {
    pub sample_id: &'a str,
    /// Empty when the printer left the name out.
    pub name: &'a str,
    pub delta_at: f64,
    pub rate: f64,
    pub conclusion: &'a str,
    pub verdict: DeviceVerdict,
}

/// Why a body line is not a row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RowError {
    #[error("does not start with a 1-2 digit channel number and a sample number")]
    Start,
    #[error("conclusion {0:?} is not 阳性, 阴性 or 无效")]
    Conclusion(String),
    #[error("inhibition rate {0:?} is not a decimal with %")]
    Rate(String),
    #[error("ΔAt {0:?} is not a decimal")]
    DeltaAt(String),
    #[error("row has too few columns")]
    Columns,
}

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `channel ws+ (-- | sample_no ws+ rest)`; `None` for an unused channel.
fn start(i: &str) -> IResult<&str, Option<(&str, &str)>> {
    let (i, _channel) =
        terminated(take_while_m_n(1, 2, |c: char| c.is_ascii_digit()), space1).parse(i)?;
    if let Ok((i, _)) = tag::<_, _, nom::error::Error<&str>>("--").parse(i) {
        return Ok((i, None));
    }
    let (i, sample) = take_while1(|c: char| !is_space(c)).parse(i)?;
    let (i, _) = space1.parse(i)?;
    let (i, body) = rest.parse(i)?;
    Ok((i, Some((sample, body))))
}

/// Split the last whitespace-separated token off `s`: (before, token).
fn last_token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_end_matches(is_space);
    if s.is_empty() {
        return None;
    }
    match s.rfind(is_space) {
        Some(p) => Some((&s[..p], s[p..].trim_start_matches(is_space))),
        None => Some(("", s)),
    }
}

pub(crate) fn conclusion(word: &str) -> Option<DeviceVerdict> {
    match word {
        "阳性" => Some(DeviceVerdict::Positive),
        "阴性" => Some(DeviceVerdict::Negative),
        "无效" => Some(DeviceVerdict::Invalid),
        _ => None,
    }
}

/// Parse a body row; `line` is trimmed and has ASCII spaces only.
pub(crate) fn parse_row(line: &str) -> Result<TableRow<'_>, RowError> {
    let (_, start) = start(line).map_err(|_| RowError::Start)?;
    let Some((sample_id, body)) = start else {
        return Ok(TableRow::Unused);
    };
    let (body, word) = last_token(body).ok_or(RowError::Columns)?;
    let verdict = conclusion(word).ok_or_else(|| RowError::Conclusion(word.to_string()))?;
    let (mut body, mut rate_text) = last_token(body).ok_or(RowError::Columns)?;
    // A rate printed as `74.5 %` leaves the `%` alone as a token.
    if rate_text == "%" {
        let (b, number) = last_token(body).ok_or(RowError::Columns)?;
        body = b;
        rate_text = number;
    } else {
        rate_text = rate_text
            .strip_suffix('%')
            .ok_or_else(|| RowError::Rate(rate_text.to_string()))?;
    }
    let rate = parse_decimal(rate_text).ok_or_else(|| RowError::Rate(rate_text.to_string()))?;
    let (name, at_text) = last_token(body).ok_or(RowError::Columns)?;
    let delta_at = parse_decimal(at_text).ok_or_else(|| RowError::DeltaAt(at_text.to_string()))?;
    Ok(TableRow::Used(UsedRow {
        sample_id,
        name: name.trim_matches(is_space),
        delta_at,
        rate,
        conclusion: word,
        verdict,
    }))
}
