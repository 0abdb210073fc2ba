//! The SMTP transport (lettre), and the only code in treatywatch that speaks
//! SMTP.
//!
//! TLS modes map to lettre's: `tls` is implicit TLS from the first byte
//! (RFC 8314, port 465), `starttls` requires the upgrade and refuses to send
//! in clear if the server does not offer it, `none` is plain text for a
//! relay on the same machine. The password is read when the transport is
//! opened, from an environment variable or a file (a systemd credential),
//! never from the config file. One message is one SMTP transaction with one
//! recipient, so a refusal for one address cannot affect another.

use std::time::Duration;

use lettre::address::{Address, Envelope};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{SmtpTransport, Transport as _};

use super::NotifyError;
use super::transport::{DeliveryError, Outgoing, Transport};
use crate::config::{PasswordSource, Smtp, TlsMode};

/// How long one SMTP command may take before the attempt counts as failed.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

pub struct SmtpSender {
    transport: SmtpTransport,
    server: String,
    tls: TlsMode,
}

impl SmtpSender {
    pub fn new(smtp: &Smtp) -> Result<SmtpSender, NotifyError> {
        let tls = |host: &str| {
            TlsParameters::new(host.to_string()).map_err(|source| NotifyError::Tls {
                host: host.to_string(),
                source,
            })
        };
        let mode = match smtp.tls {
            TlsMode::None => Tls::None,
            TlsMode::StartTls => Tls::Required(tls(&smtp.host)?),
            TlsMode::Tls => Tls::Wrapper(tls(&smtp.host)?),
        };
        let mut builder = SmtpTransport::builder_dangerous(smtp.host.as_str())
            .port(smtp.port)
            .tls(mode)
            .timeout(Some(SMTP_TIMEOUT));
        if let Some(user) = &smtp.username {
            let password = match &smtp.password {
                Some(source) => read_password(source)?,
                None => String::new(),
            };
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(SmtpSender {
            transport: builder.build(),
            server: format!("{}:{}", smtp.host, smtp.port),
            tls: smtp.tls,
        })
    }
}

/// The password, without the trailing newline files and `echo` leave.
fn read_password(source: &PasswordSource) -> Result<String, NotifyError> {
    let raw = match source {
        PasswordSource::Env(var) => {
            std::env::var(var).map_err(|_| NotifyError::PasswordEnv { var: var.clone() })?
        }
        PasswordSource::File(path) => {
            std::fs::read_to_string(path).map_err(|source| NotifyError::PasswordFile {
                path: path.clone(),
                source,
            })?
        }
    };
    Ok(raw.trim_end_matches(['\r', '\n']).to_string())
}

impl Transport for SmtpSender {
    fn deliver(&mut self, mail: &Outgoing<'_>) -> Result<(), DeliveryError> {
        let address = |a: &str| {
            a.parse::<Address>().map_err(|e| DeliveryError::Address {
                address: a.to_string(),
                detail: e.to_string(),
            })
        };
        let envelope =
            Envelope::new(Some(address(mail.from)?), vec![address(mail.to)?]).map_err(|e| {
                DeliveryError::Address {
                    address: mail.to.to_string(),
                    detail: e.to_string(),
                }
            })?;
        self.transport
            .send_raw(&envelope, mail.message)
            .map(|_| ())
            .map_err(|e| classify(&self.server, &e))
    }

    fn describe(&self) -> String {
        format!("smtp://{} ({})", self.server, self.tls)
    }
}

/// 4xx → deferred, 5xx → refused, TLS or authentication trouble → session,
/// anything else (refused connection, timeout) → unreachable. All stay
/// pending.
fn classify(server: &str, e: &lettre::transport::smtp::Error) -> DeliveryError {
    // lettre's message already carries the code and the server's words.
    let detail = e.to_string();
    let server = server.to_string();
    if e.is_transient() {
        DeliveryError::Deferred { server, detail }
    } else if e.is_permanent() {
        DeliveryError::Refused { server, detail }
    } else if e.is_tls() || e.is_client() || e.is_response() {
        DeliveryError::Session { server, detail }
    } else {
        DeliveryError::Unreachable { server, detail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_come_from_a_file_or_the_environment() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("smtp");
        std::fs::write(&file, "s3cret\n").expect("write");
        assert_eq!(
            read_password(&PasswordSource::File(file.clone())).expect("read"),
            "s3cret",
            "the newline a credential file ends with is not part of it"
        );
        let missing = read_password(&PasswordSource::File(dir.path().join("nope")))
            .expect_err("missing file");
        assert!(missing.to_string().contains("password_file"), "{missing}");
        let unset = read_password(&PasswordSource::Env(
            "TREATYWATCH_TEST_VARIABLE_NOBODY_SETS".into(),
        ))
        .expect_err("unset variable");
        assert!(
            unset
                .to_string()
                .contains("TREATYWATCH_TEST_VARIABLE_NOBODY_SETS is not set"),
            "{unset}"
        );
    }
}
