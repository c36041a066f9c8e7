//! `komainu serve`: load the configuration, compile it, listen, shut down
//! gracefully.

use std::net::SocketAddr;
use std::time::Duration;

use komainu_core::model::LocalState;
use komainu_core::store::ConfigStore;
use komainu_core::{Document, Gateway};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::ServeArgs;
use crate::state::State;
use crate::store::ConfigStoreKind;
use crate::{admin, demo, http_server, proxy, random, upstream};

/// Runs the gateway until SIGTERM or SIGINT.
pub async fn run(args: ServeArgs) -> Result<(), String> {
    let proxy_addr = args.proxy_addr()?;
    let store = ConfigStoreKind::open(&args.store)?;
    let mut doc = store
        .load()
        .await
        .map_err(|e| format!("cannot load the configuration ({}): {e}", store.describe()))?
        .unwrap_or_default();
    let loaded_revision = doc.revision;
    let mut changed = false;
    let claim_secret = claim_secret(&args, &mut doc, &mut changed)?;

    let proxy_listener = bind(proxy_addr, "proxy").await?;
    let admin_listener = bind(args.admin_addr, "admin").await?;
    let proxy_addr = proxy_listener.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = admin_listener.local_addr().map_err(|e| e.to_string())?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let mut demo_secret = None;
    if args.demo {
        let backend = demo::start_backend(shutdown_rx.clone()).await?;
        let secret = random::new_secret()?;
        demo::install(&mut doc, backend, &secret);
        doc.revision += 1;
        changed = true;
        demo_secret = Some(secret);
    }
    // Compile before writing anything: an invalid configuration leaves the
    // store exactly as it was.
    let gateway = Gateway::compile(&doc, claim_secret.as_bytes())
        .map_err(|e| format!("invalid configuration ({}): {e}", store.describe()))?;
    if changed {
        store
            .save(&doc, loaded_revision)
            .await
            .map_err(|e| format!("cannot save the configuration: {e}"))?;
    }
    tracing::info!(
        store = %store.describe(),
        revision = doc.revision,
        routes = doc.routes.len(),
        apikeys = doc.apikeys.len(),
        "configuration loaded"
    );

    let state = State::new(gateway, upstream::build()?);
    let grace = Duration::from_secs(args.shutdown_grace);
    let proxy_state = state.clone();
    let proxy_task = tokio::spawn(http_server::serve(
        proxy_listener,
        move |req, peer| proxy::handle(proxy_state.clone(), req, peer),
        shutdown_rx.clone(),
        grace,
    ));
    let admin_state = state.clone();
    let admin_task = tokio::spawn(http_server::serve(
        admin_listener,
        move |req, peer| admin::handle(admin_state.clone(), req, peer),
        shutdown_rx.clone(),
        grace,
    ));
    println!(
        "komainu {}: proxy listening on http://{proxy_addr}",
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "komainu {}: admin listening on http://{admin_addr}",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(secret) = demo_secret {
        println!("{}", demo::instructions(proxy_addr, &secret));
    }

    wait_for_signal().await;
    tracing::info!("shutting down: no new connections, finishing in-flight requests");
    let _ = shutdown_tx.send(true);
    let _ = proxy_task.await;
    let _ = admin_task.await;
    drop(state);
    tracing::info!("stopped");
    Ok(())
}

/// The claim signing secret: the flag, else the store's, else a new one
/// kept in the store.
fn claim_secret(
    args: &ServeArgs,
    doc: &mut Document,
    changed: &mut bool,
) -> Result<String, String> {
    if let Some(secret) = &args.claim_secret {
        if secret.is_empty() {
            return Err("--claim-secret must not be empty".into());
        }
        return Ok(secret.clone());
    }
    if let Some(secret) = doc.local.as_ref().and_then(|l| l.claim_secret.clone()) {
        return Ok(secret);
    }
    let secret = random::new_secret()?;
    doc.local
        .get_or_insert_with(LocalState::default)
        .claim_secret = Some(secret.clone());
    *changed = true;
    tracing::info!("generated a claim signing secret and kept it in the store");
    Ok(secret)
}

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} for the {what} listener: {e}"))
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
