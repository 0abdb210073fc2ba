//! A minimal HTTP endpoint serving the metrics in Prometheus text format on
//! a loopback address: `GET /metrics` (and `HEAD`) answer them, any other
//! path is 404 and any other method 405, so a typo in a scrape config shows
//! as an error instead of as metrics.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::status::Metrics;

/// A request head larger than this is not a scrape.
const MAX_HEAD: usize = 8 << 10;
/// How long a client may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut stream, _)) = accepted else { continue };
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream))
                        .await
                        .unwrap_or_default();
                    let answer = answer(&head, &metrics);
                    let _ = stream.write_all(&answer).await;
                });
            }
            _ = stop.changed() => return,
        }
    }
}

/// Reads until the end of the request head (or `MAX_HEAD`, or EOF).
async fn read_head(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while head.len() < MAX_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    head
}

/// The whole response for a request head.
fn answer(head: &[u8], metrics: &Metrics) -> Vec<u8> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, extra, body, send_body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => (
            "200 OK",
            "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n",
            metrics.render(),
            method == "GET",
        ),
        (_, "/metrics") => (
            "405 Method Not Allowed",
            "Allow: GET, HEAD\r\nContent-Type: text/plain; charset=utf-8\r\n",
            "the metrics are read with GET\n".to_string(),
            true,
        ),
        _ => (
            "404 Not Found",
            "Content-Type: text/plain; charset=utf-8\r\n",
            "not found; the metrics are at /metrics\n".to_string(),
            method != "HEAD",
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if send_body {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(request: &str) -> String {
        let out = answer(request.as_bytes(), &Metrics::default());
        let text = String::from_utf8(out).expect("utf-8");
        text.lines().next().unwrap_or_default().to_string()
    }

    #[test]
    fn only_get_of_the_metrics_path_answers_metrics() {
        assert_eq!(status("GET /metrics HTTP/1.1\r\n\r\n"), "HTTP/1.1 200 OK");
        assert_eq!(
            status("GET /metrics?x=1 HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 200 OK"
        );
        assert_eq!(status("HEAD /metrics HTTP/1.1\r\n\r\n"), "HTTP/1.1 200 OK");
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), "HTTP/1.1 404 Not Found");
        assert_eq!(
            status("GET /metricsx HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 404 Not Found"
        );
        assert_eq!(
            status("POST /metrics HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 405 Method Not Allowed"
        );
        assert_eq!(status(""), "HTTP/1.1 404 Not Found");
    }
}
