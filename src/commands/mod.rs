//! One file per command: orchestration only, no format logic. Each command is a function
//! taking its parsed arguments and the global options and returning the exit status.

use anyhow::Result;

use crate::cli::{Cli, Command, GlobalArgs};

pub mod build;
pub mod cat;
pub mod copy_in;
pub mod export;
pub mod fetch;
pub mod inject;
pub mod inspect;
pub mod lock;
pub mod ls;
pub mod output;
pub mod verify;

/// Success; for checks: verified, up to date.
pub const EXIT_OK: u8 = 0;
/// An error: the message names what and where.
pub const EXIT_ERROR: u8 = 1;
/// A check ran and found a difference (`lock --check`, `verify`).
pub const EXIT_DIFFERS: u8 = 3;

/// What a command ended with, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Differs,
}

impl From<Outcome> for std::process::ExitCode {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Ok => std::process::ExitCode::from(EXIT_OK),
            Outcome::Differs => std::process::ExitCode::from(EXIT_DIFFERS),
        }
    }
}

/// The image's root filesystem, or an error naming the image and why none could be read.
pub(crate) fn readable_guest<'a>(
    layout: &'a crate::guest::layout::Layout,
    image: &std::path::Path,
) -> Result<&'a crate::guest::Guest> {
    layout.guest.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no readable root filesystem: {}",
            image.display(),
            layout.problems.join("; ")
        )
    })
}

pub fn run(cli: Cli) -> Result<Outcome> {
    let global: &GlobalArgs = &cli.global;
    match &cli.command {
        Command::Lock(args) => lock::lock(args, global),
        Command::Export(args) => export::export(args, global),
        Command::Fetch(args) => fetch::fetch(args, global),
        Command::Build(args) => build::build(args, global),
        Command::Inspect(args) => inspect::inspect(args, global),
        Command::Ls(args) => ls::ls(args, global),
        Command::Cat(args) => cat::cat(args, global),
        Command::CopyIn(args) => copy_in::copy_in(args, global),
        Command::Inject(args) => inject::inject(args, global),
        Command::Verify(args) => verify::verify(args, global),
    }
}
