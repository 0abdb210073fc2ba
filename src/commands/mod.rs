//! What each subcommand does: glue from config, store and domain to text on
//! stdout. Every command returns an `Outcome` (the exit status) or a
//! `CommandError`; `main` only maps those to exit codes.

mod baseline;
mod classify;
mod digest;
mod doctor;
mod export;
mod generate;
mod log;
mod mailbox;
mod poll;
mod reclassify;
pub(crate) mod status;

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use crate::classify::{Classifier, rule_tests};
use crate::cli::{Cli, Command};
use crate::config::{self, Config, ConfigError, Diagnostic};
use crate::domain::Policy;
use crate::notify::NotifyError;
use crate::store::{Store, StoreError};

/// How a command ended when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The command ran but found a failure or a difference (exit 1).
    Findings,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error(transparent)]
    Web(#[from] crate::web::WebError),
    /// The user asked for something that cannot be done; the message says why.
    #[error("{0}")]
    Usage(String),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// The configuration is valid but some rule tests fail: the rules do not
    /// read the examples as the examples say.
    #[error(
        "{}\ntreatywatch: {} of {total} rule tests passed; fix the rule or the example each line above names, then run check again",
        render_failures(.failures),
        total - .failures.len()
    )]
    RuleTests {
        failures: Vec<Diagnostic>,
        total: usize,
    },
}

fn render_failures(failures: &[Diagnostic]) -> String {
    let lines: Vec<String> = failures.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

impl CommandError {
    /// Exit status for this error: 2 when the user must fix the input.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Config(_) | CommandError::Usage(_) | CommandError::RuleTests { .. } => 2,
            CommandError::Web(
                crate::web::WebError::Exposed { .. }
                | crate::web::WebError::NotConfigured(_)
                | crate::web::WebError::WeakToken { .. },
            ) => 2,
            _ => 1,
        }
    }
}

pub type Result<T, E = CommandError> = std::result::Result<T, E>;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<Outcome> {
    let (config_arg, db_override) = (cli.global.config.clone(), cli.global.db.clone());
    run_command(cli).map_err(|e| match e {
        // However a command finds damage, it says what to do about it.
        CommandError::Store(StoreError::Sql(source)) if crate::store::is_corruption(&source) => {
            let path = db_override
                .or_else(|| {
                    let ctx = Context {
                        config_arg: config_arg.clone(),
                        db_override: None,
                    };
                    ctx.config().ok().map(|c| c.db_path)
                })
                .unwrap_or_default();
            CommandError::Store(StoreError::Damaged {
                path,
                problems: vec![source.to_string()],
            })
        }
        e => e,
    })
}

fn run_command(cli: Cli) -> Result<Outcome> {
    let out = &mut std::io::stdout().lock();
    let ctx = Context {
        config_arg: cli.global.config,
        db_override: cli.global.db,
    };
    match cli.command {
        Command::Check => check(&ctx, out),
        Command::Status(args) => status::status(&ctx, &args, out),
        Command::Events(args) => log::events(&ctx, &args, out),
        Command::Replay(args) => status::replay(&ctx, &args, out),
        Command::Assert(args) => log::assert(&ctx, &args, out),
        Command::Retract(args) => log::retract(&ctx, &args, out),
        Command::Baseline(args) => baseline::baseline(&ctx, &args, out),
        Command::Run(_) => {
            match crate::daemon::run(&ctx.config_path()?, ctx.db_override.as_deref()) {
                Ok(()) => Ok(Outcome::Success),
                Err(crate::daemon::DaemonError::Config(e)) => Err(CommandError::Config(e)),
                Err(e) => Err(e.into()),
            }
        }
        Command::Poll => poll::poll(&ctx, out),
        Command::Classify(args) => classify::classify(&ctx, &args, out),
        Command::Digest(args) => digest::digest(&ctx, &args, out),
        Command::Reclassify => reclassify::reclassify(&ctx, out),
        Command::Doctor(args) => doctor::doctor(&ctx, &args, out),
        Command::Backup(args) => doctor::backup(&ctx, &args, out),
        Command::Export(args) => export::export(&ctx, &args, out),
        Command::Serve(args) => {
            match crate::web::serve(
                &ctx.config_path()?,
                ctx.db_override.as_deref(),
                args.listen,
                out,
            ) {
                Ok(()) => Ok(Outcome::Success),
                Err(crate::web::WebError::Config(e)) => Err(CommandError::Config(e)),
                Err(e) => Err(e.into()),
            }
        }
        Command::Generate(args) => generate::generate(&args, out),
    }
}

/// What every command starts from.
struct Context {
    /// `--config` or `TREATYWATCH_CONFIG`; `None`: search (`config::locate`).
    config_arg: Option<PathBuf>,
    db_override: Option<PathBuf>,
}

impl Context {
    /// The config file: the one named, or the first found where systemd,
    /// a checkout and the package put it.
    fn config_path(&self) -> Result<PathBuf> {
        Ok(config::locate(
            self.config_arg.as_deref(),
            &config::ServiceDirs::from_env(),
        )?)
    }

    fn config(&self) -> Result<Config> {
        Ok(config::load(&self.config_path()?)?)
    }

    fn db_path<'a>(&'a self, config: &'a Config) -> &'a Path {
        self.db_override.as_deref().unwrap_or(&config.db_path)
    }

    /// The database, to write: takes the writer lock (see `store::lock`),
    /// creating and migrating the database if needed.
    fn store(&self, config: &Config) -> Result<Store> {
        Ok(Store::open(self.db_path(config))?)
    }

    /// The database, to read only: no lock, and a missing one is an error.
    fn read_store(&self, config: &Config) -> Result<Store> {
        Ok(Store::open_read_only(self.db_path(config))?)
    }
}

fn policy(config: &Config) -> Policy {
    Policy {
        min_sources: config.treaties.min_sources(),
    }
}

/// Validates the configuration, then runs the rule tests with the rules as
/// compiled: an edit that breaks an example is caught before it is loaded.
fn check(ctx: &Context, out: &mut dyn Write) -> Result<Outcome> {
    let config = ctx.config()?;
    // What sends and mailbox reads would fail on: the config is valid, but
    // the secret or the folder it names is not there (or not readable).
    let missing = config::preflight::check(&config, &|var| std::env::var_os(var));
    if !missing.is_empty() {
        return Err(ConfigError::Invalid(missing).into());
    }
    let total = config.rule_tests.len();
    if total > 0 {
        let classifier = Classifier::new(&config.gazetteer, &config.treaties, &config.rules);
        let failures = rule_tests::run(&classifier, &config.rule_tests);
        if !failures.is_empty() {
            return Err(CommandError::RuleTests {
                failures: failures.iter().map(|f| f.diagnostic()).collect(),
                total,
            });
        }
    }
    let enabled = config.feeds.iter().filter(|f| f.enabled).count();
    let baseline = match config.membership.len() {
        0 => "no membership baseline ([data] membership)".to_string(),
        n => format!(
            "baseline from {}",
            plural(n, "membership file", "membership files")
        ),
    };
    let tests = match total {
        0 => "no rule tests ([data] rule_tests)".to_string(),
        1 => "1 rule test passed".to_string(),
        n => format!("{n} rule tests passed"),
    };
    writeln!(
        out,
        "{}: ok — {} feeds ({} enabled), {} treaties, {} states, tracking {} states × {} treaties; {baseline}; rules version {}, {tests}",
        config.path.display(),
        config.feeds.len(),
        enabled,
        config.treaties.list.len(),
        config.gazetteer.states.len(),
        config.tracking.states.len(),
        config.tracking.treaties.len(),
        config.rules_version,
    )?;
    Ok(Outcome::Success)
}

/// Parses a user-supplied date: `YYYY-MM-DD` (at `time_of_day` UTC) or RFC 3339.
fn parse_date(s: &str, what: &str, time_of_day: NaiveTime) -> Result<DateTime<Utc>> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_time(time_of_day).and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            CommandError::Usage(format!(
                "{what} {s:?} is not a date; write YYYY-MM-DD (e.g. 2025-06-29) or an RFC 3339 time"
            ))
        })
}

/// "1 feed", "3 feeds".
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
