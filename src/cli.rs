//! The command line, as clap types. Parsing only: `commands` does the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::logging::LogFormat;

/// Watch news feeds for changes in which states are bound by which treaties.
///
/// treatywatch polls the feeds in its config, finds treaty events in news
/// items with keyword rules, keeps every observation in an append-only event
/// log (SQLite), projects each tracked state's status per treaty, and emails
/// a digest when one changes.
///
/// Exit status: 0 success, 1 a failure or difference was found, 2 the
/// configuration or the command line is invalid.
#[derive(Debug, Parser)]
#[command(name = "treatywatch", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Log format and default level: the daemon logs progress at info;
    /// one-shot commands only warnings (their output is the report).
    pub fn log_settings(&self) -> (LogFormat, &'static str) {
        match &self.command {
            Command::Run(args) => (args.log_format, "info"),
            _ => (LogFormat::Human, "warn"),
        }
    }
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The feeds.toml to use; the data files it names are found beside it.
    /// Default: the first that exists of $CONFIGURATION_DIRECTORY/feeds.toml
    /// (set by systemd), ./config/feeds.toml, /etc/treatywatch/feeds.toml.
    #[arg(long, global = true, env = "TREATYWATCH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Use this database instead of the one named by [storage] path.
    #[arg(long, global = true, value_name = "FILE")]
    pub db: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: poll on schedule, notify, reload on SIGHUP, stop on SIGTERM.
    ///
    /// Under systemd (Type=notify) it reports READY=1 once the database is
    /// open and the config loaded, pings the watchdog while the database
    /// answers, and keeps a STATUS= line current. Logs go to journald when
    /// systemd started it, else to stderr.
    Run(RunArgs),
    /// Poll every feed once, ingest, notify as the daemon would, then exit.
    Poll,
    /// Validate the configuration and every data file it references.
    ///
    /// Problems are printed as `file:line:col: message`; the exit status is 2
    /// when there is any.
    Check,
    /// Classify one text offline (first line is the title) and print detections.
    Classify(ClassifyArgs),
    /// Show the projected status of every tracked state for every tracked treaty.
    Status(StatusArgs),
    /// Print the event log.
    Events(EventsArgs),
    /// Show the pending digests (the default, `--preview`) or send them now (`--send`).
    ///
    /// Preview prints each pending digest as text, with whom it goes to and
    /// when it is due, and changes nothing. Send records withdrawals whose
    /// notice period has run, then delivers everything pending at once,
    /// ignoring the debounce window and retry backoff; exit 1 if any digest
    /// could not be delivered (it stays pending).
    Digest(DigestArgs),
    /// Rebuild the status table from the log and compare it with the stored one.
    ///
    /// Exits 1 when they differ; `--fix` then replaces the stored table with
    /// the rebuilt one (the log is the truth, the table a cache).
    Replay(ReplayArgs),
    /// Record an analyst's correction: STATE's status for TREATY is STATUS.
    ///
    /// Appends an event; history is never edited. Example:
    /// treatywatch assert UKR ottawa withdrawal_notified --date 2025-06-29 --note "UN C.N.X.2025"
    Assert(AssertArgs),
    /// Import the membership baseline: where every state stood with every
    /// treaty according to the data files under `[data] membership`.
    ///
    /// Each file names its source (a depositary's status list or a
    /// monitor's table) and the date it holds for. Its entries are appended
    /// as `baseline` events, never mailed; an entry already imported is
    /// skipped, so running it twice is running it once, and an edited file
    /// imports only the entries that changed. A status starts from its
    /// newest baseline; news moves it on, and a baseline never overrides
    /// newer news or an analyst's assertion. `poll` and `run` import at
    /// start (and `run` on SIGHUP), so this is for trying an edited file:
    /// treatywatch baseline --dry-run
    Baseline(BaselineArgs),
    /// Withdraw a wrong detection or assertion by appending a retraction.
    ///
    /// The status is re-folded without the retracted event. Example:
    /// treatywatch retract 42 --note "item was about Nigeria, not Niger"
    Retract(RetractArgs),
    /// Re-run the current rules over stored items and append the differences.
    ///
    /// After editing the rules (run `check` first): a detection the rules
    /// now make and the log lacks is appended; one they no longer make is
    /// retracted by an appended event naming the rules version. The status
    /// table follows. The status changes this causes correct the record of
    /// news already seen: they are listed, recorded as backfill, and never
    /// emailed. Running it again with the same rules appends nothing.
    Reclassify,
    /// Check the database with SQLite's integrity check and say what to do.
    ///
    /// Runs quick_check (every page and record) or, with --full,
    /// integrity_check (also every index against its table). Reads only;
    /// safe while the daemon runs. Exit 1 when the database is damaged,
    /// with how to restore a backup.
    Doctor(DoctorArgs),
    /// Write a consistent copy of the database to FILE, safe while the daemon runs.
    ///
    /// Uses SQLite's online backup API, checks the copy, and never
    /// overwrites a file. To restore: stop the daemon, move the database
    /// and its -wal/-shm files away, copy the backup in its place (see the
    /// README, "Backups").
    Backup(BackupArgs),
    /// Serve only the read-only web outputs (board, Atom, JSON API,
    /// calendar), without polling or mailing; beside a running daemon or
    /// not. `run` serves them too when `[web] listen` is set.
    ///
    /// Prints the address it serves on, then serves until SIGTERM or
    /// SIGINT. Example: treatywatch serve --listen 127.0.0.1:8080
    Serve(ServeArgs),
    /// Write the status table for a spreadsheet: CSV (one row per state ×
    /// treaty) or JSON (the lines of `status --json`).
    ///
    /// Cells a spreadsheet would read as a formula (starting with =, +, -
    /// or @) are prefixed with an apostrophe. Example:
    /// treatywatch export --format csv --as-of 2025-06-01 > status.csv
    Export(ExportArgs),
    /// Write the man pages and shell completions (for packaging).
    ///
    /// Hidden: the Debian package is built from the binary it ships, so
    /// its pages always describe that binary's commands and flags.
    #[command(hide = true)]
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen here instead of `[web] listen` (a non-loopback address needs
    /// `[web] token_file`); port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// csv or json.
    #[arg(long, value_name = "FORMAT")]
    pub format: ExportFormat,
    /// The table as it stood on this date (YYYY-MM-DD, end of that day UTC, or RFC 3339).
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    /// Also the states and treaties that are not tracked but appear in the log.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Write one man page per command (treatywatch.1, treatywatch-poll.1, …) here.
    #[arg(long, value_name = "DIR")]
    pub man: Option<PathBuf>,
    /// Write bash, zsh and fish completions here.
    #[arg(long, value_name = "DIR")]
    pub completions: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The full integrity_check instead of quick_check (slower on a large database).
    #[arg(long)]
    pub full: bool,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy; must not exist yet.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Log format: auto (journald under systemd, else human), human or json.
    #[arg(long, default_value = "auto", value_name = "FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// One JSON object per line: state, treaty, action, rule, evidence and
    /// the evidence's byte offsets `start`/`end` in the item text (title,
    /// a blank line, body).
    #[arg(long)]
    pub json: bool,
    /// The item's publication date (YYYY-MM-DD); stages the text dates well
    /// before it are history, stages it dates after it have not happened
    /// yet. Default: today; `none` judges no dates.
    #[arg(long, value_name = "DATE")]
    pub date: Option<String>,
    /// Also print how every cue was read: its event frame (the acting
    /// states and their agent class, the stage and the stage-table cell that
    /// gave it, the treaty), or which part of the frame dropped it.
    #[arg(long)]
    pub explain: bool,
    /// Classify every item of this feed file instead of a text.
    #[arg(long, value_name = "FEED_FILE", conflicts_with = "file")]
    pub feed: Option<PathBuf>,
    /// The text to classify; `-` or nothing reads standard input.
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// The table as it stood on this date (YYYY-MM-DD, end of that day UTC, or RFC 3339).
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    /// Also show states and treaties that are not tracked but appear in the log.
    #[arg(long)]
    pub all: bool,
    /// Only what the depositary has not confirmed: stages news reported
    /// longer ago than a mailbox's `confirm_within` (default 30 days) that
    /// no depositary notice carries, and notices no news reported.
    #[arg(long, conflicts_with = "as_of")]
    pub unconfirmed: bool,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Only events with a sequence number greater than SEQ.
    #[arg(long, value_name = "SEQ", default_value_t = 0)]
    pub since: i64,
    /// At most this many events.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

#[derive(Debug, Args)]
pub struct DigestArgs {
    /// Print the pending digest as text and send nothing.
    #[arg(long)]
    pub preview: bool,
    /// Send the pending digest now.
    #[arg(long, conflicts_with = "preview")]
    pub send: bool,
    /// With the preview: also write the HTML part a recipient would see to
    /// FILE (with several digests, FILE gets -2, -3 … before its extension).
    /// Open it in a browser.
    #[arg(long, value_name = "FILE", conflicts_with = "send")]
    pub html: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// When the rebuilt table differs, store it in place of the old one.
    #[arg(long)]
    pub fix: bool,
}

#[derive(Debug, Args)]
pub struct AssertArgs {
    /// ISO 3166-1 alpha-3 state code, e.g. UKR.
    pub state: String,
    /// Treaty id, e.g. ottawa.
    pub treaty: String,
    /// One of: unknown, non_party, signatory, party, withdrawal_announced,
    /// withdrawal_approved, withdrawal_notified, withdrawn.
    pub status: String,
    /// Why: the source or reasoning, kept in the log.
    #[arg(long)]
    pub note: String,
    /// The date the status took effect (YYYY-MM-DD or RFC 3339); default now.
    #[arg(long, value_name = "DATE")]
    pub date: Option<String>,
    /// Record history, not news: the status change is kept in the log and
    /// shown by `status`, but never mailed.
    #[arg(long)]
    pub no_mail: bool,
}

#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// Say what the import would append and which statuses it would set,
    /// and change nothing (safe while the daemon runs).
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RetractArgs {
    /// Sequence number of the event to retract (see `treatywatch events`).
    pub seq: i64,
    /// Why the event is wrong, kept in the log.
    #[arg(long)]
    pub note: String,
}
