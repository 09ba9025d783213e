//! The `clshost` command: parse the command line, set up logging, run the subcommand, and turn
//! any error into one line on stderr and a non-zero exit status.

use std::process::ExitCode;

use clap::Parser;
use clshost::cli::{Cli, Command};
use clshost::commands;
use clshost::exit::Exit;
use clshost::logging;
use clshost::registry::SearchPath;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.global.verbose, cli.global.quiet);
    let search = SearchPath::from_env(cli.global.plugins.clone(), cli.global.plugin_dirs.clone());
    let result = match &cli.command {
        Command::Run(args) => commands::run::run(&search, args, cli.global.quiet),
        Command::Plugins(args) => commands::plugins::run(&search, args),
        Command::Check(args) => commands::check::run(&search, args),
        Command::Bench(args) => commands::bench::run(&search, args),
        Command::Data(args) => commands::data::run(&search, args),
        Command::Doctor(args) => commands::doctor::run(&search, args),
        Command::Predict(args) => commands::predict::run(&search, args, cli.global.quiet),
        Command::Eval(args) => commands::eval::run(&search, args, cli.global.quiet),
        Command::Weights(args) => commands::weights::run(args, cli.global.quiet),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<Exit>() {
            Some(exit) => {
                eprintln!("{exit}");
                ExitCode::from(exit.code)
            }
            None => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        },
    }
}
