//! Root and a service's database: a command run as root on a database that
//! belongs to another user (the `treatywatch` service user) would leave
//! root-owned files beside it (the `-wal` and `-shm` files SQLite creates
//! even for a reader, the lock file, backups), and the service could no
//! longer open its own database. So root is refused, with the command
//! that runs the same thing as the owner. A user other than root cannot
//! create files in the service's directory anyway.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The database's owner when it is not the current user and the current
/// user is root: the file's owner, or for a database not created yet the
/// owner of the nearest folder that exists on the way to it.
pub fn foreign_owner(db: &Path) -> Option<Owner> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let existing = db
        .ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.exists());
    let uid = std::fs::metadata(existing.unwrap_or(Path::new(".")))
        .ok()?
        .uid();
    (uid != 0).then(|| Owner {
        name: user_name(uid),
        path: existing.unwrap_or(db).to_path_buf(),
    })
}

/// Who owns what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The user name, or the numeric uid when it has none.
    pub name: String,
    /// The file or folder owned.
    pub path: PathBuf,
}

/// This process's command line run as `user`, quoted for a shell: what to
/// type instead.
pub fn as_user(user: &str) -> String {
    let mut words = vec!["sudo".to_string(), "-u".to_string(), quote(user)];
    words.extend(std::env::args().map(|a| quote(&a)));
    words.join(" ")
}

fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@+%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn user_name(uid: u32) -> String {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: every pointer points at memory owned here and sized as
    // passed; getpwuid_r writes only inside `pwd` and `buf`.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found);
        if rc == 0 && !found.is_null() && !pwd.pw_name.is_null() {
            return std::ffi::CStr::from_ptr(pwd.pw_name)
                .to_string_lossy()
                .into_owned();
        }
    }
    // `sudo -u '#1234'` takes a numeric uid.
    format!("#{uid}")
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn words_are_quoted_only_when_a_shell_needs_it() {
        for (word, quoted) in [
            ("status", "status"),
            ("/etc/treatywatch/feeds.toml", "/etc/treatywatch/feeds.toml"),
            ("--note=it's wrong", r"'--note=it'\''s wrong'"),
            ("two words", "'two words'"),
            ("", "''"),
            ("#999", "'#999'"),
        ] {
            assert_eq!(quote(word), quoted);
        }
    }
}
