//! Feed documents to `Item`s: encoding detection, feed-rs, HTML to text.
//!
//! Owns everything between the bytes a server sent and the plain-text items
//! the classifier reads. RSS 0.9x/1.0/2.0, Atom and JSON Feed all go through
//! feed-rs; this module decodes legacy encodings first (feed-rs is only
//! reliable on UTF-8), contains a parser panic to the one feed it came from,
//! and derives a stable key for every entry. No I/O.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};

use chrono::{DateTime, Utc};
use encoding_rs::{Encoding, UTF_8};
use sha2::{Digest, Sha256};
use url::Url;

/// Entries beyond this many in one document are counted but not read,
/// unless `[fetch] max_items` says otherwise: no real news feed carries
/// more, and a hostile one must not cost unbounded classifying and storing.
pub const MAX_ITEMS_PER_FEED: usize = 2_000;

/// One news item, as the rest of the pipeline sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Stable identity of the item, shared by feeds that carry the same
    /// article: `id:` + guid (qualified by host when it is not a URL), else
    /// `link:` + link, else `hash:` + a hash of title and date.
    pub key: String,
    pub title: String,
    /// Plain text: HTML reduced to text, entities decoded.
    pub text: String,
    pub link: Option<String>,
    /// Published, else updated, time.
    pub published: Option<DateTime<Utc>>,
    /// Hash of what the classifier reads; a change means "classify again".
    pub content_hash: String,
}

/// A parsed document.
#[derive(Debug, Clone, Default)]
pub struct ParsedFeed {
    pub items: Vec<Item>,
    /// RSS `<ttl>`: minutes the publisher asks readers to wait between polls.
    pub ttl_minutes: Option<u32>,
    /// Entries in the document; more than `items.len()` when the cap bit.
    pub total_items: usize,
}

impl ParsedFeed {
    /// `(kept, total)` when the item cap left entries unread.
    pub fn truncated(&self) -> Option<(usize, usize)> {
        (self.total_items > self.items.len()).then_some((self.items.len(), self.total_items))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FeedError {
    #[error("not a feed: {0}")]
    Invalid(String),
    #[error("the feed parser failed on this document (it is likely malformed): {0}")]
    ParserPanicked(String),
}

impl FeedError {
    /// What went wrong without quoting the document (see `FetchError::summary`).
    pub fn summary(&self) -> &'static str {
        match self {
            FeedError::Invalid(_) => "not a feed",
            FeedError::ParserPanicked(_) => "unparsable feed",
        }
    }
}

/// Parses a feed document, reading at most `MAX_ITEMS_PER_FEED` entries.
/// `content_type` is the HTTP header, used for its charset; `base`
/// resolves relative links.
pub fn parse(
    bytes: &[u8],
    content_type: Option<&str>,
    base: Option<&Url>,
) -> Result<ParsedFeed, FeedError> {
    parse_at_most(bytes, content_type, base, MAX_ITEMS_PER_FEED)
}

/// `parse`, reading at most `max_items` entries (the first ones, which
/// feeds list newest first); `total_items` says how many there were.
pub fn parse_at_most(
    bytes: &[u8],
    content_type: Option<&str>,
    base: Option<&Url>,
    max_items: usize,
) -> Result<ParsedFeed, FeedError> {
    let utf8 = to_utf8(bytes, content_type);
    let parser = feed_rs::parser::Builder::new()
        .base_uri(base.map(Url::as_str))
        // An empty id marks "the document gave none": we derive our own key,
        // because feed-rs would otherwise invent a random one.
        .id_generator(|_, _, _| String::new())
        .sanitize_content(false)
        .build();
    let parsed = catch_unwind(AssertUnwindSafe(|| parser.parse(utf8.as_ref())))
        .map_err(|panic| FeedError::ParserPanicked(panic_message(&panic)))?
        .map_err(|e| FeedError::Invalid(e.to_string()))?;
    let host = base.and_then(Url::host_str).unwrap_or("");
    let total_items = parsed.entries.len();
    let items = parsed
        .entries
        .into_iter()
        .take(max_items)
        .map(|entry| item(entry, host))
        .collect();
    Ok(ParsedFeed {
        items,
        ttl_minutes: parsed.ttl,
        total_items,
    })
}

fn item(entry: feed_rs::model::Entry, host: &str) -> Item {
    let title = entry
        .title
        .map(|t| html_to_text(&t.content))
        .unwrap_or_default();
    let body = entry
        .content
        .and_then(|c| c.body)
        .or_else(|| entry.summary.map(|s| s.content))
        .map(|b| html_to_text(&b))
        .unwrap_or_default();
    let link = entry
        .links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .or(entry.links.first())
        .map(|l| l.href.trim().to_string())
        .filter(|l| !l.is_empty());
    let published = entry.published.or(entry.updated);
    let id = entry.id.trim();
    let key = if !id.is_empty() {
        if id.contains("://") || id.starts_with("urn:") || id.starts_with("tag:") {
            format!("id:{id}")
        } else {
            // A bare "1234" is only unique within its site.
            format!("id:{host}/{id}")
        }
    } else if let Some(link) = &link {
        format!("link:{link}")
    } else {
        let date = published.map(|d| d.to_rfc3339()).unwrap_or_default();
        format!("hash:{}", hex_sha256(&[title.as_bytes(), date.as_bytes()]))
    };
    let content_hash = hex_sha256(&[
        title.as_bytes(),
        body.as_bytes(),
        link.as_deref().unwrap_or("").as_bytes(),
    ]);
    Item {
        key,
        title,
        text: body,
        link,
        published,
        content_hash,
    }
}

fn hex_sha256(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for p in parts {
        hasher.update((p.len() as u64).to_le_bytes());
        hasher.update(p);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// The document as UTF-8, with any XML declaration removed (it may name the
/// old encoding, which would make the parser decode twice).
///
/// Which encoding: a byte-order mark wins; then the XML declaration; then the
/// HTTP charset; else UTF-8. The declaration is preferred over the header
/// because servers send a default charset far more often than documents lie
/// about their own.
fn to_utf8<'a>(bytes: &'a [u8], content_type: Option<&str>) -> Cow<'a, [u8]> {
    let declared = || {
        let head = &bytes[..bytes.len().min(1024)];
        xml_declared_encoding(head)
            .or_else(|| content_type.and_then(charset_of))
            .and_then(|label| Encoding::for_label(label.as_bytes()))
    };
    let encoding = Encoding::for_bom(bytes)
        .map(|(e, _)| e)
        .or_else(declared)
        .unwrap_or(UTF_8);
    // `decode` strips a BOM and replaces malformed sequences, so what
    // follows is always valid UTF-8.
    let (text, _, _) = encoding.decode(bytes);
    // Control characters are forbidden in XML 1.0 and make the parser refuse
    // the whole document; one stray byte must not cost a feed all its items.
    let text = if text.contains(is_forbidden_control) {
        Cow::Owned(text.replace(is_forbidden_control, ""))
    } else {
        text
    };
    match strip_xml_declaration(&text) {
        Some(rest) => Cow::Owned(rest.as_bytes().to_vec()),
        None => match text {
            Cow::Borrowed(_) => Cow::Borrowed(bytes_without_bom(bytes)),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        },
    }
}

/// C0 controls other than tab, line feed and carriage return.
fn is_forbidden_control(c: char) -> bool {
    c < ' ' && !matches!(c, '\t' | '\n' | '\r')
}

fn bytes_without_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

fn strip_xml_declaration(text: &str) -> Option<&str> {
    let trimmed = text.trim_start();
    if !trimmed.starts_with("<?xml") {
        return None;
    }
    trimmed.find("?>").map(|end| &trimmed[end + 2..])
}

/// `encoding="…"` from an XML declaration at the start of `head`.
fn xml_declared_encoding(head: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(head);
    let decl = head.trim_start().strip_prefix("<?xml")?;
    let decl = &decl[..decl.find("?>")?];
    let at = decl.find("encoding")?;
    let rest = decl[at + "encoding".len()..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    Some(value[..value.find(quote)?].trim().to_string())
}

/// The `charset` parameter of a Content-Type header.
fn charset_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"').to_string())
    })
}

/// Reduces HTML to plain text: tags removed (block tags become line breaks),
/// script and style contents dropped, entities decoded, whitespace collapsed.
/// Linear in the input and never fails, whatever the markup.
pub fn html_to_text(html: &str) -> String {
    use html5gum::{DefaultEmitter, Token, Tokenizer};
    let mut emitter = DefaultEmitter::default();
    // Script and style content is raw text to a browser; so it is here,
    // and it is dropped.
    emitter.naively_switch_states(true);
    let mut out = String::with_capacity(html.len());
    let mut hidden: Option<Vec<u8>> = None;
    for token in Tokenizer::new_with_emitter(html, emitter).flatten() {
        match token {
            Token::StartTag(tag) => {
                let name = tag.name.to_ascii_lowercase();
                if hidden.is_none() && matches!(name.as_slice(), b"script" | b"style") {
                    hidden = Some(name);
                } else if hidden.is_none() && is_block(&name) {
                    out.push('\n');
                }
            }
            Token::EndTag(tag) => {
                let name = tag.name.to_ascii_lowercase();
                if hidden.as_deref() == Some(name.as_slice()) {
                    hidden = None;
                } else if hidden.is_none() && is_block(&name) {
                    out.push('\n');
                }
            }
            // Character references are already decoded by the tokenizer.
            Token::String(text) if hidden.is_none() => {
                out.push_str(&String::from_utf8_lossy(&text.value));
            }
            // Comments, doctypes, parse errors and hidden text vanish.
            _ => {}
        }
    }
    collapse_whitespace(&out)
}

/// Tags that end a line of text; inline ones (`<b>`, `<a>`) just vanish.
fn is_block(name: &[u8]) -> bool {
    matches!(
        name,
        b"p" | b"br"
            | b"div"
            | b"li"
            | b"ul"
            | b"ol"
            | b"tr"
            | b"td"
            | b"th"
            | b"table"
            | b"h1"
            | b"h2"
            | b"h3"
            | b"h4"
            | b"h5"
            | b"h6"
            | b"blockquote"
            | b"section"
            | b"article"
            | b"header"
            | b"footer"
            | b"figure"
            | b"figcaption"
            | b"hr"
            | b"pre"
    )
}

/// Runs of spaces and tabs become one space; blank lines become one break.
fn collapse_whitespace(s: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for line in s.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !words.is_empty() {
            lines.push(words.join(" "));
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_plain_text() {
        let check = |html: &str, text: &str| assert_eq!(html_to_text(html), text, "{html}");
        check(
            "<p>Kyiv &amp; Warsaw</p><p>second</p>",
            "Kyiv & Warsaw\nsecond",
        );
        check("a<script>alert('x<p>')</script>b", "ab");
        check("a<STYLE type=x>p{}</style>b", "ab");
        check("x < y and <b>bold</b>", "x < y and bold");
        check("unclosed <script>forever", "unclosed");
        check(
            "&lt;tag&gt; &quot;q&quot; &#8217; &eacute;",
            "<tag> \"q\" \u{2019} é",
        );
        check("  many   spaces\n\n\n lines ", "many spaces\nlines");
        check("<a href='x'>link</a> text", "link text");
        check("", "");
        // Markup that a tag stripper reads wrong: ">" inside an attribute
        // or a comment is markup, not text.
        check(
            "<p><img alt=\"a > b\" src=x>Keep <span title='y>'>your</span> word</p>",
            "Keep your word",
        );
        check("before <!-- a > b --> after", "before after");
        check("<p class=\"a\">x</p><!-- <p>hidden</p> -->y", "x\ny");
        check("<![CDATA[x]]>text", "text");
        // As a browser reads them, legacy references without ";" too.
        check("fish &amp chips &copy 2025", "fish & chips © 2025");
    }

    #[test]
    fn encodings_are_found_in_bom_declaration_or_header() {
        let check = |bytes: &[u8], ct: Option<&str>, expected: &str| {
            assert_eq!(
                String::from_utf8(to_utf8(bytes, ct).into_owned()).unwrap(),
                expected
            );
        };
        // "Київ" in windows-1251.
        let cp1251 = b"<?xml version=\"1.0\" encoding=\"windows-1251\"?><a>\xCA\xE8\xBF\xE2</a>";
        check(cp1251, None, "<a>Київ</a>");
        check(
            b"<a>\xE9t\xE9</a>",
            Some("text/xml; charset=ISO-8859-1"),
            "<a>été</a>",
        );
        check(
            b"\xEF\xBB\xBF<a>x</a>",
            Some("text/xml; charset=windows-1251"),
            "<a>x</a>",
        );
        check(b"\xFF\xFE<\x00a\x00>\x00", None, "<a>");
        check(b"<a>\xFF</a>", None, "<a>\u{FFFD}</a>");
        check(b"<a>x\x00y\x1b\tz</a>", None, "<a>xy\tz</a>");
    }

    #[test]
    fn declared_encoding_and_charset_are_read() {
        assert_eq!(
            xml_declared_encoding(b"<?xml version='1.0' encoding = 'KOI8-R' ?>"),
            Some("KOI8-R".into())
        );
        assert_eq!(xml_declared_encoding(b"<?xml version='1.0'?>"), None);
        assert_eq!(xml_declared_encoding(b"<?xml encoding=\"x"), None);
        assert_eq!(
            charset_of("application/rss+xml; Charset=\"UTF-8\""),
            Some("UTF-8".into())
        );
        assert_eq!(charset_of("text/xml"), None);
    }
}
