//! The page frame (inline CSS, no external files), outside text in pages, and HTML responses.
//!
//! Pages are built with `maud`, which escapes every spliced value by its type: a `&str` or
//! `String` is always text, only [`PreEscaped`] is markup. Names, codes and sample names
//! come from instruments and uploads, so any of them may be hostile; they go in as [`PlainText`].

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use maud::{html, Markup, PreEscaped, Render, DOCTYPE};

/// PlainText from outside foodgate (instruments, uploads, the registry, the address bar).
/// Escaped as maud escapes any string and `'` too (as `&#39;`), so the value stays inert
/// even if someone later puts it into a single-quoted attribute.
#[derive(Debug, Clone, Copy)]
pub struct PlainText<'a>(pub &'a str);

impl Render for PlainText<'_> {
    fn render_to(&self, out: &mut String) {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            out.push_str(&rest[..i]);
            out.push_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            });
            rest = &rest[i + 1..];
        }
        out.push_str(rest);
    }
}

/// Percent-encode a query-string value (for links the pages build themselves).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Shared style: readable on a laptop and a phone (one column below 700 px), no web fonts.
const CSS: &str = "
*{box-sizing:border-box}
body{margin:0;font-family:system-ui,-apple-system,'Segoe UI','PingFang SC','Microsoft YaHei','WenQuanYi Micro Hei','Noto Sans CJK SC',sans-serif;color:#1d2630;background:#f4f6f8;line-height:1.4}
header{background:#1f3a5f;color:#fff;padding:.8rem 1.2rem;display:flex;flex-wrap:wrap;gap:.6rem 1.5rem;align-items:center;justify-content:space-between}
header h1{font-size:1.3rem;margin:0}
header a,header button.link{color:#fff}
main{padding:1rem 1.2rem;max-width:1400px;margin:0 auto}
section{background:#fff;border-radius:8px;padding:1rem;margin:0 0 1rem;box-shadow:0 1px 2px rgba(0,0,0,.08)}
h2{font-size:1.1rem;margin:0 0 .7rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:.8rem;margin:0 0 1rem}
.card{background:#fff;border-radius:8px;padding:.8rem 1rem;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.card .n{font-size:2rem;font-weight:700;display:block}
.card.bad .n{color:#c0392b}
.card.good .n{color:#1e8449}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{padding:.35rem .5rem;border-bottom:1px solid #e3e7eb;text-align:left;white-space:nowrap}
th a{color:inherit}
td.num,th.num{text-align:right}
td.wrap{white-space:normal;min-width:12rem}
tr.fail td{color:#c0392b}
.met{color:#1e8449;font-weight:700}
.unmet{color:#c0392b;font-weight:700}
.muted{color:#6b7785}
.tag{display:inline-block;padding:.05rem .45rem;border-radius:4px;font-size:.85rem;background:#e8edf2}
.tag.on{background:#d5f0dd;color:#145a32}
.tag.off{background:#f8d7d3;color:#922b21}
.tag.held{background:#fdebd0;color:#7e5109}
.tag.review{background:#e8daef;color:#5b2c6f}
.tag.confirmed,.tag.stopped,.tag.lab{background:#f8d7d3;color:#922b21}
.tag.destroyed,.tag.closed,.tag.released{background:#d5f0dd;color:#145a32}
form.inline{display:inline}
input,button{font:inherit;padding:.35rem .6rem}
button.link{background:none;border:1px solid currentColor;border-radius:4px;cursor:pointer}
.error{background:#f8d7d3;color:#922b21;padding:.6rem .8rem;border-radius:6px}
svg{max-width:100%;height:auto;display:block}
svg.chart{width:100%;max-height:360px}
.two{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:1rem;margin:0 0 1rem}
.two section{margin:0}
.box{max-height:22rem;overflow:auto}
@media (max-width:1000px){.two{grid-template-columns:minmax(0,1fr)}}
.legend span{margin-right:1rem;white-space:nowrap}
.sw{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin-right:.3rem;vertical-align:-1px}
@media (max-width:700px){main{padding:.6rem}section{padding:.7rem}.card .n{font-size:1.5rem}th,td{padding:.3rem}}
";

/// A whole page: `title` (text), `extra_head` (after the shared style: a meta refresh, a
/// page's own style), `body`.
pub fn page(lang: &str, title: &str, extra_head: Markup, body: Markup) -> String {
    let mut s = html! {
        (DOCTYPE) "\n"
        html lang=(PlainText(lang)) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (PlainText(title)) }
                style { (PreEscaped(CSS)) }
                (extra_head)
            }
            body { (body) }
        }
    }
    .into_string();
    s.push('\n');
    s
}

/// An HTML response. The pages load nothing from anywhere (CSP `default-src 'none'`), are
/// never framed, and are not cached (they show who is signed in, or live results).
pub fn respond(status: StatusCode, html: String) -> Response {
    let mut r = Response::new(Body::from(html));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A short page that says what went wrong (404, 403, 400, 500), in the pages' frame.
pub fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = html! {
        header { h1 { (PlainText(title)) } }
        main { section {
            p { (PlainText(message)) }
            p { a href="/dashboard" { "Dashboard" } }
        } }
    };
    respond(status, page("en", title, html! {}, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        let text = |s: &str| html! { (PlainText(s)) }.into_string();
        assert_eq!(
            text("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
        assert_eq!(text("菠菜 A12"), "菠菜 A12");
        assert_eq!(text(""), "");
    }

    #[test]
    fn url_encoding() {
        assert_eq!(
            url_encode("/dashboard?date=x&a"),
            "/dashboard%3Fdate%3Dx%26a"
        );
        assert_eq!(url_encode("菜"), "%E8%8F%9C");
    }
}
