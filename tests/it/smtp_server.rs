//! A real SMTP server (mailin-embedded) on 127.0.0.1 for the digest tests.
//!
//! It keeps every message it accepts, and can be told to defer the next
//! messages with 451, to refuse a recipient with 550 or the next messages
//! with 552 (too large). "Down" is a port
//! nobody listens on; `start_on` brings a server up there later. mailin's
//! `serve()` never returns, so each server runs on its own thread for the
//! rest of the test process.
//!
//! `Misbehaving` is what mailin cannot be made to do: a listener that
//! accepts connections and never says a word, or one that plays along up
//! to DATA and hangs up in the middle of the message.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mailin_embedded::response::{INTERNAL_ERROR, NO_MAILBOX, OK};
use mailin_embedded::{Action, Handler, Response, Server, SslConfig};

/// One message as the server saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
}

impl Received {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.data)
            .expect("a parseable message")
    }

    pub fn message_id(&self) -> String {
        self.parsed()
            .message_id()
            .map(|id| format!("<{id}>"))
            .expect("a Message-ID")
    }
}

#[derive(Default)]
struct State {
    /// Messages answered 250 at the end of DATA.
    accepted: Vec<Received>,
    /// Every complete DATA, accepted or not.
    attempted: Vec<Received>,
    /// Answer 451 to this many more messages.
    defer: usize,
    /// RCPT addresses answered 550.
    refuse: Vec<String>,
    /// Answer 552 (message too large) to this many more messages.
    too_large: usize,
}

#[derive(Clone)]
struct Recorder {
    state: Arc<Mutex<State>>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Recorder {
    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, from: &str) -> Response {
        self.from = from.to_string();
        self.to.clear();
        OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let bare = to.trim_matches(|c| c == '<' || c == '>').to_lowercase();
        if lock(&self.state).refuse.contains(&bare) {
            return NO_MAILBOX;
        }
        self.to.push(bare);
        OK
    }

    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        self.data.clear();
        OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let message = Received {
            from: self.from.clone(),
            to: self.to.clone(),
            data: std::mem::take(&mut self.data),
        };
        let mut state = lock(&self.state);
        state.attempted.push(message.clone());
        if state.too_large > 0 {
            state.too_large -= 1;
            // As after the 451 below: close, so mailin does not read QUIT
            // as message text.
            let mut refused =
                Response::custom(552, "5.3.4 Message size exceeds fixed limit".to_string());
            refused.action = Action::Close;
            return refused;
        }
        if state.defer > 0 {
            state.defer -= 1;
            // mailin stays in its DATA state after an error here and would
            // read the client's QUIT as message text, leaving it waiting for
            // a reply; a real server returns to the command state. Closing
            // after the 451 keeps the exchange short and still standard.
            let mut deferred = INTERNAL_ERROR;
            deferred.action = Action::Close;
            return deferred;
        }
        state.accepted.push(message);
        OK
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panicking test thread must not hide the messages from the others.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct SmtpServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl SmtpServer {
    /// A server on a free port.
    pub fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        SmtpServer::serve(listener)
    }

    /// A port with nothing listening on it (yet): connecting is refused.
    ///
    /// Taken below the kernel's ephemeral range (32768–60999 on Linux), and
    /// never twice in one test process: a port the kernel handed out with
    /// `bind(0)` and that was then freed can be given to any outgoing
    /// connection of a concurrent test before `start_on` binds it again.
    pub fn unused_port() -> u16 {
        use std::sync::atomic::{AtomicU32, Ordering};
        const FIRST: u32 = 20_000;
        const SPAN: u32 = 12_000;
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // Concurrent test processes (other worktrees) start apart.
        let offset = std::process::id() * 97 % SPAN;
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            assert!(
                n < SPAN,
                "no free loopback port left below the ephemeral range"
            );
            let port = u16::try_from(FIRST + (offset + n) % SPAN).expect("in range");
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }

    /// A server on `port` (one from `unused_port`).
    pub fn start_on(port: u16) -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the reserved port");
        SmtpServer::serve(listener)
    }

    fn serve(listener: TcpListener) -> SmtpServer {
        let port = listener.local_addr().expect("address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let handler = Recorder {
            state: Arc::clone(&state),
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        };
        let mut server = Server::new(handler);
        server
            .with_name("smtp.test")
            .with_num_threads(2)
            .with_tcp_listener(listener);
        server.with_ssl(SslConfig::None).expect("no TLS");
        std::thread::spawn(move || {
            // Returns only if the listener fails; the tests then see refusals.
            let _ = server.serve();
        });
        SmtpServer { port, state }
    }

    /// Messages accepted so far.
    pub fn accepted(&self) -> Vec<Received> {
        lock(&self.state).accepted.clone()
    }

    /// Messages received so far, including those answered 451.
    pub fn attempted(&self) -> Vec<Received> {
        lock(&self.state).attempted.clone()
    }

    /// Answer 451 (try again later) to the next `n` messages.
    pub fn defer_next(&self, n: usize) {
        lock(&self.state).defer = n;
    }

    /// Answer 550 to RCPT TO:`address` until `accept` is called.
    pub fn refuse(&self, address: &str) {
        lock(&self.state).refuse.push(address.to_lowercase());
    }

    pub fn accept(&self, address: &str) {
        lock(&self.state)
            .refuse
            .retain(|a| a != &address.to_lowercase());
    }

    /// Answer 552 (message size exceeds fixed limit) to the next `n` messages.
    pub fn too_large_next(&self, n: usize) {
        lock(&self.state).too_large = n;
    }
}

/// What a `Misbehaving` server does with each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Accept the connection, then never send a byte.
    Silent,
    /// Greet and accept EHLO, MAIL, RCPT and DATA, read the start of the
    /// message, then close the connection.
    HangUpInData,
}

/// A loopback server that misbehaves on purpose; `stop` closes it and every
/// connection it holds, freeing the port for a real server (`heal`).
pub struct Misbehaving {
    pub port: u16,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Misbehaving {
    pub fn start(how: Misbehaviour) -> Misbehaving {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("address").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (connections, stop) = (connections.clone(), stop.clone());
            std::thread::spawn(move || {
                // Held open until stopped: a silent server keeps its clients
                // waiting for a greeting that never comes.
                let mut held = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            connections.fetch_add(1, Ordering::SeqCst);
                            stream.set_nonblocking(false).expect("blocking");
                            if how == Misbehaviour::HangUpInData {
                                std::thread::spawn(move || hang_up_in_data(stream));
                            } else {
                                held.push(stream);
                            }
                        }
                        // Nothing to accept: look again shortly (this is the
                        // server's own loop, not a test waiting).
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Misbehaving {
            port,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Closes the listener and every connection it holds.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stops misbehaving: a real server takes over the same port.
    pub fn heal(mut self) -> SmtpServer {
        self.stop();
        SmtpServer::start_on(self.port)
    }
}

impl Drop for Misbehaving {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Plays a willing server up to the message, then hangs up halfway.
fn hang_up_in_data(stream: std::net::TcpStream) {
    use std::io::{BufRead, BufReader, Write};
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    let _ = writer.write_all(b"220 smtp.test ESMTP\r\n");
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let command = line.to_ascii_uppercase();
        let reply: &[u8] = if command.starts_with("EHLO") {
            b"250-smtp.test\r\n250 8BITMIME\r\n"
        } else if command.starts_with("DATA") {
            b"354 go ahead\r\n"
        } else {
            b"250 OK\r\n"
        };
        if writer.write_all(reply).is_err() {
            return;
        }
        if command.starts_with("DATA") {
            // Read a little of the message, then go away without a word.
            let mut some = String::new();
            let _ = reader.read_line(&mut some);
            let _ = writer.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}
