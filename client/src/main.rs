//! `avocet`: the command line of the Avocet migration daemon.

mod cli;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Args::parse();
    let output = args.output;
    match cli::run(args).await {
        Ok(code) => code,
        Err(e) => {
            cli::show_error(&e, output);
            ExitCode::from(cli::EXIT_ERROR)
        }
    }
}
