//! What goes to a platform and what its answer means: shared by the built-in adapters and the
//! template format, and by nothing else (so the template engine needs none of the config).

/// One request to a platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformRequest {
    /// `POST` or `PUT`.
    pub method: &'static str,
    pub url: String,
    pub content_type: String,
    /// Headers besides `Content-Type` and `Content-Length`.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl PlatformRequest {
    /// A `POST` of `body` as `content_type`, with no other header.
    pub fn post(url: impl Into<String>, content_type: &str, body: Vec<u8>) -> Self {
        PlatformRequest {
            method: "POST",
            url: url.into(),
            content_type: content_type.to_string(),
            headers: Vec::new(),
            body,
        }
    }
}

/// What a platform's answer means for the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformOutcome {
    Delivered(String),
    /// A data error: the platform will never take this record as it is.
    Dead(String),
    Retry(String),
    /// The login token is no longer good: log in again and send once more.
    Expired(String),
}

/// `text` escaped for an XML element's content.
pub fn xml_text(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

/// Bytes of a platform's answer kept in a message.
const ANSWER_KEEP: usize = 1024;

/// At most the first [`ANSWER_KEEP`] bytes of an answer (on a character boundary).
pub fn keep(text: &str) -> &str {
    let mut end = text.len().min(ANSWER_KEEP);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The text of the first element named `name` (any prefix) in `xml`, if any.
pub fn element_text(xml: &str, name: &[u8]) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut inside = false;
    let mut text = String::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if e.local_name().as_ref() == name => inside = true,
            Ok(Event::Text(t)) if inside => text.push_str(&t.decode().ok()?),
            Ok(Event::End(e)) if inside && e.local_name().as_ref() == name => {
                return Some(text.trim().to_string())
            }
            Ok(Event::Empty(e)) if e.local_name().as_ref() == name => return Some(String::new()),
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Lowercase hex MD5, as the platforms' keys use it.
pub fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(data))
}
