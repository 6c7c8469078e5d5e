use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = graft::cli::Cli::parse();
    match graft::commands::run(cli) {
        Ok(code) => code.into(),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(graft::commands::EXIT_ERROR)
        }
    }
}
