use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = connect_appliance::cli::Cli::parse();
    connect_appliance::cli::run(cli)
}
