//! `chat`: parse the flags, start the runtime, hand over to [`chat_client::run`]; or, for
//! `chat completions <shell>` and `chat manpage` (`config::Action`), print and exit.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let mut args = chat_client::config::Args::parse();
    if let Some(action) = args.action.take() {
        return match action.write(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            // A reader that stopped early (`chat manpage | head`) is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("chat: cannot write the output: {e}");
                ExitCode::from(2)
            }
        };
    }
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
