//! `avocet`: the command line of the Avocet migration daemon.

mod cli;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::parse();
    let output = args.output;
    match cli::run(args).await {
        Ok(code) => code,
        Err(e) => {
            cli::show_error(&e, output);
            ExitCode::from(cli::exit_code(&e))
        }
    }
}
