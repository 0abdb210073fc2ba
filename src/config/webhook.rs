//! `[[notify.webhook]]`: an HTTP receiver that is posted each status change
//! (a Slack or Matrix room, an ntfy topic, a script), checked here like the
//! rest of feeds.toml. What is posted and how is `notify::webhook`'s business.
//!
//! The token is never in the config: `token_file` names a file (a systemd
//! credential, as for SMTP's `password_file`). Loading only resolves the
//! path, so commands that never post (`status`, run as another user) do not
//! need to read it; `check` and the first delivery do (`unreadable_tokens`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use url::Url;

use super::diagnostic::{Diagnostic, Location};
use super::{CREDENTIALS_PREFIX, Gazetteer, Treaties, Validator, raw};
use crate::domain::Status;

/// How long one request may take (connect, send, the reply's headers and
/// body) when `timeout` is not set: a receiver that says nothing costs this
/// and is then retried with the outbox's backoff.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest `timeout` accepted: well inside the outbox's attempt lease,
/// and longer than any receiver worth waiting for.
pub const MAX_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(120);

/// One configured receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// `[a-z0-9_-]+`, distinct among webhooks: its identity in the outbox
    /// and the log (`webhook:ID`), so renaming it starts afresh.
    pub id: String,
    /// Where to post (for Matrix, the room's `send/m.room.message`
    /// endpoint; the transaction id is appended).
    pub url: Url,
    pub format: WebhookFormat,
    /// Sent as `Authorization: Bearer …` when set.
    pub token: Option<TokenFile>,
    /// State codes to hear about; `None` means the tracked states.
    pub states: Option<Vec<String>>,
    /// Treaty ids to hear about; `None` means the tracked treaties.
    pub treaties: Option<Vec<String>>,
    /// Stages posted at once, without waiting for the debounce window.
    pub urgent: Vec<Status>,
    /// The bound on one request.
    pub timeout: Duration,
}

/// What the receiver is sent (see the README's "Webhooks").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// The change as `events --json` prints it, with its idempotency key.
    Json,
    /// A Slack incoming webhook: `{"text": …}` in mrkdwn.
    Slack,
    /// A Matrix `m.room.message` event, PUT with the key as transaction id.
    Matrix,
    /// An ntfy topic: plain text with Title, Tags and Click headers.
    Ntfy,
}

impl WebhookFormat {
    pub const ALL: [WebhookFormat; 4] = [
        WebhookFormat::Json,
        WebhookFormat::Slack,
        WebhookFormat::Matrix,
        WebhookFormat::Ntfy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Json => "json",
            WebhookFormat::Slack => "slack",
            WebhookFormat::Matrix => "matrix",
            WebhookFormat::Ntfy => "ntfy",
        }
    }

    pub fn parse(s: &str) -> Option<WebhookFormat> {
        WebhookFormat::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// Where a webhook's token is kept, and where `token_file` was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFile {
    pub path: PathBuf,
    pub at: Location,
}

impl TokenFile {
    /// The token: the file's first line, trimmed. An empty file is an
    /// error, not an empty token.
    pub fn read(&self) -> std::io::Result<String> {
        let text = std::fs::read_to_string(&self.path)?;
        let token = text.lines().next().unwrap_or_default().trim().to_string();
        if token.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the file is empty",
            ));
        }
        Ok(token)
    }
}

/// A diagnostic for every webhook whose token file cannot be read now:
/// what `check` adds to the loaded config's own checks.
pub fn unreadable_tokens(webhooks: &[Webhook]) -> Vec<Diagnostic> {
    webhooks
        .iter()
        .filter_map(|w| {
            let token = w.token.as_ref()?;
            let e = token.read().err()?;
            Some(token.at.diagnostic(format!(
                "webhook {:?}: cannot read token_file {}: {e}; put the token in that file (with systemd, LoadCredential= puts it in $CREDENTIALS_DIRECTORY) or remove token_file",
                w.id,
                token.path.display()
            )))
        })
        .collect()
}

impl Validator<'_> {
    pub(super) fn webhooks(
        &mut self,
        raw: &[Spanned<raw::Webhook>],
        gazetteer: &Gazetteer,
        treaties: &Treaties,
        data_ok: bool,
    ) -> Vec<Webhook> {
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(raw.len());
        for entry in raw {
            let w = entry.get_ref();
            let id = w.id.get_ref().clone();
            let good_id = !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            if !good_id {
                self.err(
                    w.id.span(),
                    format!("webhook id {id:?} must be lower-case letters, digits, '_' or '-', such as \"newsroom-slack\""),
                );
            } else if !seen.insert(id.clone()) {
                self.err(
                    w.id.span(),
                    format!(
                        "webhook id {id:?} is used twice; give each [[notify.webhook]] its own id"
                    ),
                );
            }
            let format = match &w.format {
                None => WebhookFormat::Json,
                Some(f) => WebhookFormat::parse(f.get_ref()).unwrap_or_else(|| {
                    self.err(
                        f.span(),
                        format!(
                            "webhook {id:?}: unknown format {:?}; write \"json\", \"slack\", \"matrix\" or \"ntfy\"",
                            f.get_ref()
                        ),
                    );
                    WebhookFormat::Json
                }),
            };
            let url = self.webhook_url(&w.url, &id, format);
            let token = w.token_file.as_ref().and_then(|t| self.token_file(t, &id));
            let states = w.states.as_ref().map(|list| {
                self.filter(list, "states", |code| {
                    if !data_ok || gazetteer.state(code).is_some() {
                        return None;
                    }
                    Some(format!("unknown state code {code:?} in webhook {id:?}; use an ISO 3166-1 alpha-3 code defined in the states file (upper case)"))
                })
            });
            let treaty_ids = w.treaties.as_ref().map(|list| {
                self.filter(list, "treaties", |t| {
                    if !data_ok || treaties.get(t).is_some() {
                        return None;
                    }
                    let known: Vec<&str> = treaties.list.iter().map(|t| t.id.as_str()).collect();
                    Some(format!(
                        "unknown treaty id {t:?} in webhook {id:?}; known ids: {}",
                        known.join(", ")
                    ))
                })
            });
            let urgent = self.stages(&w.urgent, "webhook urgent");
            let timeout = match &w.timeout {
                None => DEFAULT_WEBHOOK_TIMEOUT,
                Some(t) => match self.positive_duration(t, "webhook timeout") {
                    Some(d) if d <= MAX_WEBHOOK_TIMEOUT => d,
                    Some(_) => {
                        self.err(
                            t.span(),
                            format!("webhook {id:?}: timeout is longer than 2 minutes; a receiver that slow is retried later anyway, so write e.g. \"10s\""),
                        );
                        DEFAULT_WEBHOOK_TIMEOUT
                    }
                    None => DEFAULT_WEBHOOK_TIMEOUT,
                },
            };
            if let Some(url) = url {
                out.push(Webhook {
                    id,
                    url,
                    format,
                    token,
                    states,
                    treaties: treaty_ids,
                    urgent,
                    timeout,
                });
            }
        }
        out
    }

    fn webhook_url(
        &mut self,
        raw: &Spanned<String>,
        id: &str,
        format: WebhookFormat,
    ) -> Option<Url> {
        let written = raw.get_ref().trim();
        let url = match Url::parse(written) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
            Ok(u) => {
                self.err(
                    raw.span(),
                    format!("webhook {id:?}: url {written:?} is not an http(s) URL (scheme {:?}); write e.g. \"https://hooks.example.org/treaties\"", u.scheme()),
                );
                return None;
            }
            Err(e) => {
                self.err(
                    raw.span(),
                    format!("webhook {id:?}: url {written:?} is not a URL ({e}); write e.g. \"https://hooks.example.org/treaties\""),
                );
                return None;
            }
        };
        if format == WebhookFormat::Matrix
            && !url
                .path()
                .trim_end_matches('/')
                .ends_with("/send/m.room.message")
        {
            self.err(
                raw.span(),
                format!("webhook {id:?}: a Matrix url is the room's send endpoint, ending in /send/m.room.message (treatywatch adds the transaction id), e.g. \"https://matrix.example.org/_matrix/client/v3/rooms/!abc:example.org/send/m.room.message\""),
            );
            return None;
        }
        Some(url)
    }

    fn token_file(&mut self, t: &Spanned<String>, id: &str) -> Option<TokenFile> {
        let written = t.get_ref().trim();
        if written.is_empty() {
            self.err(
                t.span(),
                format!("webhook {id:?}: token_file is empty; write the path of a file holding the token, e.g. \"$CREDENTIALS_DIRECTORY/webhook-{id}\""),
            );
            return None;
        }
        // "$CREDENTIALS_DIRECTORY/NAME" is NAME in the credentials
        // directory, which is where a relative path is looked up anyway.
        let relative = written.strip_prefix(CREDENTIALS_PREFIX).unwrap_or(written);
        if relative.starts_with('$') {
            self.err(
                t.span(),
                format!("webhook {id:?}: token_file {written:?}: only $CREDENTIALS_DIRECTORY/NAME is expanded; write a path"),
            );
            return None;
        }
        Some(TokenFile {
            path: self.dirs.credential_path(self.base, Path::new(relative)),
            at: self.src.location(t.span()),
        })
    }
}
