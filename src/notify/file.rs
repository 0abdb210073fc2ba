//! The file transport: each digest becomes one .eml file in a folder — the
//! shipped default, so a fresh install works with no mail server.
//!
//! A file appears whole or not at all (written beside its final name, synced,
//! then renamed), and its name comes from the Message-ID, so a resend after a
//! crash replaces the same file instead of adding a second one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::transport::{DeliveryError, Outgoing, Transport};

pub struct Folder {
    folder: PathBuf,
}

impl Folder {
    pub fn new(folder: &Path) -> Folder {
        Folder {
            folder: folder.to_path_buf(),
        }
    }
}

/// `digest.3-9.1a2b….eml` from `<digest.3-9.1a2b…@example.org>`: the part
/// before `@`, with anything but `[A-Za-z0-9.-]` replaced.
pub fn file_name(message_id: &str) -> String {
    let local = message_id
        .trim_matches(|c| c == '<' || c == '>')
        .split('@')
        .next()
        .unwrap_or_default();
    let safe: String = local
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.trim_start_matches('.');
    format!("{}.eml", if safe.is_empty() { "digest" } else { safe })
}

impl Transport for Folder {
    fn deliver(&mut self, mail: &Outgoing<'_>) -> Result<(), DeliveryError> {
        let path = self.folder.join(file_name(mail.message_id));
        let err = |source| DeliveryError::Write {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(&self.folder).map_err(err)?;
        let temp = self
            .folder
            .join(format!(".{}.tmp", file_name(mail.message_id)));
        let mut file = fs::File::create(&temp).map_err(err)?;
        file.write_all(mail.message).map_err(err)?;
        file.sync_all().map_err(err)?;
        drop(file);
        fs::rename(&temp, &path).map_err(err)?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("folder {}", self.folder.display())
    }
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn file_names_come_from_message_ids() {
        for (id, name) in [
            ("<digest.3-9.00ff@example.org>", "digest.3-9.00ff.eml"),
            ("<../../etc/passwd@x>", "_.._etc_passwd.eml"),
            ("<>", "digest.eml"),
        ] {
            assert_eq!(file_name(id), name, "{id}");
        }
    }
}
