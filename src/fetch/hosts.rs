//! The per-host limit: at most `[fetch] per_host` fetches in flight to one
//! host at once, whatever `concurrency` allows overall. Several feeds of
//! one publisher (a site's per-section feeds) would otherwise all be
//! requested together at every cycle, which is what gets a client blocked.
//!
//! A fetch takes its host's permit before the global one, so fetches
//! waiting on a busy host never hold slots other hosts could use. The host
//! is the configured URL's (lower-cased by the URL parser, port ignored:
//! the limit is politeness towards a machine); a redirect to another host
//! is followed under the first host's permit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

/// Fetches in flight to one host when `[fetch] per_host` is unset.
pub const DEFAULT_PER_HOST: usize = 2;

/// One semaphore per host, made on first use. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct HostLimit {
    per_host: usize,
    hosts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl HostLimit {
    pub fn new(per_host: usize) -> HostLimit {
        HostLimit {
            per_host: per_host.max(1),
            hosts: Arc::default(),
        }
    }

    /// Waits for a slot for `url`'s host; the slot is free again when the
    /// permit is dropped. `None` only if the semaphore was closed, which
    /// this type never does.
    pub async fn acquire(&self, url: &Url) -> Option<OwnedSemaphorePermit> {
        let host = url.host_str().unwrap_or_default().to_string();
        let semaphore = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
            hosts
                .entry(host)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
                .clone()
        };
        semaphore.acquire_owned().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_host_is_limited_and_others_are_not() {
        let limit = HostLimit::new(2);
        let url = |s: &str| Url::parse(s).expect("url");
        let a1 = limit.acquire(&url("https://a.example.org/1.xml")).await;
        let a2 = limit
            .acquire(&url("https://A.example.org:8443/2.xml"))
            .await;
        assert!(a1.is_some() && a2.is_some());
        // A third fetch to a.example.org waits; b.example.org does not.
        let a3 = url("https://a.example.org/3.xml");
        let third = limit.acquire(&a3);
        tokio::pin!(third);
        assert!(
            futures_now(&mut third).is_none(),
            "a third slot on one host"
        );
        assert!(
            limit
                .acquire(&url("https://b.example.org/"))
                .await
                .is_some()
        );
        drop(a1);
        assert!(third.await.is_some(), "a freed slot is taken");
    }

    /// Polls a future once: its value if it is ready now.
    fn futures_now<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match std::pin::Pin::new(f).poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}
