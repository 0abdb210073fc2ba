//! The `treatywatch` binary: parse the command line, set up logging, run the
//! command, map the result to an exit status. The work lives in the library.

use std::process::ExitCode;

use clap::Parser;
use treatywatch::cli::Cli;
use treatywatch::commands::{self, Outcome};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (format, level) = cli.log_settings();
    treatywatch::logging::init(format, level);
    match commands::run(cli) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(1),
        // `treatywatch events | head` closing the pipe early is not an error.
        Err(commands::CommandError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            let code = e.exit_code();
            let message = e.to_string();
            // Config diagnostics (and failing rule tests) already start
            // with `path:line:col:`.
            if matches!(e, commands::CommandError::RuleTests { .. }) {
                eprintln!("{message}");
            } else if matches!(e, commands::CommandError::Config(_)) {
                eprintln!("{message}");
                let n = e_diagnostics(&e);
                if n > 0 {
                    eprintln!(
                        "treatywatch: {n} problem{} in the configuration; nothing was started",
                        if n == 1 { "" } else { "s" }
                    );
                }
            } else {
                eprintln!("treatywatch: error: {message}");
            }
            ExitCode::from(code)
        }
    }
}

fn e_diagnostics(e: &commands::CommandError) -> usize {
    match e {
        commands::CommandError::Config(c) => c.diagnostics().len(),
        _ => 0,
    }
}
