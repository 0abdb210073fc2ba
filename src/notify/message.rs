//! The digest as an RFC 5322 message: headers, the text/HTML alternatives,
//! and the deterministic Message-ID that makes a resend recognisable.
//!
//! Header encoding (RFC 2047 for non-ASCII subjects, folding) is lettre's;
//! this file only decides what goes in. It does no I/O.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};

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
    let domain = bare_address(from)
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| {
            !d.is_empty()
                && d.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        })
        .unwrap_or(FALLBACK_DOMAIN);
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

/// Formats `digest` as a complete message from `from` to `to` (mailboxes as
/// configured), dated `now`.
pub fn build(
    digest: &Digest,
    from: &str,
    to: &str,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, NotifyError> {
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
    let message = Message::builder()
        .from(mailbox("from", from)?)
        .to(mailbox("to", to)?)
        .subject(header_safe(&digest.subject))
        .date(SystemTime::from(now))
        .message_id(Some(digest.message_id.clone()))
        // RFC 3834: machine-generated; auto-responders should stay quiet.
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_string(),
        ))
        .multipart(MultiPart::alternative_plain_html(
            digest.text.clone(),
            digest.html.clone(),
        ))
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
