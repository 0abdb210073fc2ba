//! The mailman: reads the remote (IMAP) mailboxes the writer found due,
//! away from the writer thread, and hands each read back to it as plain
//! data, as the courier does for digests.
//!
//! Each read runs as a task of its own, bounded by the mailbox's timeout
//! per step (`mailbox::imap`) and, should that ever fail, by this task's
//! timer (`imap::deadline`). On stop the reads in flight are dropped: none
//! has recorded anything, so the next start reads the same messages again,
//! and the Message-ID/hash record makes that harmless.

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::writer::ToWriter;
use crate::config::{Mailbox, MailboxSource};
use crate::mailbox::{MailboxError, Messages, imap};

/// One read to make.
pub struct Job {
    pub mailbox: Mailbox,
    /// Where the last read stopped (the state's cursor).
    pub cursor: Option<imap::Cursor>,
}

/// Runs until `stop` or until the writer is gone.
pub async fn run(
    mut jobs: mpsc::UnboundedReceiver<Job>,
    writer: mpsc::Sender<ToWriter>,
    mut stop: watch::Receiver<bool>,
) {
    let mut reads = JoinSet::new();
    loop {
        tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => {
                    reads.spawn(read(job));
                }
                None => return,
            },
            Some(done) = reads.join_next(), if !reads.is_empty() => {
                let Ok((mailbox, result)) = done else {
                    continue;
                };
                let message = ToWriter::MailboxRead {
                    mailbox: Box::new(mailbox),
                    result: Box::new(result),
                };
                if writer.send(message).await.is_err() {
                    return;
                }
            }
            _ = stop.changed() => return,
        }
    }
}

async fn read(job: Job) -> (Mailbox, Result<Messages, MailboxError>) {
    let MailboxSource::Imap(config) = &job.mailbox.source else {
        // Only remote mailboxes are sent here; a local one reads as empty.
        return (job.mailbox, Ok(Messages::default()));
    };
    let result =
        match tokio::time::timeout(imap::deadline(config), imap::fetch(config, job.cursor)).await {
            Ok(result) => result,
            Err(_) => Err(MailboxError::Timeout {
                server: format!("{}:{}", config.host, config.port),
                what: "read",
                after: imap::deadline(config),
            }),
        };
    (job.mailbox, result)
}
