//! Where log lines go: journald when systemd started us, human-readable
//! stderr otherwise, JSON lines on request. `RUST_LOG` filters as usual.
//!
//! Fields are stable (`feed`, `seq`, `recipient`, `digest`, …; README
//! "Logs" lists them) so one item can be followed from poll to digest, and
//! each event is logged once, where it happens.

use std::io::IsTerminal;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// journald under systemd (JOURNAL_STREAM set), else human on stderr.
    #[default]
    Auto,
    Human,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(LogFormat::Auto),
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format {s:?}; use auto, human or json")),
        }
    }
}

/// Installs the global subscriber. `default_level` applies when RUST_LOG is
/// unset (commands want "warn", the daemon "info").
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let registry = tracing_subscriber::registry();
    let journald = (format == LogFormat::Auto && std::env::var_os("JOURNAL_STREAM").is_some())
        .then(|| tracing_journald::layer().ok())
        .flatten()
        // Our field names as they are (`FEED=`, `SEQ=`), not the crate's
        // default `F_FEED=`, so `journalctl -u treatywatch FEED=reuters`
        // works. None of them is a journal field of its own (the log field
        // for a digest's Message-ID is `digest`, not `message_id`, which
        // would be read as journald's MESSAGE_ID, a catalogue id); fields
        // journald sets itself start with `_` and cannot be written.
        .map(|layer| layer.with_field_prefix(None));
    // Each arm installs a differently typed stack, so each calls init itself.
    let _ = match (journald, format) {
        (Some(layer), _) => registry.with(filter()).with(layer).try_init(),
        (None, LogFormat::Json) => registry
            .with(filter())
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        // Colour only for a person at a terminal: a log file or a pipe
        // gets plain text, not escape codes (NO_COLOR is honoured too).
        (None, _) => registry
            .with(filter())
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(
                        std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
                    )
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}
