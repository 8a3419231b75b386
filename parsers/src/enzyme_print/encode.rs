//! Printing a report the way the instruments do (tests, simulators).

use super::escpos::{ESC, FS, GS};
use crate::text::Encoding;

/// A report to print.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Title line text (it must hold `农药残留` and `报告` to be read as a title).
    pub title: String,
    /// Header lines in order, key as printed: `("仪器编号", "NC12-2023-0457")`,
    /// `("对照 ΔA0", "0.412")`.
    pub header: Vec<(String, String)>,
    pub rows: Vec<ReportRow>,
    /// `检测员` line, left out when `None`.
    pub tester: Option<String>,
    /// Lines end in CR LF rather than LF.
    pub crlf: bool,
    /// Full-width colons, and a full-width space between table columns.
    pub full_width: bool,
}

/// One table row.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportRow {
    Used {
        channel: u8,
        sample_id: String,
        /// May hold spaces; must not be empty-looking numbers.
        name: String,
        /// Printed with three decimals.
        delta_at: f64,
        /// Printed with one decimal and `%`.
        rate: f64,
        /// `阳性`, `阴性` or `无效`.
        conclusion: String,
    },
    /// `03   --`.
    Unused { channel: u8 },
}

impl Report {
    /// The report of the protocol document.
    pub fn example() -> Self {
        let used = |channel, id: &str, name: &str, at, rate, c: &str| ReportRow::Used {
            channel,
            sample_id: id.into(),
            name: name.into(),
            delta_at: at,
            rate,
            conclusion: c.into(),
        };
        Report {
            title: "      农药残留快速检测报告".into(),
            header: [
                ("仪器型号", "NC-12"),
                ("仪器编号", "NC12-2023-0457"),
                ("检测日期", "2026-11-28 09:32:15"),
                ("检测方法", "GB/T 5009.199-2003"),
                ("对照 ΔA0", "0.412"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            rows: vec![
                used(1, "S0001", "菠菜", 0.105, 74.5, "阳性"),
                used(2, "S0002", "小白菜", 0.398, 3.4, "阴性"),
                ReportRow::Unused { channel: 3 },
                used(4, "S0003", "上海青", 0.231, 43.9, "阴性"),
            ],
            tester: Some("李明".into()),
            crlf: false,
            full_width: false,
        }
    }
}

const EQ_RULE: &str = "================================";
const DASH_RULE: &str = "--------------------------------";
const TABLE_HEAD: &str = "通道 样品编号    样品名称   ΔAt    抑制率  结论";

struct ReportPrinter {
    buf: Vec<u8>,
    encoding: Encoding,
    escpos: bool,
    eol: &'static [u8],
}

impl ReportPrinter {
    fn text(&mut self, s: &str) {
        self.buf.extend_from_slice(&self.encoding.encode(s));
    }

    /// A printer command, only when commands are wanted.
    fn cmd(&mut self, bytes: &[u8]) {
        if self.escpos {
            self.buf.extend_from_slice(bytes);
        }
    }

    fn eol(&mut self) {
        self.buf.extend_from_slice(self.eol);
    }

    fn line(&mut self, s: &str) {
        self.text(s);
        self.eol();
    }
}

/// Print `report` as the instrument would, in `encoding`; with `with_escpos`, printer
/// commands are sprinkled in the way real printers get them: at line starts, mid-line,
/// between two characters of a name, and with argument bytes that look like LF and ESC.
pub fn encode_report(report: &Report, encoding: Encoding, with_escpos: bool) -> Vec<u8> {
    let mut p = ReportPrinter {
        buf: Vec::new(),
        encoding,
        escpos: with_escpos,
        eol: if report.crlf { b"\r\n" } else { b"\n" },
    };
    let (colon, gap) = if report.full_width {
        ("：", "\u{3000}")
    } else {
        (": ", " ")
    };
    p.cmd(&[ESC, b'@', FS, b'&']);
    p.line(EQ_RULE);
    p.cmd(&[ESC, b'a', 1, GS, b'!', 0x11]);
    p.text(&report.title);
    p.cmd(&[GS, b'!', 0, ESC, b'a', 0]);
    p.eol();
    p.cmd(&[ESC, b'2']);
    p.line(EQ_RULE);
    for (k, v) in &report.header {
        p.text(k);
        p.text(colon);
        p.cmd(&[ESC, b'!', ESC]);
        p.line(v);
    }
    p.line(DASH_RULE);
    p.line(TABLE_HEAD);
    for row in &report.rows {
        match row {
            ReportRow::Unused { channel } => p.line(&format!("{channel:02}   --")),
            ReportRow::Used {
                channel,
                sample_id,
                name,
                delta_at,
                rate,
                conclusion,
            } => {
                p.text(&format!("{channel:02}{gap}  {sample_id:<10} "));
                let mut chars = name.chars();
                if let Some(first) = chars.next() {
                    p.text(first.encode_utf8(&mut [0; 4]));
                    // `ESC 3 n` with n = LF: the argument is not a line end.
                    p.cmd(&[ESC, b'3', b'\n']);
                    p.text(chars.as_str());
                }
                let pad = 10usize.saturating_sub(name.chars().count() * 2);
                p.text(&format!("{gap}{:pad$}{delta_at:.3}  {rate:>4.1}%   ", ""));
                p.cmd(&[ESC, b'E', 1]);
                p.text(conclusion);
                p.cmd(&[ESC, b'E', 0]);
                p.eol();
            }
        }
    }
    p.line(DASH_RULE);
    if let Some(t) = &report.tester {
        p.text("检测员");
        p.text(colon);
        p.line(t);
    }
    p.line(EQ_RULE);
    p.cmd(&[ESC, b'd', b'\n', GS, b'V', 0x42, 3, FS, b'.']);
    p.buf
}
