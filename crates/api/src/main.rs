//! `csbs-api`: parse the command line, load the configuration, run the command.

use std::process::ExitCode;

use clap::Parser;
use csbs_api::cli::{Cli, Command};
use csbs_api::settings::Settings;
use csbs_api::{commands, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    // Logs go to stderr, whatever the command: stdout carries only its results (`seed > tenants.txt`).
    telemetry::init(&settings.log, std::io::stderr);

    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => commands::serve::run(settings).map(|()| ExitCode::SUCCESS),
        Command::Migrate => commands::migrate::run(&settings).map(|()| ExitCode::SUCCESS),
        Command::Token(args) => commands::token::run(settings, &args).map(|()| ExitCode::SUCCESS),
        Command::Counters { action } => commands::counters::run(&settings, &action).map(|clean| {
            if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }),
        Command::Healthcheck => commands::healthcheck::run(&settings).map(|ready| {
            if ready {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }),
        Command::Seed(args) => commands::seed::run(&settings, &args).map(|_| ExitCode::SUCCESS),
        Command::Import(args) => commands::import::run(&settings, &args).map(|summary| {
            if summary.bad_lines > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("error: {error:#}");
        ExitCode::from(2)
    })
}
