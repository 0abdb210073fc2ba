//! Where a system service's files are: the search for `feeds.toml`, and the
//! directories systemd hands a service (`ConfigurationDirectory=`,
//! `StateDirectory=`, `LoadCredential=`) through `$CONFIGURATION_DIRECTORY`,
//! `$STATE_DIRECTORY` and `$CREDENTIALS_DIRECTORY`.
//!
//! Owns the rules for resolving a path the config names; reads no file.
//! The environment is read once, by `ServiceDirs::from_env`, so the rules
//! themselves take their inputs as values.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The config file's name inside a configuration directory.
pub const CONFIG_FILE: &str = "feeds.toml";
/// A checkout's config, relative to the current directory (`cargo run`).
pub const LOCAL_CONFIG_PATH: &str = "config/feeds.toml";
/// Where the Debian package and `deploy/install.sh` put the config.
pub const SYSTEM_CONFIG_PATH: &str = "/etc/treatywatch/feeds.toml";
/// The database's name in a state directory when `[storage] path` is unset.
pub const STATE_DB_FILE: &str = "treatywatch.db";
/// The digest folder's name in a state directory when `[notify] folder` is unset.
pub const STATE_DIGEST_FOLDER: &str = "digests";

/// The directories systemd set for this process, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceDirs {
    /// `$CONFIGURATION_DIRECTORY` (`/etc/treatywatch` for the unit).
    pub configuration: Option<PathBuf>,
    /// `$STATE_DIRECTORY` (`/var/lib/treatywatch` for the unit).
    pub state: Option<PathBuf>,
    /// `$CREDENTIALS_DIRECTORY` (`/run/credentials/treatywatch.service`).
    pub credentials: Option<PathBuf>,
}

impl ServiceDirs {
    pub fn from_env() -> ServiceDirs {
        let var = |name| std::env::var_os(name).and_then(|v| first_dir(&v));
        ServiceDirs {
            configuration: var("CONFIGURATION_DIRECTORY"),
            state: var("STATE_DIRECTORY"),
            credentials: var("CREDENTIALS_DIRECTORY"),
        }
    }

    /// Where the config is looked for when none was named, in order.
    pub fn config_search_path(&self) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        if let Some(dir) = &self.configuration {
            paths.push(dir.join(CONFIG_FILE));
        }
        paths.push(PathBuf::from(LOCAL_CONFIG_PATH));
        paths.push(PathBuf::from(SYSTEM_CONFIG_PATH));
        paths
    }

    /// A data path the config names (`[storage] path`, `[notify] folder`):
    /// absolute as written; relative from the state directory when systemd
    /// gave one, else from the config file's folder (`base`).
    pub fn data_path(&self, base: &Path, written: &Path) -> PathBuf {
        if written.is_absolute() {
            written.to_path_buf()
        } else {
            self.state.as_deref().unwrap_or(base).join(written)
        }
    }

    /// A data path the config leaves unset: `in_state` in the state
    /// directory, else `beside_config` from the config file's folder.
    pub fn default_data_path(&self, base: &Path, beside_config: &str, in_state: &str) -> PathBuf {
        match &self.state {
            Some(state) => state.join(in_state),
            None => base.join(beside_config),
        }
    }

    /// A secret file (`password_file`): absolute as written; relative from
    /// the credentials directory when systemd gave one (`LoadCredential=`),
    /// else from the config file's folder, where the unit loads it from.
    pub fn credential_path(&self, base: &Path, written: &Path) -> PathBuf {
        if written.is_absolute() {
            written.to_path_buf()
        } else {
            self.credentials.as_deref().unwrap_or(base).join(written)
        }
    }
}

/// The config to load: the one named (`--config`, `TREATYWATCH_CONFIG`)
/// whether it exists or not, else the first of the search path that does.
pub fn locate(named: Option<&Path>, dirs: &ServiceDirs) -> Result<PathBuf, super::ConfigError> {
    if let Some(path) = named {
        return Ok(path.to_path_buf());
    }
    let looked = dirs.config_search_path();
    match looked.iter().find(|p| p.is_file()) {
        Some(found) => Ok(found.clone()),
        None => Err(super::ConfigError::NotFound { looked }),
    }
}

/// systemd sets a colon-separated list when a unit names several
/// directories; treatywatch uses the first. Empty means unset.
fn first_dir(value: &OsStr) -> Option<PathBuf> {
    let text = value.to_string_lossy();
    let first = text.split(':').next().unwrap_or_default();
    (!first.is_empty()).then(|| PathBuf::from(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(
        configuration: Option<&str>,
        state: Option<&str>,
        credentials: Option<&str>,
    ) -> ServiceDirs {
        ServiceDirs {
            configuration: configuration.map(PathBuf::from),
            state: state.map(PathBuf::from),
            credentials: credentials.map(PathBuf::from),
        }
    }

    #[test]
    fn search_path_puts_the_service_directory_first() {
        let check = |d: ServiceDirs, expected: &[&str]| {
            let got: Vec<PathBuf> = d.config_search_path();
            let expected: Vec<PathBuf> = expected.iter().map(PathBuf::from).collect();
            assert_eq!(got, expected);
        };
        check(
            dirs(None, None, None),
            &["config/feeds.toml", "/etc/treatywatch/feeds.toml"],
        );
        check(
            dirs(Some("/srv/tw"), None, None),
            &[
                "/srv/tw/feeds.toml",
                "config/feeds.toml",
                "/etc/treatywatch/feeds.toml",
            ],
        );
    }

    #[test]
    fn relative_data_goes_to_the_state_directory_when_there_is_one() {
        let base = Path::new("/etc/treatywatch");
        let check = |d: &ServiceDirs, written: &str, expected: &str| {
            assert_eq!(
                d.data_path(base, Path::new(written)),
                PathBuf::from(expected)
            );
        };
        let service = dirs(None, Some("/var/lib/treatywatch"), None);
        let plain = ServiceDirs::default();
        check(&service, "tw.db", "/var/lib/treatywatch/tw.db");
        check(&service, "/srv/tw.db", "/srv/tw.db");
        check(&plain, "tw.db", "/etc/treatywatch/tw.db");
        check(&plain, "../data/tw.db", "/etc/treatywatch/../data/tw.db");
        assert_eq!(
            service.default_data_path(base, "data/treatywatch.db", STATE_DB_FILE),
            PathBuf::from("/var/lib/treatywatch/treatywatch.db")
        );
        assert_eq!(
            plain.default_data_path(base, "data/treatywatch.db", STATE_DB_FILE),
            PathBuf::from("/etc/treatywatch/data/treatywatch.db")
        );
    }

    #[test]
    fn relative_password_files_are_credentials() {
        let base = Path::new("/etc/treatywatch");
        let service = dirs(None, None, Some("/run/credentials/treatywatch.service"));
        assert_eq!(
            service.credential_path(base, Path::new("smtp")),
            PathBuf::from("/run/credentials/treatywatch.service/smtp")
        );
        assert_eq!(
            ServiceDirs::default().credential_path(base, Path::new("smtp")),
            PathBuf::from("/etc/treatywatch/smtp")
        );
        assert_eq!(
            service.credential_path(base, Path::new("/root/pw")),
            PathBuf::from("/root/pw")
        );
    }

    #[test]
    fn only_the_first_of_several_directories_counts() {
        assert_eq!(first_dir(OsStr::new("/a:/b")), Some(PathBuf::from("/a")));
        assert_eq!(first_dir(OsStr::new("")), None);
    }
}
