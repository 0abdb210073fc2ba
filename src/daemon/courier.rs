//! The courier: delivers the digests the writer planned, away from the
//! writer thread, and hands each outcome back to it as plain data.
//!
//! One delivery at a time (digests are few; a recipient's arrive in order
//! anyway), each on a blocking thread of its own bounded twice: the
//! transport's own deadline (`[notify.smtp] timeout` per reply, three of
//! them for the whole message) and, should that ever fail, this task's
//! timer a little later. On stop the delivery in flight is abandoned, not
//! awaited: its attempt was recorded as begun and never as failed, so the
//! next start resends it at once with the same Message-ID and no backoff.
//!
//! Webhook requests do not queue behind mail or each other: each is posted
//! by a task of its own (the writer plans at most one per recipient at a
//! time, so a receiver's changes still arrive in order), bounded by its
//! webhook's `timeout`, so a receiver that never answers holds up nothing
//! but itself.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::writer::ToWriter;
use crate::config::Config;
use crate::notify::webhook::Poster;
use crate::notify::{self, Delivery, DeliveryError, Transport};

/// How much longer than the transport's own deadline a delivery may run
/// before the courier stops waiting for it.
const GRACE: Duration = Duration::from_secs(5);

/// One delivery to make, with the configuration it was planned under.
pub struct Job {
    pub delivery: Delivery,
    pub config: Arc<Config>,
}

/// Runs until `stop` or until the writer is gone.
pub async fn run(
    mut jobs: mpsc::UnboundedReceiver<Job>,
    writer: mpsc::Sender<ToWriter>,
    mut stop: watch::Receiver<bool>,
) {
    // The transport is kept between deliveries while the config is the same.
    let mut kept: Option<(Arc<Config>, Box<dyn Transport>)> = None;
    let mut poster: Option<Poster> = None;
    loop {
        let job = tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => job,
                None => return,
            },
            _ = stop.changed() => return,
        };
        if job.delivery.webhook.is_some() {
            let p = match &poster {
                Some(p) => Ok(p.clone()),
                None => Poster::new().inspect(|p| poster = Some(p.clone())),
            };
            tokio::spawn(post(p, job.delivery, writer.clone(), stop.clone()));
            continue;
        }
        let transport = match kept.take() {
            Some((config, t)) if Arc::ptr_eq(&config, &job.config) => Ok(t),
            _ => notify::open_transport(&job.config.notify)
                .map_err(|e| DeliveryError::Setup(e.to_string())),
        };
        let outcome = match transport {
            Err(e) => Err(e),
            Ok(mut transport) => {
                let limit = transport.deadline() + GRACE;
                let name = transport.describe();
                let delivery = job.delivery.clone();
                let attempt = tokio::task::spawn_blocking(move || {
                    let outcome = notify::deliver(transport.as_mut(), &delivery);
                    (transport, outcome)
                });
                tokio::select! {
                    finished = tokio::time::timeout(limit, attempt) => match finished {
                        Ok(Ok((transport, outcome))) => {
                            kept = Some((job.config.clone(), transport));
                            outcome
                        }
                        Ok(Err(panic)) => Err(DeliveryError::Setup(format!("the delivery thread failed: {panic}"))),
                        Err(_) => {
                            warn!(digest = %job.delivery.batch.message_id, "delivery overran its deadline; abandoned");
                            Err(DeliveryError::Abandoned { transport: name, secs: limit.as_secs() })
                        }
                    },
                    _ = stop.changed() => {
                        debug!(digest = %job.delivery.batch.message_id, "stopping: delivery in flight abandoned; it is resent at the next start");
                        return;
                    }
                }
            }
        };
        let done = ToWriter::Delivered {
            delivery: Box::new(job.delivery),
            outcome,
        };
        if writer.send(done).await.is_err() {
            return;
        }
    }
}

/// Posts one webhook request and hands the outcome to the writer; on stop
/// the attempt is abandoned like a mail delivery in flight.
async fn post(
    poster: Result<Poster, DeliveryError>,
    delivery: Delivery,
    writer: mpsc::Sender<ToWriter>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(hook) = delivery.webhook.clone() else {
        return;
    };
    let outcome = match poster {
        Err(e) => Err(e),
        Ok(poster) => {
            // The request is bounded by the webhook's timeout already; this
            // only guards against that bound ever failing.
            let limit = hook.timeout + GRACE;
            tokio::select! {
                finished = tokio::time::timeout(limit, poster.post(&hook, &delivery.batch)) => match finished {
                    Ok(outcome) => outcome.inspect(|()| notify::accepted(&delivery.batch)),
                    Err(_) => Err(DeliveryError::Abandoned { transport: format!("webhook {}", hook.id), secs: limit.as_secs() }),
                },
                _ = stop.changed() => {
                    debug!(digest = %delivery.batch.message_id, "stopping: webhook request in flight abandoned; it is resent at the next start");
                    return;
                }
            }
        }
    };
    let done = ToWriter::Delivered {
        delivery: Box::new(delivery),
        outcome,
    };
    let _ = writer.send(done).await;
}
