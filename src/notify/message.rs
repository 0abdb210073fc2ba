//! The digest as an RFC 5322 message: headers, the text/HTML alternatives,
//! and the deterministic Message-ID that makes a resend recognisable.
//!
//! Header encoding (RFC 2047 for non-ASCII subjects, folding) is lettre's;
//! this file only decides what goes in. It does no I/O.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};

use super::NotifyError;
use super::compose::{Digest, header_safe};
use super::route::bare_address;

/// Used when the From address has no usable domain.
const FALLBACK_DOMAIN: &str = "treatywatch.invalid";

/// `<digest.FIRST-LAST.HASH@DOMAIN>`: the covered range of the log, a hash
/// of the recipient's key (so the address is not exposed to other systems
/// the message passes through), and the From address's domain. The same
/// changes to the same recipient always give the same id: a resend after a
/// crash between the server's acceptance and our record of it is the same
/// message to any mail client or archive (RFC 5322 §3.6.4).
pub fn message_id(first_seq: i64, last_seq: i64, recipient: &str, from: &str) -> String {
    let domain = domain_of(from);
    format!(
        "<digest.{first_seq}-{last_seq}.{:016x}@{domain}>",
        fnv1a64(recipient.as_bytes())
    )
}

/// FNV-1a, 64 bit: tiny, and stable across Rust releases and platforms,
/// which `std::hash` does not promise.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// `<thread.STATE.TREATY.HASH@DOMAIN>`: the root every digest about one
/// (state, treaty) to one recipient refers to, so mail clients thread them.
/// No message has this id; a reference to a message never seen is how
/// RFC 5322 threading copes with a missing first message anyway.
pub fn thread_id(state: &str, treaty: &str, recipient: &str, from: &str) -> String {
    format!(
        "<thread.{state}.{treaty}.{:016x}@{}>",
        fnv1a64(recipient.as_bytes()),
        domain_of(from)
    )
}

fn domain_of(from: &str) -> &str {
    bare_address(from)
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| {
            !d.is_empty()
                && d.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        })
        .unwrap_or(FALLBACK_DOMAIN)
}

/// The longest line 8-bit transport allows (RFC 5322 §2.1.1), in bytes.
const MAX_LINE_BYTES: usize = 998;

/// `text` as an 8-bit body, when every line fits RFC 5322's 998 bytes and
/// it holds no NUL. lettre's own chooser only picks 8-bit for lines under
/// 76 bytes, which a wrapped line with a few "·" or "→" exceeds, and would
/// fall back to base64: unreadable to `grep`.
fn eight_bit(text: &str) -> Option<Body> {
    if text.contains('\0') || text.contains('\r') {
        return None;
    }
    let crlf = text.replace('\n', "\r\n");
    if crlf.split("\r\n").any(|line| line.len() > MAX_LINE_BYTES) {
        return None;
    }
    Some(Body::dangerous_pre_encoded(
        crlf.into_bytes(),
        ContentTransferEncoding::EightBit,
    ))
}

fn header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

/// Formats `digest` as a complete message from `[notify] from` to `to` (a
/// mailbox as configured), dated `now`.
///
/// Headers for filters and threads: `List-Id` and `List-Unsubscribe`
/// (RFC 2919, 2369), `X-Treatywatch-State`, `-Treaty` and `-Status` (each
/// change's, comma-separated), and `References`/`In-Reply-To` naming one
/// thread per (state, treaty). The text part is 8-bit UTF-8 when its lines
/// allow, so `grep` reads the .eml; the HTML part is encoded as lettre
/// chooses.
pub fn build(
    digest: &Digest,
    notify: &crate::config::Notify,
    to: &str,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, NotifyError> {
    let from = notify.from.as_str();
    let mailbox = |key: &'static str, value: &str| {
        value
            .trim()
            .parse::<Mailbox>()
            .map_err(|source| NotifyError::Address {
                key,
                address: value.to_string(),
                source,
            })
    };
    let domain = domain_of(from);
    let unsubscribe = notify
        .unsubscribe
        .as_deref()
        .map_or_else(|| bare_address(from), bare_address);
    let mut builder = Message::builder()
        .from(mailbox("from", from)?)
        .to(mailbox("to", to)?)
        .subject(header_safe(&digest.subject))
        .date(SystemTime::from(now))
        .message_id(Some(digest.message_id.clone()))
        // RFC 3834: machine-generated; auto-responders should stay quiet.
        .raw_header(header("Auto-Submitted", "auto-generated".to_string()))
        .raw_header(header(
            "List-Id",
            format!("treatywatch digests <treatywatch.{domain}>"),
        ))
        .raw_header(header(
            "List-Unsubscribe",
            format!("<mailto:{unsubscribe}?subject=unsubscribe>"),
        ));
    let mut join = |name: &'static str, values: Vec<String>| {
        let mut unique: Vec<String> = Vec::new();
        for v in values {
            if !unique.contains(&v) {
                unique.push(v);
            }
        }
        if !unique.is_empty() {
            builder = std::mem::replace(&mut builder, Message::builder())
                .raw_header(header(name, unique.join(", ")));
        }
    };
    join(
        "X-Treatywatch-State",
        digest.about.iter().map(|(s, _, _)| s.clone()).collect(),
    );
    join(
        "X-Treatywatch-Treaty",
        digest.about.iter().map(|(_, t, _)| t.clone()).collect(),
    );
    join(
        "X-Treatywatch-Status",
        digest.about.iter().map(|(_, _, s)| s.to_string()).collect(),
    );
    let mut threads: Vec<String> = Vec::new();
    for (state, treaty, _) in &digest.about {
        let id = thread_id(state, treaty, &digest.recipient, from);
        if !threads.contains(&id) {
            threads.push(id);
        }
    }
    if let Some(first) = threads.first() {
        builder = builder
            .in_reply_to(first.clone())
            .references(threads.join(" "));
    }
    let text = eight_bit(&digest.text).unwrap_or_else(|| Body::new(digest.text.clone()));
    let message = builder
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(text),
                )
                .singlepart(SinglePart::html(digest.html.clone())),
        )
        .map_err(NotifyError::Build)?;
    Ok(message.formatted())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_deterministic_and_distinct() {
        let a = message_id(3, 9, "desk@example.org", "tw <tw@alerts.example.org>");
        assert_eq!(
            a,
            message_id(3, 9, "desk@example.org", "tw <tw@alerts.example.org>")
        );
        assert!(
            a.starts_with("<digest.3-9.") && a.ends_with("@alerts.example.org>"),
            "{a}"
        );
        assert_ne!(
            a,
            message_id(3, 9, "ngo@example.org", "tw@alerts.example.org")
        );
        assert_ne!(
            a,
            message_id(3, 10, "desk@example.org", "tw@alerts.example.org")
        );
        assert!(!a.contains("desk"), "the address is hashed: {a}");
        // A From domain that could break the header falls back.
        assert!(message_id(1, 1, "x@y", "a@b>\r\nBcc: c").ends_with("@treatywatch.invalid>"));
    }

    #[test]
    fn fnv_matches_the_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
