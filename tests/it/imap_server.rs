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
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_rustls::rustls;

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
        Dovecot::start_with(false)
    }

    /// Starts the server speaking TLS from the first byte (IMAPS) with a
    /// certificate for 127.0.0.1 signed by a throwaway CA, whose PEM is
    /// `ca.pem` in the server's folder. The certificates live in that
    /// folder, as long as the server: Dovecot's config process reads
    /// `ssl_cert` again when the first login process starts, so a file
    /// removed after startup ends that process and resets connections.
    pub fn start_tls() -> Dovecot {
        Dovecot::start_with(true)
    }

    fn start_with(tls: bool) -> Dovecot {
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
        let (ssl, imap_port, imaps_port) = if tls {
            let certs = root.join("certs");
            std::fs::create_dir(&certs).unwrap();
            make_certificates(&certs);
            std::fs::copy(certs.join("ca.pem"), root.join("ca.pem")).unwrap();
            (
                format!(
                    "ssl = required\nssl_cert = <{}\nssl_key = <{}",
                    certs.join("leaf.pem").display(),
                    certs.join("leaf.key").display()
                ),
                0,
                port,
            )
        } else {
            ("ssl = no".to_string(), port, 0)
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
        server.wait_for_greeting(tls);
        server
    }

    /// Waits (up to a deadline) until a connection gets the server's
    /// "* OK" greeting, i.e. its login process is up. Over TLS the greeting
    /// is read inside a session that trusts the test CA, so the server is
    /// ready only once it can hand its certificate out.
    fn wait_for_greeting(&self, tls: bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let tls_config = tls.then(|| self.tls_client_config());
        loop {
            if let Ok(stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) {
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut line = String::new();
                let read = match &tls_config {
                    None => BufReader::new(stream).read_line(&mut line),
                    Some(config) => {
                        let name = rustls::pki_types::ServerName::IpAddress(
                            std::net::IpAddr::from(Ipv4Addr::LOCALHOST).into(),
                        );
                        let session = rustls::ClientConnection::new(config.clone(), name).unwrap();
                        BufReader::new(rustls::StreamOwned::new(session, stream))
                            .read_line(&mut line)
                    }
                };
                if read.is_ok() && line.starts_with("* OK") {
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

    /// A TLS client that trusts the test CA only.
    fn tls_client_config(&self) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        let ca = rustls::pki_types::CertificateDer::from_pem_file(self.dir.path().join("ca.pem"))
            .expect("the test CA's PEM");
        roots.add(ca).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
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
