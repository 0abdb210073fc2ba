//! A real IMAP server for the tests: Debian's Dovecot (`dovecot-imapd`,
//! which `.ci/run` installs when missing), started in a temp dir with its
//! own config, listening on 127.0.0.1 at a free port, one user (`depo`,
//! password `secret`) whose INBOX is a Maildir the test delivers into.
//! Stopped (SIGTERM, then waited for) when dropped.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "depo";
pub const PASSWORD: &str = "secret";

pub struct Dovecot {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

/// Where Dovecot runs its login and mail processes: as root it refuses to
/// run them as root, so they run as the users the package made; as anyone
/// else, everything runs as that user.
struct Users {
    internal: String,
    login: String,
    uid: u32,
    gid: u32,
}

fn users() -> Users {
    let me = unsafe { libc::geteuid() };
    if me == 0 {
        let id = |flag: &str| -> u32 {
            let out = Command::new("id")
                .args([flag, "dovecot"])
                .output()
                .expect("run id");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("the dovecot user exists (dovecot-core makes it)")
        };
        Users {
            internal: "dovecot".into(),
            login: "dovenull".into(),
            uid: id("-u"),
            gid: id("-g"),
        }
    } else {
        let name = String::from_utf8_lossy(
            &Command::new("id")
                .arg("-un")
                .output()
                .expect("run id")
                .stdout,
        )
        .trim()
        .to_string();
        Users {
            internal: name.clone(),
            login: name,
            uid: me,
            gid: unsafe { libc::getegid() },
        }
    }
}

impl Dovecot {
    /// Starts the server with plain IMAP (the client's `tls = false`, which
    /// the config allows for loopback only).
    pub fn start() -> Dovecot {
        Dovecot::start_with(None)
    }

    /// Starts the server speaking TLS from the first byte (IMAPS) with a
    /// certificate for 127.0.0.1 signed by a throwaway CA, whose PEM is
    /// written to `ca.pem` in the server's folder.
    pub fn start_tls() -> Dovecot {
        let certs = tempfile::tempdir().expect("temp dir");
        make_certificates(certs.path());
        let server = Dovecot::start_with(Some(certs.path()));
        std::fs::copy(
            certs.path().join("ca.pem"),
            server.dir.path().join("ca.pem"),
        )
        .unwrap();
        server
    }

    fn start_with(certs: Option<&Path>) -> Dovecot {
        let binary = Path::new("/usr/sbin/dovecot");
        assert!(
            binary.exists(),
            "the IMAP tests need Dovecot: apt-get install dovecot-imapd (.ci/run does)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        // Dovecot's own processes run as another user and must reach it.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let users = users();
        for sub in ["mail/cur", "mail/new", "mail/tmp", "home", "run"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        for sub in ["mail", "mail/cur", "mail/new", "mail/tmp", "home"] {
            std::os::unix::fs::chown(root.join(sub), Some(users.uid), Some(users.gid)).unwrap();
        }
        std::fs::write(root.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).unwrap();
        let port = free_port();
        let (ssl, imap_port, imaps_port) = match certs {
            None => ("ssl = no".to_string(), port, 0),
            Some(dir) => (
                format!(
                    "ssl = required\nssl_cert = <{}\nssl_key = <{}",
                    dir.join("leaf.pem").display(),
                    dir.join("leaf.key").display()
                ),
                0,
                port,
            ),
        };
        let conf = format!(
            r#"protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/run/state
instance_name = treatywatch-test-{port}
default_internal_user = {internal}
default_internal_group = {internal}
default_login_user = {login}
first_valid_uid = 0
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {root}/dovecot.log
mail_location = maildir:{root}/mail
{ssl}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
"#,
            root = root.display(),
            internal = users.internal,
            login = users.login,
            uid = users.uid,
            gid = users.gid,
        );
        std::fs::write(root.join("dovecot.conf"), conf).unwrap();
        let child = Command::new(binary)
            .arg("-F")
            .arg("-c")
            .arg(root.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dovecot");
        let server = Dovecot { dir, port, child };
        if certs.is_none() {
            server.wait_for_greeting();
        } else {
            server.wait_for_listener();
        }
        server
    }

    /// Waits (up to a deadline) until the port takes connections (the
    /// greeting is inside TLS there; connections queue for the login process).
    fn wait_for_listener(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "dovecot did not listen on port {} within 30 s; its log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (up to a deadline) until a connection gets the server's
    /// "* OK" greeting, i.e. its login process is up.
    fn wait_for_greeting(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) {
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut line = String::new();
                if BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("* OK") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "dovecot did not greet on port {} within 30 s; its log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// Delivers a message into the INBOX as a local delivery agent would.
    pub fn deliver(&self, bytes: &[u8], n: u32) {
        let name = format!("17520000{n:02}.M{n}P4343.imaptest");
        let tmp = self.maildir().join("tmp").join(&name);
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, self.maildir().join("new").join(&name)).unwrap();
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM: the master stops its children and removes its sockets.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// A CA and a server certificate for 127.0.0.1 it signed, with the
/// `openssl` tool (dovecot-core depends on it).
fn make_certificates(dir: &Path) {
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=treatywatch test CA",
        ],
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A port nothing listens on now (the kernel's choice, released at once).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
