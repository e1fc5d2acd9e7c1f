//! `nova serve`: the gateway, on the built-in mock route or a configuration file.

use std::io::Write;
use std::process::ExitCode;

use nova_llm_gateway::{Config, Gateway, hash_key};

use crate::args::ServeArgs;

/// Runs the gateway until Ctrl-C or SIGTERM; 0 after a clean shutdown, 2 for a bad
/// configuration, 1 when it cannot start.
pub(crate) fn serve(a: ServeArgs) -> ExitCode {
    let mut err = std::io::stderr();
    if let Some(token) = &a.hash_key {
        let _ = writeln!(std::io::stdout(), "{}", hash_key(token));
        return ExitCode::SUCCESS;
    }
    let mut config = match &a.config {
        None => Config::builtin_mock(),
        Some(path) => {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    let _ = writeln!(err, "nova: cannot read {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            };
            match Config::parse(&text) {
                Ok(c) => c,
                Err(e) => {
                    let _ = writeln!(err, "nova: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
        }
    };
    if let Some(listen) = a.listen {
        config.server.listen = listen;
    }
    let _ = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(err, "nova: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listen = config.server.listen;
        let mut builder = Gateway::builder(config);
        if let Some(url) = &a.redis {
            builder = builder.redis(url.clone());
        }
        let gateway = match builder.build() {
            Ok(g) => g,
            Err(e) => {
                let _ = writeln!(err, "nova: {e}");
                return ExitCode::FAILURE;
            }
        };
        if a.check {
            let _ = writeln!(err, "nova: the configuration is valid");
            return ExitCode::SUCCESS;
        }
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                let _ = writeln!(err, "nova: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().unwrap_or(listen);
        let models: Vec<&str> = gateway
            .config()
            .models
            .iter()
            .map(|m| m.name.get_ref().as_str())
            .collect();
        let _ = writeln!(
            err,
            "nova serve: listening on http://{addr}/v1 (models: {})",
            models.join(", ")
        );
        match gateway.serve(listener, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let _ = writeln!(err, "nova: the server failed: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
