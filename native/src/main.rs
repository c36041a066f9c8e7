//! `komainu`: the Komainu API gateway as one native binary (see the
//! `komainu_native` library for how it is built).

use std::process::ExitCode;

use clap::Parser;
use komainu_native::{admin_client, cli, serve};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KOMAINU_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("komainu: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            cli::Command::Serve(args) => serve::run(*args).await,
            cli::Command::Export(args) => admin_client::export(args).await,
            cli::Command::Import(args) => admin_client::import(args).await,
            cli::Command::Sync(args) => admin_client::sync(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("komainu: {e}");
            ExitCode::FAILURE
        }
    }
}
