//! The read-only web outputs: one HTTP server (hyper) for the status board,
//! the Atom feeds, the JSON API, the calendar and `/metrics`.
//!
//! This file owns the server and the routing: accepting connections,
//! the bearer token, the route table (404 for unknown paths, 405 for
//! methods other than GET and HEAD), conditional GET (an ETag on every
//! answer, Last-Modified where the content has a date, 304 when the
//! reader's copy is current) and the security headers. Each page is a
//! function in `board.rs`, `atom.rs`, `api.rs` or `ics.rs` from a `Cx`
//! (config, a read-only store, the query, the base URL, `now`) to a
//! `Reply`.
//!
//! Nothing here writes. Pages read the database on tokio's blocking
//! threads through read-only connections of their own (a small pool), so
//! the daemon's writer thread stays the only writer and no async task
//! waits on SQLite. It never decides a status either: what it shows is the
//! status table, the log and the fold, as `status` and `events` do.

mod api;
mod atom;
mod board;
mod html;
mod ics;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{info, warn};
use url::Url;

use crate::config::{self, Config, ConfigError, TokenFile, Treaty};
use crate::daemon::Metrics;
use crate::domain::Policy;
use crate::store::{Store, StoreError};

/// Read-only connections kept open between requests.
const POOL: usize = 2;
/// Pages rendered at once: the machine's cores are the writer's too.
const RENDERING: usize = 2;
/// Connections served at once; more wait in the kernel's backlog.
const CONNECTIONS: usize = 64;
/// A client gets this long to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// No connection is kept longer, keep-alive or not.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// The largest request head read (request line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// Tokens shorter than this are refused: the token is all that guards a
/// board exposed beyond this machine.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "nothing to serve: add [web] listen = \"127.0.0.1:8080\" to {}, or pass --listen ADDR",
        .0.display()
    )]
    NotConfigured(PathBuf),
    #[error(
        "refusing to serve on {addr}: it is not a loopback address and no token is set; add token_file = \"$CREDENTIALS_DIRECTORY/web-token\" under [web], or listen on 127.0.0.1"
    )]
    Exposed { addr: SocketAddr },
    #[error("cannot read the web token file {}: {source}; fix token_file under [web] (with systemd, LoadCredential=web-token:/etc/treatywatch/web-token puts it in $CREDENTIALS_DIRECTORY)", path.display())]
    Token {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "token_file names the systemd credential {name:?}, but $CREDENTIALS_DIRECTORY is not set: run treatywatch from a unit with LoadCredential={name}:/etc/treatywatch/{name}, or give token_file a plain path"
    )]
    NoCredentials { name: String },
    #[error("the web token in {} is shorter than {MIN_TOKEN_LEN} characters; put a long random one there, e.g. `openssl rand -hex 32 > {}`", path.display(), path.display())]
    WeakToken { path: PathBuf },
    #[error("cannot listen on {addr}: {source}; change [web] listen")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the web server: {0}")]
    Io(#[from] std::io::Error),
}

/// A bound web server, ready to run.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

/// What every request reads.
struct Shared {
    db: PathBuf,
    config: watch::Receiver<Arc<Config>>,
    token: Option<String>,
    metrics: Option<Arc<Metrics>>,
    listen: SocketAddr,
    pool: Mutex<Vec<Store>>,
    rendering: Semaphore,
}

impl Server {
    /// Reads the token and binds `listen`. Refuses a non-loopback address
    /// without a token, whatever the config said.
    pub async fn bind(
        listen: SocketAddr,
        token: Option<&TokenFile>,
        db: PathBuf,
        config: watch::Receiver<Arc<Config>>,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Server, WebError> {
        let token = token.map(read_token).transpose()?;
        if token.is_none() && !listen.ip().is_loopback() {
            return Err(WebError::Exposed { addr: listen });
        }
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| WebError::Bind {
                addr: listen,
                source,
            })?;
        let listen = listener.local_addr()?;
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                db,
                config,
                token,
                metrics,
                listen,
                pool: Mutex::new(Vec::new()),
                rendering: Semaphore::new(RENDERING),
            }),
        })
    }

    /// The address actually bound (port 0 asks the kernel for one).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.listen
    }

    /// Serves until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let connections = Arc::new(Semaphore::new(CONNECTIONS));
        loop {
            let permit = tokio::select! {
                p = connections.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = stop.changed() => return,
            };
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = stop.changed() => return,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: wait, not spin.
                    warn!("web: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let shared = self.shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(handle(shared, req).await) }
                });
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(MAX_HEAD);
                let connection = http.serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
                drop(permit);
            });
        }
    }
}

/// `treatywatch serve`: only the web server, read-only, beside a daemon or
/// not, until SIGTERM or SIGINT.
pub fn serve(
    config_path: &Path,
    db_override: Option<&Path>,
    listen_override: Option<SocketAddr>,
    ready: &mut dyn std::io::Write,
) -> Result<(), WebError> {
    let config = Arc::new(config::load(config_path)?);
    let db = db_override.map_or_else(|| config.db_path.clone(), Path::to_path_buf);
    // Fail at start, not at the first request, on a database that is
    // missing or of another schema version.
    drop(Store::open_read_only(&db)?);
    let settings = config.web.as_ref();
    let listen = listen_override
        .or(settings.map(|w| w.listen))
        .ok_or_else(|| WebError::NotConfigured(config_path.to_path_buf()))?;
    let token = settings.and_then(|w| w.token.as_ref());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let (_config_tx, config_rx) = watch::channel(config.clone());
        let server = Server::bind(listen, token, db, config_rx, None).await?;
        let addr = server.local_addr();
        writeln!(ready, "treatywatch: serving http://{addr}/ (read-only)")?;
        ready.flush()?;
        info!(%addr, "serving the web outputs");
        let (stop_tx, stop_rx) = watch::channel(false);
        let running = tokio::spawn(server.run(stop_rx));
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        let _ = stop_tx.send(true);
        let _ = running.await;
        Ok::<(), WebError>(())
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// The token from its file, trailing newline ignored.
fn read_token(file: &TokenFile) -> Result<String, WebError> {
    let path = match file {
        TokenFile::Path(p) => p.clone(),
        TokenFile::Credential(name) => match std::env::var_os("CREDENTIALS_DIRECTORY") {
            Some(dir) => Path::new(&dir).join(name),
            None => return Err(WebError::NoCredentials { name: name.clone() }),
        },
    };
    let text = std::fs::read_to_string(&path).map_err(|source| WebError::Token {
        path: path.clone(),
        source,
    })?;
    let token = text.trim_end_matches(['\n', '\r']).to_string();
    if token.chars().count() < MIN_TOKEN_LEN {
        return Err(WebError::WeakToken { path });
    }
    Ok(token)
}

/// The routes. Path segments are matched as sent: codes and ids are ASCII,
/// so anything percent-encoded is simply not found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Board,
    Feeds,
    History(String, String),
    ChangesAtom,
    TreatyAtom(String),
    StateAtom(String),
    ApiStatus,
    ApiEvents,
    ApiKey(String, String),
    Calendar,
    Metrics,
}

impl Route {
    fn parse(path: &str) -> Option<Route> {
        let rest = path.strip_prefix('/')?;
        let segments: Vec<&str> = rest.split('/').collect();
        let state = |s: &str| s.to_ascii_uppercase();
        Some(match segments.as_slice() {
            [""] => Route::Board,
            ["feeds"] => Route::Feeds,
            ["changes.atom"] => Route::ChangesAtom,
            ["effective.ics"] => Route::Calendar,
            ["metrics"] => Route::Metrics,
            ["api", "status"] => Route::ApiStatus,
            ["api", "events"] => Route::ApiEvents,
            ["api", "state", s, t] if !s.is_empty() && !t.is_empty() => {
                Route::ApiKey(state(s), t.to_string())
            }
            ["treaty", f] => Route::TreatyAtom(f.strip_suffix(".atom")?.to_string()),
            ["state", f] => Route::StateAtom(state(f.strip_suffix(".atom")?)),
            ["state", s, t] if !s.is_empty() && !t.is_empty() => {
                Route::History(state(s), t.to_string())
            }
            _ => return None,
        })
    }
}

/// One answer, before conditional GET and headers are applied.
pub(crate) struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    /// When the content last changed, for Last-Modified.
    modified: Option<DateTime<Utc>>,
    /// Extra headers (Allow, Link, WWW-Authenticate).
    headers: Vec<(header::HeaderName, String)>,
}

const HTML: &str = "text/html; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

impl Reply {
    fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: StatusCode::OK,
            content_type,
            body: body.into(),
            modified: None,
            headers: Vec::new(),
        }
    }

    fn html(body: String) -> Reply {
        Reply::ok(HTML, body)
    }

    /// A plain-text error saying what to change.
    fn error(status: StatusCode, message: impl Into<String>) -> Reply {
        let mut body = message.into();
        body.push('\n');
        Reply {
            status,
            ..Reply::ok(TEXT, body)
        }
    }

    fn modified(mut self, at: Option<DateTime<Utc>>) -> Reply {
        self.modified = at;
        self
    }

    fn header(mut self, name: header::HeaderName, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }
}

/// What a page gets to work with.
pub(crate) struct Cx<'a> {
    config: &'a Config,
    store: &'a Store,
    query: Query,
    /// Absolute URL of the server's root, ending in '/'.
    base: Url,
    now: DateTime<Utc>,
}

impl Cx<'_> {
    fn policy(&self) -> Policy {
        Policy {
            min_sources: self.config.treaties.min_sources(),
        }
    }

    /// An absolute link to `path` (no leading '/') on this server.
    fn url(&self, path: &str) -> String {
        self.base
            .join(path)
            .map_or_else(|_| format!("{}{path}", self.base), String::from)
    }

    /// `?as_of=`: a date (the end of that day, UTC) or an RFC 3339 time,
    /// as `status --as-of` reads it. Empty means now.
    fn as_of(&self) -> Result<Option<DateTime<Utc>>, Reply> {
        match self.query.get("as_of").map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => parse_as_of(s).map(Some).ok_or_else(|| {
                Reply::error(
                    StatusCode::BAD_REQUEST,
                    format!("as_of={s:?} is not a date; write YYYY-MM-DD (e.g. 2025-06-29) or an RFC 3339 time"),
                )
            }),
        }
    }

    fn treaty(&self, id: &str) -> Result<&Treaty, Reply> {
        self.config.treaties.get(id).ok_or_else(|| {
            Reply::error(
                StatusCode::NOT_FOUND,
                format!("no treaty {id:?} in the catalogue; the board (/) links every tracked one"),
            )
        })
    }

    fn state(&self, code: &str) -> Result<(), Reply> {
        match self.config.gazetteer.state(code) {
            Some(_) => Ok(()),
            None => Err(Reply::error(
                StatusCode::NOT_FOUND,
                format!(
                    "no state {code:?} in the gazetteer; use an ISO 3166-1 alpha-3 code such as UKR"
                ),
            )),
        }
    }
}

pub(crate) fn parse_as_of(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let end = NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999)?;
        return Some(d.and_time(end).and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The query string, decoded.
#[derive(Debug, Default, Clone)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, repeated or comma-separated, empty ones left out.
    fn list(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

/// When a notified withdrawal takes effect, in words: the date, and the
/// armed-conflict caveat where the treaty has one (Ottawa Art. 20(3):
/// withdrawal during an armed conflict waits for its end, and treatywatch
/// cannot know who is at war).
pub(crate) fn effective_note(treaty: &Treaty, effective: NaiveDate, now: DateTime<Utc>) -> String {
    let article = if treaty.withdrawal_article.is_empty() {
        "the treaty".to_string()
    } else {
        treaty.withdrawal_article.clone()
    };
    let passed = effective <= now.date_naive();
    match (treaty.armed_conflict_clause, passed) {
        (false, false) => format!("expected to take effect on {effective}"),
        (false, true) => format!("the notice period ran out on {effective}"),
        (true, false) => format!(
            "expected to take effect on {effective}, later if the state is then in an armed conflict ({article})"
        ),
        (true, true) => format!(
            "the notice period ran out on {effective}, but {article} delays the effect while the state is in an armed conflict, so treatywatch has not marked it withdrawn"
        ),
    }
}

/// `effective_note` as a sentence of its own: "Expected to take effect …".
pub(crate) fn effective_sentence(
    treaty: &Treaty,
    effective: NaiveDate,
    now: DateTime<Utc>,
) -> String {
    let note = effective_note(treaty, effective, now);
    let mut chars = note.chars();
    match chars.next() {
        Some(c) => format!("Withdrawal: {}{}.", c.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

/// The parts of a request the pages use.
struct Head {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
}

async fn handle(shared: Arc<Shared>, req: hyper::Request<Incoming>) -> Response<Full<Bytes>> {
    let head = Head {
        method: req.method().clone(),
        path: req.uri().path().to_string(),
        query: req.uri().query().map(str::to_string),
        headers: req.headers().clone(),
    };
    drop(req);
    let is_html = |r: &Reply| r.content_type == HTML;
    let reply = answer(&shared, &head).await;
    finish(reply, &head, is_html)
}

async fn answer(shared: &Arc<Shared>, head: &Head) -> Reply {
    if let Some(token) = &shared.token
        && !authorized(&head.headers, token)
    {
        return Reply::error(
            StatusCode::UNAUTHORIZED,
            "this server needs its token: send `Authorization: Bearer TOKEN` (curl -H), or basic auth with the token as the password",
        )
        .header(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"treatywatch\", charset=\"UTF-8\"".into(),
        )
        .header(header::WWW_AUTHENTICATE, "Bearer realm=\"treatywatch\"".into());
    }
    let Some(route) = Route::parse(&head.path) else {
        return Reply::error(
            StatusCode::NOT_FOUND,
            "not found; the board is at /, the feeds at /changes.atom, the API under /api/status",
        );
    };
    if head.method != Method::GET && head.method != Method::HEAD {
        return Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "this server only reads: use GET",
        )
        .header(header::ALLOW, "GET, HEAD".into());
    }
    if route == Route::Metrics {
        return match &shared.metrics {
            Some(m) => Reply::ok("text/plain; version=0.0.4", m.render()),
            None => Reply::error(
                StatusCode::NOT_FOUND,
                "metrics are served by `treatywatch run`, not by `serve`",
            ),
        };
    }
    let config = shared.config.borrow().clone();
    let base = base_url(&config, &head.headers, shared.listen);
    let query = Query::parse(head.query.as_deref());
    let Ok(_slot) = shared.rendering.acquire().await else {
        return Reply::error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let job = {
        let shared = shared.clone();
        tokio::task::spawn_blocking(move || {
            shared.with_store(|store| {
                let cx = Cx {
                    config: &config,
                    store,
                    query,
                    base,
                    now: Utc::now(),
                };
                page(&route, &cx)
            })
        })
    };
    match job.await {
        Ok(Ok(reply)) => reply,
        Ok(Err(StoreError::Missing { path })) => Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the database {} does not exist yet; `treatywatch poll` or `run` creates it",
                path.display()
            ),
        ),
        Ok(Err(e)) => {
            warn!(path = %head.path, "web: {e}");
            Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read the database: {e}"),
            )
        }
        Err(e) => {
            warn!(path = %head.path, "web: a page failed: {e}");
            Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "this page failed; the log says why",
            )
        }
    }
}

impl Shared {
    /// Runs `f` with a read-only connection from the pool (or a new one).
    /// A connection that saw an error is not put back.
    fn with_store<T>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let kept = self.pool.lock().map(|mut p| p.pop()).unwrap_or(None);
        let store = match kept {
            Some(s) => s,
            None => Store::open_read_only(&self.db)?,
        };
        let result = f(&store);
        if result.is_ok()
            && let Ok(mut pool) = self.pool.lock()
            && pool.len() < POOL
        {
            pool.push(store);
        }
        result
    }
}

fn page(route: &Route, cx: &Cx<'_>) -> Result<Reply, StoreError> {
    cx.store.snapshot(|_| match route {
        Route::Board => board::board(cx),
        Route::Feeds => board::feeds(cx),
        Route::History(state, treaty) => board::history(cx, state, treaty),
        Route::ChangesAtom => atom::feed(cx, atom::Scope::All),
        Route::TreatyAtom(t) => atom::feed(cx, atom::Scope::Treaty(t)),
        Route::StateAtom(s) => atom::feed(cx, atom::Scope::State(s)),
        Route::ApiStatus => api::status(cx),
        Route::ApiEvents => api::events(cx),
        Route::ApiKey(state, treaty) => api::key(cx, state, treaty),
        Route::Calendar => ics::calendar(cx),
        Route::Metrics => Ok(Reply::error(StatusCode::NOT_FOUND, "not here")),
    })
}

/// The server's root as readers reach it: `[web] base_url`, else from the
/// Host header when it looks like a host, else the bound address.
fn base_url(config: &Config, headers: &HeaderMap, listen: SocketAddr) -> Url {
    if let Some(base) = config.web.as_ref().and_then(|w| w.base_url.clone()) {
        return base;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .map_or_else(|| listen.to_string(), str::to_string);
    Url::parse(&format!("http://{host}/"))
        .or_else(|_| Url::parse(&format!("http://{listen}/")))
        .unwrap_or_else(|_| Url::parse("http://127.0.0.1/").expect("a literal URL parses"))
}

/// `Authorization: Bearer TOKEN`, or basic auth with the token as the
/// password (any user name): what a browser can send without JavaScript.
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    use base64::Engine as _;
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return same(credentials.as_bytes(), token.as_bytes());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) else {
            return false;
        };
        let password = match decoded.iter().position(|&b| b == b':') {
            Some(at) => &decoded[at + 1..],
            None => return false,
        };
        return same(password, token.as_bytes());
    }
    false
}

/// Equality that takes as long however early the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Headers, ETag and conditional GET (RFC 9110 §13): If-None-Match wins
/// over If-Modified-Since; a match is answered 304 without a body.
fn finish(reply: Reply, head: &Head, is_html: impl Fn(&Reply) -> bool) -> Response<Full<Bytes>> {
    let html = is_html(&reply);
    let mut builder = Response::builder()
        .status(reply.status)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer");
    if html {
        // A second line of defence behind the escaping: no script runs,
        // nothing loads from elsewhere, the page cannot be framed.
        builder = builder.header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        );
    }
    for (name, value) in &reply.headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            builder = builder.header(name, v);
        }
    }
    let mut not_modified = false;
    if reply.status == StatusCode::OK {
        let tag = etag(&reply.body);
        let modified = reply.modified.map(http_date);
        not_modified = match head.headers.get(header::IF_NONE_MATCH) {
            Some(inm) => inm.to_str().is_ok_and(|v| {
                v.split(',')
                    .map(|t| t.trim().trim_start_matches("W/"))
                    .any(|t| t == tag || t == "*")
            }),
            None => match (reply.modified, head.headers.get(header::IF_MODIFIED_SINCE)) {
                (Some(at), Some(ims)) => ims
                    .to_str()
                    .ok()
                    .and_then(|s| DateTime::parse_from_rfc2822(s).ok())
                    .is_some_and(|since| at.timestamp() <= since.timestamp()),
                _ => false,
            },
        };
        builder = builder
            .header(header::ETAG, tag)
            .header(header::CACHE_CONTROL, "no-cache");
        if let Some(m) = modified {
            builder = builder.header(header::LAST_MODIFIED, m);
        }
    }
    let response = if not_modified {
        builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Full::new(Bytes::new()))
    } else {
        builder
            .header(header::CONTENT_TYPE, reply.content_type)
            .body(Full::new(Bytes::from(reply.body)))
    };
    response.unwrap_or_else(|_| {
        let mut r = Response::new(Full::new(Bytes::from_static(b"internal error\n")));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

/// A strong validator: a hash of the bytes sent.
fn etag(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(body);
    let mut tag = String::from("\"");
    for b in digest.iter().take(12) {
        tag.push_str(&format!("{b:02x}"));
    }
    tag.push('"');
    tag
}

/// IMF-fixdate (RFC 9110 §5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT".
fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let check = |path: &str, expected: Option<Route>| {
            assert_eq!(Route::parse(path), expected, "{path}");
        };
        check("/", Some(Route::Board));
        check("/feeds", Some(Route::Feeds));
        check(
            "/state/ukr/ottawa",
            Some(Route::History("UKR".into(), "ottawa".into())),
        );
        check("/state/UKR.atom", Some(Route::StateAtom("UKR".into())));
        check(
            "/treaty/ottawa.atom",
            Some(Route::TreatyAtom("ottawa".into())),
        );
        check(
            "/api/state/UKR/ottawa",
            Some(Route::ApiKey("UKR".into(), "ottawa".into())),
        );
        for bad in [
            "",
            "/feeds/",
            "/state/UKR",
            "/state//ottawa",
            "/treaty/ottawa",
            "/x",
            "//",
            "/api",
            "/api/state/UKR",
            "/state/UKR/ottawa/more",
            "/%2e%2e/etc",
        ] {
            check(bad, None);
        }
    }

    #[test]
    fn bearer_and_basic_tokens() {
        let token = "0123456789abcdef0123";
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            authorized(&h, token)
        };
        assert!(with("Bearer 0123456789abcdef0123"));
        assert!(with("bearer  0123456789abcdef0123 "));
        // "reader:0123456789abcdef0123"
        assert!(with("Basic cmVhZGVyOjAxMjM0NTY3ODlhYmNkZWYwMTIz"));
        assert!(!with("Bearer 0123456789abcdef012"));
        assert!(!with("Basic !!!"));
        assert!(!with("Basic cmVhZGVy"));
        assert!(!with("Token 0123456789abcdef0123"));
        assert!(!authorized(&HeaderMap::new(), token));
    }

    #[test]
    fn as_of_dates() {
        assert_eq!(
            parse_as_of("2025-06-29").map(|t| t.to_rfc3339()),
            Some("2025-06-29T23:59:59.999999+00:00".into())
        );
        assert!(parse_as_of("2025-06-29T10:00:00+02:00").is_some());
        for bad in ["", "yesterday", "2025-13-01", "99999999-01-01", "\u{0}"] {
            assert!(parse_as_of(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn dates_for_headers() {
        let at = DateTime::parse_from_rfc3339("1994-11-06T08:49:37Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(http_date(at), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(DateTime::parse_from_rfc2822(&http_date(at)).is_ok());
    }
}
