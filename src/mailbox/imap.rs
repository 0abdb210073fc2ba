//! IMAP: the messages of one folder on a mail server, as plain data.
//!
//! `fetch` connects (TLS from the first byte, rustls over aws-lc-rs with
//! the platform's roots and an optional `ca_file`), logs in, EXAMINEs the
//! folder (read-only: a mail client may share it, and nothing is marked
//! seen), lists the UIDs to read and fetches each message with
//! `BODY.PEEK[]`, bounded by `MAX_MESSAGE_BYTES` (sizes are asked first).
//! Every step has the mailbox's `timeout`, so a silent server fails the
//! read instead of holding a poll.
//!
//! The UIDVALIDITY and the highest UID read are handed back as a cursor the
//! next read starts after. It only saves bytes: whether a message is new is
//! still decided by `ingest` (Message-ID and content hash), so a lost or
//! reset cursor (a new UIDVALIDITY) reads the folder again and changes
//! nothing. Nothing here parses a message or writes the store.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types};

use super::{MAX_MESSAGE_BYTES, MailboxError, Messages, RawMessage};
use crate::config::PasswordSource;
use crate::config::mailbox::Imap;

/// UIDs asked for in one FETCH command: keeps a command line short and a
/// first read of a large folder in steps.
const FETCH_BATCH: usize = 50;

/// Where the last read stopped: "UIDVALIDITY:LAST-UID", as kept in the
/// store (the mailbox's validator, as a feed's ETag is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub uid_validity: u32,
    pub last_uid: u32,
}

impl Cursor {
    pub fn parse(s: &str) -> Option<Cursor> {
        let (v, u) = s.strip_prefix("imap:")?.split_once(':')?;
        Some(Cursor {
            uid_validity: v.parse().ok()?,
            last_uid: u.parse().ok()?,
        })
    }

    pub fn render(self) -> String {
        format!("imap:{}:{}", self.uid_validity, self.last_uid)
    }
}

/// Reads the new messages of `imap`'s folder, after `cursor` when it is
/// still valid (same UIDVALIDITY), all of them otherwise.
pub async fn fetch(imap: &Imap, cursor: Option<Cursor>) -> Result<Messages, MailboxError> {
    let password = read_password(&imap.password)?;
    let server = format!("{}:{}", imap.host, imap.port);
    let tcp = step(
        imap,
        "connect",
        TcpStream::connect((imap.host.as_str(), imap.port)),
    )
    .await?
    .map_err(|e| MailboxError::Connect {
        server: server.clone(),
        detail: e.to_string(),
    })?;
    if !imap.tls {
        return session(imap, tcp, &password, cursor).await;
    }
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(imap)?));
    let name =
        pki_types::ServerName::try_from(imap.host.clone()).map_err(|e| MailboxError::Tls {
            server: server.clone(),
            detail: e.to_string(),
        })?;
    let tls = step(imap, "TLS handshake", connector.connect(name, tcp))
        .await?
        .map_err(|e| MailboxError::Tls {
            server: server.clone(),
            detail: e.to_string(),
        })?;
    session(imap, tls, &password, cursor).await
}

/// The whole conversation after the connection is made.
async fn session<S>(
    imap: &Imap,
    stream: S,
    password: &str,
    cursor: Option<Cursor>,
) -> Result<Messages, MailboxError>
where
    S: AsyncRead + AsyncWrite + Unpin + Debug + Send,
{
    let server = format!("{}:{}", imap.host, imap.port);
    let protocol = |what: &str, e: async_imap::error::Error| MailboxError::Protocol {
        server: server.clone(),
        detail: format!("{what}: {e}"),
    };
    let mut client = async_imap::Client::new(stream);
    match step(imap, "greeting", client.read_response()).await? {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(protocol(
                "greeting",
                async_imap::error::Error::ConnectionLost,
            ));
        }
        Err(e) => return Err(protocol("greeting", e.into())),
    }
    let mut session = match step(imap, "LOGIN", client.login(&imap.user, password)).await? {
        Ok(s) => s,
        Err((async_imap::error::Error::No(text), _)) => {
            return Err(MailboxError::Login {
                server,
                user: imap.user.clone(),
                detail: text,
                password: imap.password.clone(),
            });
        }
        Err((e, _)) => return Err(protocol("LOGIN", e)),
    };
    let folder = match step(imap, "EXAMINE", session.examine(&imap.folder)).await? {
        Ok(f) => f,
        Err(async_imap::error::Error::No(text)) => {
            return Err(MailboxError::Folder {
                server,
                folder: imap.folder.clone(),
                detail: text,
            });
        }
        Err(e) => return Err(protocol("EXAMINE", e)),
    };
    // Without UIDVALIDITY (RFC 3501 requires it) no cursor can be kept.
    let validity = folder.uid_validity;
    let after = cursor
        .filter(|c| Some(c.uid_validity) == validity)
        .map_or(0, |c| c.last_uid);
    let query = if after == 0 {
        "ALL".to_string()
    } else {
        format!("UID {}:*", after.saturating_add(1))
    };
    let mut uids: Vec<u32> = step(imap, "UID SEARCH", session.uid_search(&query))
        .await?
        .map_err(|e| protocol("UID SEARCH", e))?
        .into_iter()
        // "n:*" always matches the newest message, even below n.
        .filter(|&u| u > after)
        .collect();
    uids.sort_unstable();
    let mut messages = Vec::with_capacity(uids.len());
    for batch in uids.chunks(FETCH_BATCH) {
        let set = batch
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        // Sizes first: a message too large is never downloaded.
        let sizes: Vec<(u32, u32)> = step(imap, "UID FETCH (sizes)", async {
            session
                .uid_fetch(&set, "(UID RFC822.SIZE)")
                .await?
                .try_filter_map(|f| async move { Ok(f.uid.map(|u| (u, f.size.unwrap_or(0)))) })
                .try_collect()
                .await
        })
        .await?
        .map_err(|e| protocol("UID FETCH", e))?;
        let (small, large): (Vec<_>, Vec<_>) = sizes
            .into_iter()
            .partition(|&(_, size)| u64::from(size) <= MAX_MESSAGE_BYTES);
        for (uid, size) in large {
            messages.push((
                uid,
                RawMessage {
                    name: format!("uid {uid}"),
                    bytes: None,
                    size: u64::from(size),
                },
            ));
        }
        if small.is_empty() {
            continue;
        }
        let set = small
            .iter()
            .map(|(u, _)| u.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let bodies: Vec<(u32, Vec<u8>)> = step(imap, "UID FETCH (messages)", async {
            session
                .uid_fetch(&set, "(UID BODY.PEEK[])")
                .await?
                .try_filter_map(|f| async move { Ok(f.uid.zip(f.body().map(<[u8]>::to_vec))) })
                .try_collect()
                .await
        })
        .await?
        .map_err(|e| protocol("UID FETCH", e))?;
        for (uid, bytes) in bodies {
            messages.push((
                uid,
                RawMessage {
                    name: format!("uid {uid}"),
                    size: bytes.len() as u64,
                    bytes: Some(bytes),
                },
            ));
        }
    }
    // A polite goodbye; the messages are read whatever it answers.
    let _ = tokio::time::timeout(imap.timeout, session.logout()).await;
    messages.sort_by_key(|(uid, _)| *uid);
    let last = messages.last().map_or(after, |(uid, _)| (*uid).max(after));
    Ok(Messages {
        messages: messages.into_iter().map(|(_, m)| m).collect(),
        cursor: validity.map(|uid_validity| {
            Cursor {
                uid_validity,
                last_uid: last,
            }
            .render()
        }),
    })
}

/// Runs one step of the conversation within the mailbox's timeout.
async fn step<T>(
    imap: &Imap,
    what: &'static str,
    fut: impl Future<Output = T>,
) -> Result<T, MailboxError> {
    tokio::time::timeout(imap.timeout, fut)
        .await
        .map_err(|_| MailboxError::Timeout {
            server: format!("{}:{}", imap.host, imap.port),
            what,
            after: imap.timeout,
        })
}

/// rustls over aws-lc-rs (the provider the rest of the tree uses), the
/// platform's roots, and the PEM certificates of `ca_file` besides.
fn tls_config(imap: &Imap) -> Result<rustls::ClientConfig, MailboxError> {
    use pki_types::pem::PemObject as _;
    let server = format!("{}:{}", imap.host, imap.port);
    let tls_err = |detail: String| MailboxError::Tls {
        server: server.clone(),
        detail,
    };
    let mut extra = Vec::new();
    if let Some(path) = &imap.ca_file {
        let certs =
            pki_types::CertificateDer::pem_file_iter(path).map_err(|e| MailboxError::CaFile {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        for cert in certs {
            extra.push(cert.map_err(|e| MailboxError::CaFile {
                path: path.clone(),
                detail: e.to_string(),
            })?);
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|e| tls_err(e.to_string()))?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// The password, without the trailing newline files and `echo` leave.
fn read_password(source: &PasswordSource) -> Result<String, MailboxError> {
    let raw = match source {
        PasswordSource::Env(var) => std::env::var(var).map_err(|_| MailboxError::Password {
            detail: format!("the environment variable {var} (password_env) is not set"),
        })?,
        PasswordSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
            MailboxError::Password {
                detail: format!(
                    "cannot read password_file {}: {e}; with systemd, name the file in LoadCredential=",
                    path.display()
                ),
            }
        })?,
    };
    Ok(raw.trim_end_matches(['\r', '\n']).to_string())
}

/// How long a whole read may take at most, for callers that wait on one.
pub fn deadline(imap: &Imap) -> Duration {
    // Connect, handshake, greeting, login, examine, search, and two
    // fetches per batch: a generous bound, never reached by a server that
    // answers each step.
    imap.timeout * 12
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn a_cursor_reads_back_as_written_and_garbage_is_none() {
        let c = Cursor {
            uid_validity: 1_796_175_082,
            last_uid: 42,
        };
        assert_eq!(Cursor::parse(&c.render()), Some(c));
        for bad in ["", "imap:", "imap:1", "imap:x:2", "W/\"etag\"", "1:2"] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }
}
