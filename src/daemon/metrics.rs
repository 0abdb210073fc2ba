//! A minimal HTTP endpoint serving the metrics in Prometheus text format on
//! a loopback address. Any request gets the metrics; nothing else is served.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::status::Metrics;

pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut stream, _)) = accepted else { continue };
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    // The request itself does not matter; read what arrived and answer.
                    let mut buf = [0u8; 1024];
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut buf)).await;
                    let body = metrics.render();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(body.as_bytes()).await;
                });
            }
            _ = stop.changed() => return,
        }
    }
}
