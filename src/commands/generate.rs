//! `generate` (hidden): the man pages and shell completions, written from
//! the clap definitions of this very binary, for the Debian package
//! (`deploy/debian/build-deb`). Done at packaging time rather than in a
//! build script so a plain `cargo build` pays nothing for it and the pages
//! can never describe a different build than the one packaged.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use super::{CommandError, Outcome, Result};
use crate::cli::{Cli, GenerateArgs};

pub(super) fn generate(args: &GenerateArgs, out: &mut dyn Write) -> Result<Outcome> {
    if args.man.is_none() && args.completions.is_none() {
        return Err(CommandError::Usage(
            "say what to write: --man DIR and/or --completions DIR".into(),
        ));
    }
    let mut command = Cli::command();
    command.build();
    if let Some(dir) = &args.man {
        create(dir)?;
        let mut written = 0;
        write_pages(&command, dir, &mut written)?;
        writeln!(out, "{written} man pages in {}", dir.display())?;
    }
    if let Some(dir) = &args.completions {
        use clap_complete::Shell;
        create(dir)?;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            clap_complete::generate_to(shell, &mut command.clone(), "treatywatch", dir)
                .map_err(|e| cannot_write(dir, e))?;
        }
        writeln!(out, "bash, zsh and fish completions in {}", dir.display())?;
    }
    Ok(Outcome::Success)
}

/// One page for `command` and one per visible subcommand, named as
/// `man treatywatch-poll` expects (`treatywatch-poll.1`).
fn write_pages(command: &clap::Command, dir: &Path, written: &mut usize) -> Result<()> {
    let name = command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
        .to_string();
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .title(name.to_uppercase())
        .render(&mut page)
        .map_err(|e| cannot_write(&path, e))?;
    std::fs::write(&path, page).map_err(|e| cannot_write(&path, e))?;
    *written += 1;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

fn create(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| cannot_write(dir, e))
}

fn cannot_write(path: &Path, e: std::io::Error) -> CommandError {
    CommandError::Usage(format!("cannot write {}: {e}", path.display()))
}
