//! `chat`: parse the flags, start the runtime, hand over to [`chat_client::run`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = chat_client::config::Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chat: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(chat_client::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chat: {e:#}");
            ExitCode::from(2)
        }
    }
}
