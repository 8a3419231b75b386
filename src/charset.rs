//! Text of uploaded or imported files: UTF-8 or GBK, as Chinese spreadsheets save them.

/// Text of an upload or import: `charset` from the Content-Type (`utf-8`, `gbk`, `gb2312`,
/// `gb18030`), else UTF-8 when the bytes are valid UTF-8, else GBK. A UTF-8 BOM is dropped.
pub fn decode_text(bytes: &[u8], charset: Option<&str>) -> Result<String, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let gbk = |b: &[u8]| {
        let (text, _, bad) = encoding_rs::GB18030.decode(b);
        if bad {
            Err("the text is neither valid UTF-8 nor valid GBK".to_string())
        } else {
            Ok(text.into_owned())
        }
    };
    match charset.map(|c| c.trim().trim_matches('"').to_ascii_lowercase()) {
        Some(c) if c == "utf-8" || c == "utf8" => String::from_utf8(bytes.to_vec())
            .map_err(|e| format!("charset=utf-8 but the body is not UTF-8: {e}")),
        Some(c) if c == "gbk" || c == "gb2312" || c == "gb18030" => gbk(bytes),
        Some(c) => Err(format!("unsupported charset {c:?}: expected utf-8 or gbk")),
        None => match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => gbk(bytes),
        },
    }
}
