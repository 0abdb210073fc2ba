//! A real HTTP/1.1 server on 127.0.0.1 that serves feed files and misbehaves
//! on purpose. Each path is given a `Reply`; every request is logged with
//! its headers and how many body bytes were sent back.
//!
//! Deliberately small and hand-written: it must be able to do what no
//! well-behaved server library will (stall after the headers, lie about
//! encodings, loop redirects).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};

/// How the server answers one path.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with a body; answers 304 when If-None-Match matches `etag`.
    Feed {
        body: Vec<u8>,
        content_type: String,
        etag: Option<String>,
        headers: Vec<(String, String)>,
    },
    /// Any status with headers and a short body.
    Status {
        code: u16,
        headers: Vec<(String, String)>,
    },
    /// A redirect to another path (or full URL).
    Redirect { code: u16, to: String },
    /// Sends headers promising a body, then sends nothing more.
    Stall,
    /// `reply`, but only after `after`: a slow server, for timeouts.
    Late {
        after: std::time::Duration,
        reply: Box<Reply>,
    },
    /// `reply`, held until `until` requests with this one's Host have been
    /// in flight together (or 10 s pass); from then on answered at once.
    /// The first requests wait for each other, so a client allowed `until`
    /// at a time is seen reaching exactly that peak.
    Gate { until: usize, reply: Box<Reply> },
}

impl Reply {
    pub fn feed(body: impl Into<Vec<u8>>, content_type: &str) -> Reply {
        Reply::Feed {
            body: body.into(),
            content_type: content_type.into(),
            etag: None,
            headers: Vec::new(),
        }
    }

    pub fn with_etag(self, tag: &str) -> Reply {
        match self {
            Reply::Feed {
                body,
                content_type,
                headers,
                ..
            } => Reply::Feed {
                body,
                content_type,
                etag: Some(tag.into()),
                headers,
            },
            other => other,
        }
    }

    pub fn with_header(self, name: &str, value: &str) -> Reply {
        match self {
            Reply::Feed {
                body,
                content_type,
                etag,
                mut headers,
            } => {
                headers.push((name.into(), value.into()));
                Reply::Feed {
                    body,
                    content_type,
                    etag,
                    headers,
                }
            }
            Reply::Status { code, mut headers } => {
                headers.push((name.into(), value.into()));
                Reply::Status { code, headers }
            }
            other => other,
        }
    }

    /// This reply, held until `until` requests to the host are in flight.
    pub fn gated(self, until: usize) -> Reply {
        Reply::Gate {
            until,
            reply: Box::new(self),
        }
    }

    /// This reply, sent `after` the request arrived.
    pub fn late(self, after: std::time::Duration) -> Reply {
        Reply::Late {
            after,
            reply: Box::new(self),
        }
    }

    pub fn status(code: u16) -> Reply {
        Reply::Status {
            code,
            headers: Vec::new(),
        }
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    /// Lower-cased header names.
    pub headers: HashMap<String, String>,
    pub status: u16,
    pub body_bytes: usize,
}

#[derive(Clone)]
pub struct FeedServer {
    port: u16,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    log: Arc<Mutex<Vec<Seen>>>,
    /// Requests in flight per Host header, and the most there ever were.
    in_flight: Arc<(Mutex<InFlight>, Condvar)>,
}

#[derive(Default)]
struct InFlight {
    now: HashMap<String, usize>,
    peak: HashMap<String, usize>,
}

impl FeedServer {
    pub fn start() -> FeedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let server = FeedServer {
            port: listener.local_addr().expect("addr").port(),
            routes: Arc::default(),
            log: Arc::default(),
            in_flight: Arc::default(),
        };
        let handler = server.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let handler = handler.clone();
                std::thread::spawn(move || handler.serve(stream));
            }
        });
        server
    }

    pub fn set(&self, path: &str, reply: Reply) {
        self.routes
            .lock()
            .expect("routes")
            .insert(path.to_string(), reply);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Requests for `path`, oldest first.
    pub fn seen(&self, path: &str) -> Vec<Seen> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }

    /// The most requests with Host `host` that were ever in flight at once.
    pub fn peak_in_flight(&self, host: &str) -> usize {
        let (state, _) = &*self.in_flight;
        let state = state.lock().expect("in flight");
        state.peak.get(host).copied().unwrap_or(0)
    }

    /// The Host header requests to this server carry.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn serve(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let host = headers.get("host").cloned().unwrap_or_default();
        {
            let (state, changed) = &*self.in_flight;
            let mut state = state.lock().expect("in flight");
            let now = state.now.entry(host.clone()).or_default();
            *now += 1;
            let now = *now;
            let peak = state.peak.entry(host.clone()).or_default();
            *peak = (*peak).max(now);
            changed.notify_all();
        }
        let reply = self
            .routes
            .lock()
            .expect("routes")
            .get(&path)
            .cloned()
            .unwrap_or(Reply::status(404));
        let reply = match reply {
            Reply::Gate { until, reply } => {
                let (state, changed) = &*self.in_flight;
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                let mut state = state.lock().expect("in flight");
                while state.peak.get(&host).copied().unwrap_or(0) < until {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    state = changed.wait_timeout(state, left).expect("in flight").0;
                }
                *reply
            }
            other => other,
        };
        let reply = match reply {
            Reply::Late { after, reply } => {
                std::thread::sleep(after);
                *reply
            }
            other => other,
        };
        // Answered from here on: no longer in flight. Counted before the
        // first byte is written, because a client that has read the whole
        // reply may start its next request before this thread runs again,
        // and would then seem to have one more in flight than it does.
        {
            let (state, changed) = &*self.in_flight;
            let mut state = state.lock().expect("in flight");
            if let Some(now) = state.now.get_mut(&host) {
                *now -= 1;
            }
            changed.notify_all();
        }
        let mut stream = stream;
        let (status, body_bytes) = match reply {
            Reply::Feed {
                body,
                content_type,
                etag,
                headers: extra,
            } => {
                let matches = etag.is_some() && headers.get("if-none-match") == etag.as_ref();
                let mut head = vec![("Content-Type".to_string(), content_type)];
                if let Some(tag) = &etag {
                    head.push(("ETag".into(), tag.clone()));
                }
                head.extend(extra);
                if matches {
                    write_response(&mut stream, 304, &head, &[]);
                    (304, 0)
                } else {
                    write_response(&mut stream, 200, &head, &body);
                    (200, body.len())
                }
            }
            Reply::Status {
                code,
                headers: extra,
            } => {
                let body = format!("status {code}");
                write_response(&mut stream, code, &extra, body.as_bytes());
                (code, body.len())
            }
            Reply::Redirect { code, to } => {
                let location = if to.starts_with("http") {
                    to
                } else {
                    self.url(&to)
                };
                write_response(&mut stream, code, &[("Location".into(), location)], &[]);
                (code, 0)
            }
            Reply::Stall => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 100000\r\n\r\n<rss>");
                let _ = stream.flush();
                // Hold the connection open until the client gives up.
                let mut sink = [0u8; 64];
                while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
                (200, 5)
            }
            Reply::Late { .. } | Reply::Gate { .. } => unreachable!("unwrapped above"),
        };
        self.log.lock().expect("log").push(Seen {
            path,
            headers,
            status,
            body_bytes,
        });
    }
}

fn write_response(stream: &mut TcpStream, code: u16, headers: &[(String, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}
