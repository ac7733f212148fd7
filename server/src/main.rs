//! `chat-server`: flags → config → run, with the admin console on stdin.

use anyhow::Context as _;
use chat_server::{console::Console, logging, platform, Config, Server};
use clap::Parser;

fn main() {
    if let Err(err) = run() {
        eprintln!("chat-server: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args = chat_server::config_file::args_with_file(std::env::args_os().collect())?;
    let config = Config::parse_from(args);
    logging::init(&config.log_level)?;
    let server = Server::start(&config)?;
    // Installed before the banner: a script that sees the banner may signal at once.
    let events = server.events();
    ctrlc::set_handler(move || {
        let _ = events.send(chat_server::chat::dispatcher::Event::Shutdown {
            reason: chat_server::chat::dispatcher::SHUTDOWN_REASON.into(),
        });
    })
    .context("installing the Ctrl-C handler")?;

    match &server.fingerprint {
        Some(fp) => println!(
            "chat-server listening on {} (TLS)\ncertificate fingerprint: SHA-256 {fp}",
            server.local_addr
        ),
        None => println!("chat-server listening on {} (plaintext)", server.local_addr),
    }
    if let Some(url) = &server.web_url {
        println!("web: {url}");
    }

    let console = Console::new(server.events(), config.hash_cost());
    let interactive = platform::stdin_is_terminal();
    let console = std::thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            if interactive {
                if let Err(err) = console.run_interactive() {
                    tracing::error!("console: {err:#}");
                }
            } else {
                console.run_lines(std::io::stdin().lock());
            }
        })?;

    server.wait();
    // Stopped by a signal while the operator's prompt is up: end the prompt
    // so rustyline gives the terminal back its echo and line editing.
    if interactive && !console.is_finished() {
        platform::interrupt_prompt();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while !console.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    println!("chat-server stopped");
    Ok(())
}
