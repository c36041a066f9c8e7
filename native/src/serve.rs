//! `komainu serve`: load the configuration, compile it, listen, shut down
//! gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use komainu_core::admin;
use komainu_core::model::{AdminKey, LocalState};
use komainu_core::secret::{is_sealed, SealingKey, CLAIM_SECRET_CONTEXT};
use komainu_core::store::{ConfigStore, StoreError};
use komainu_core::{Document, Gateway};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::ServeArgs;
use crate::events::{self, exporters::Exporters, Events};
use crate::state::State;
use crate::store::{self, ConfigStoreKind};
use crate::{demo, deployment_key, http_server, random, reload, tls, tls_server, workers};

/// Runs the gateway until SIGTERM or SIGINT.
pub async fn run(args: ServeArgs) -> Result<(), String> {
    let proxy_addr = args.proxy_addr()?;
    let (store, counters) = store::open(&args.store).await?;

    let worker_count = args.workers.unwrap_or_else(workers::default_count).max(1);
    let (proxy_listeners, proxy_addr) = workers::bind(proxy_addr, worker_count)?;
    let admin_listener = bind(args.admin_addr, "admin").await?;
    let admin_addr = admin_listener.local_addr().map_err(|e| e.to_string())?;
    let https = bind_https(&args).await?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let demo = if args.demo {
        let backend = demo::start_backend(shutdown_rx.clone()).await?;
        Some((backend, random::new_secret()?))
    } else {
        None
    };
    let sealing = deployment_key::resolve(args.secret_key.as_deref(), &store)?;
    let prepared = prepare(&args, &store, sealing.as_ref(), demo.as_ref()).await?;
    tracing::info!(
        store = %store.describe(),
        revision = prepared.gateway.revision(),
        workers = worker_count,
        "configuration loaded"
    );

    let backend_tls = tls::client_config(args.backend_ca.as_deref())?;
    let (events, receivers) = Events::new(
        events::source(args.instance_name.as_deref()),
        usize::try_from(args.events_buffer).unwrap_or(usize::MAX),
        Exporters::new(backend_tls.clone()),
        !args.no_request_events,
    );
    let provider_fetch = crate::provider_fetch::ProviderFetch::new(backend_tls.clone());
    let state = Arc::new(State {
        gateway: ArcSwap::from_pointee(prepared.gateway),
        config: store,
        counters,
        admin_keys: admin::admin_key_index(&prepared.admin_keys, sealing.as_ref())
            .map_err(|e| format!("invalid admin keys in the store: {e}"))?,
        sessions: session_key(sealing.as_ref())?,
        proxy_addr,
        claim_secret: prepared.claim_secret,
        sealing,
        events,
        metrics_open: args.metrics_open,
        closing: shutdown_rx.clone(),
        admin_max_body: args.admin_max_body,
        behind_proxy: args.behind_proxy,
        backend_tls,
        admin_writes: tokio::sync::Mutex::new(()),
        login_throttle: Default::default(),
        provider_fetch,
    });
    let follower = tokio::spawn(reload::follow(state.clone(), shutdown_rx.clone()));
    let checker = tokio::spawn(crate::health::run(
        Arc::downgrade(&state),
        state.backend_tls.clone(),
        shutdown_rx.clone(),
    ));
    let dispatcher = tokio::spawn(events::dispatch(
        state.events.hub.clone(),
        receivers.events,
        {
            let state = Arc::downgrade(&state);
            move || state.upgrade().map(|s| s.gateway.load_full())
        },
    ));
    tokio::spawn(events::archive(receivers.archive, Arc::downgrade(&state)));
    let demo_secret = demo.map(|(_, secret)| secret);
    let grace = Duration::from_secs(args.shutdown_grace);
    let mut proxy_workers = Vec::with_capacity(worker_count);
    for (i, listener) in proxy_listeners.into_iter().enumerate() {
        proxy_workers.push(workers::spawn(
            i,
            listener,
            state.clone(),
            shutdown_rx.clone(),
            grace,
        )?);
    }
    let admin_state = state.clone();
    let admin_task = tokio::spawn(http_server::serve(
        admin_listener,
        move |req, peer| crate::admin::handle(admin_state.clone(), req, peer),
        shutdown_rx.clone(),
        grace,
    ));
    announce(
        proxy_addr,
        admin_addr,
        prepared.new_admin_key.as_deref(),
        demo_secret.as_deref(),
    );
    let mut https_tasks = Vec::new();
    if let Some(https) = https {
        let version = env!("CARGO_PKG_VERSION");
        let port = https.addr.port();
        if let Some(listener) = https.redirect {
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            println!("komainu {version}: redirect to https listening on http://{addr}");
            https_tasks.push(tokio::spawn(tls_server::redirect(
                listener,
                port,
                shutdown_rx.clone(),
            )));
        }
        println!(
            "komainu {version}: proxy listening on https://{}",
            https.addr
        );
        https_tasks.push(tokio::spawn(tls_server::serve(
            https.listener,
            state.clone(),
            https.certs,
            https.config,
            shutdown_rx.clone(),
        )));
    }

    wait_for_signal().await;
    tracing::info!("shutting down: no new connections, finishing in-flight requests");
    let _ = shutdown_tx.send(true);
    let joined = tokio::task::spawn_blocking(move || {
        for worker in proxy_workers {
            let _ = worker.join();
        }
    });
    let _ = joined.await;
    for task in https_tasks {
        let _ = tokio::time::timeout(grace, task).await;
    }
    let _ = admin_task.await;
    let _ = follower.await;
    let _ = checker.await;
    drop(state);
    // Every sender is gone with the state: the dispatcher drains and ends.
    let _ = tokio::time::timeout(Duration::from_secs(5), dispatcher).await;
    tracing::info!("stopped");
    Ok(())
}

/// The HTTPS listener, ready to serve.
struct Https {
    listener: TcpListener,
    addr: SocketAddr,
    certs: Arc<tls_server::Certificates>,
    config: Arc<rustls::ServerConfig>,
    redirect: Option<TcpListener>,
}

/// Loads the certificates and binds the HTTPS (and redirect) listeners,
/// when `--tls-cert` is given: a certificate that does not load stops the
/// start, naming its file.
async fn bind_https(args: &ServeArgs) -> Result<Option<Https>, String> {
    let files = args.tls_files()?;
    if files.is_empty() {
        return Ok(None);
    }
    let certs = tls_server::Certificates::load(files)?;
    let config = tls_server::server_config(certs.clone())?;
    let listener = bind(
        args.tls_addr
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8443))),
        "https proxy",
    )
    .await?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let redirect = match args.https_redirect_addr {
        Some(at) => Some(bind(at, "https redirect").await?),
        None => None,
    };
    Ok(Some(Https {
        listener,
        addr,
        certs,
        config,
        redirect,
    }))
}

/// Prints where Komainu listens (the test harness reads these lines), the
/// generated admin key (once) and the demo's curl lines.
fn announce(
    proxy: SocketAddr,
    admin: SocketAddr,
    new_admin_key: Option<&str>,
    demo_secret: Option<&str>,
) {
    let version = env!("CARGO_PKG_VERSION");
    println!("komainu {version}: proxy listening on http://{proxy}");
    println!("komainu {version}: admin listening on http://{admin}");
    println!("komainu {version}: web UI at http://{admin}/");
    if let Some(key) = new_admin_key {
        println!(
            "komainu: admin key (shown once, stored hashed): {key}\n         log in to the web UI with it, use it as --admin-key / KOMAINU_ADMIN_KEY, or: curl -u '{key}' http://{admin}/api/routes"
        );
    }
    if let Some(secret) = demo_secret {
        println!("{}", demo::instructions(proxy, secret));
    }
}

/// What start-up settled: the compiled configuration and the secrets.
struct Prepared {
    gateway: Gateway,
    claim_secret: String,
    admin_keys: Vec<AdminKey>,
    new_admin_key: Option<String>,
}

/// Loads the configuration, completes it (claim secret, admin key, demo
/// entries), compiles it and saves what changed; retried when another
/// instance sharing the store changed it meanwhile. An invalid configuration
/// stops here, before anything is written.
async fn prepare(
    args: &ServeArgs,
    store: &ConfigStoreKind,
    sealing: Option<&SealingKey>,
    demo: Option<&(SocketAddr, String)>,
) -> Result<Prepared, String> {
    for _ in 0..8 {
        let mut doc = store
            .load()
            .await
            .map_err(|e| format!("cannot load the configuration ({}): {e}", store.describe()))?
            .unwrap_or_default();
        let loaded_revision = doc.revision;
        let mut changed = false;
        let claim_secret = claim_secret(args, &mut doc, sealing, &mut changed)?;
        let (admin_keys, new_admin_key) = admin_keys(args, &mut doc, &mut changed)?;
        if let Some((backend, secret)) = demo {
            demo::install(&mut doc, *backend, secret);
            doc.revision += 1;
            changed = true;
        }
        // Clear secrets (a hand-written file, the demo key) and documents
        // of earlier versions are put in their stored forms, and saved so.
        changed |= doc.seal_secrets(sealing);
        let gateway = Gateway::compile(&doc, claim_secret.as_bytes(), sealing)
            .map_err(|e| format!("invalid configuration ({}): {e}", store.describe()))?;
        if changed {
            match store.save(&doc, loaded_revision).await {
                Ok(()) => {}
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(format!("cannot save the configuration: {e}")),
            }
        }
        return Ok(Prepared {
            gateway,
            claim_secret,
            admin_keys,
            new_admin_key,
        });
    }
    Err("the configuration kept changing during start-up; try again".into())
}

/// The claim signing secret: the flag, else the store's, else a new one
/// kept in the store; kept sealed with the deployment key when there is
/// one (a copy of the store does not let anyone sign claims), and sealed
/// the first time a store holding it in clear is opened with one.
fn claim_secret(
    args: &ServeArgs,
    doc: &mut Document,
    sealing: Option<&SealingKey>,
    changed: &mut bool,
) -> Result<String, String> {
    if let Some(secret) = &args.claim_secret {
        if secret.is_empty() {
            return Err("--claim-secret must not be empty".into());
        }
        return Ok(secret.clone());
    }
    let local = doc.local.get_or_insert_with(LocalState::default);
    let secret = match local.claim_secret.clone() {
        Some(stored) if is_sealed(&stored) => {
            let key = sealing.ok_or(
                "the store's claim secret is sealed, and this instance has no deployment key: give it the same --secret-key as the others",
            )?;
            let bytes = key
                .open_bytes(CLAIM_SECRET_CONTEXT, &stored)
                .map_err(|e| format!("the store's claim secret: {e}"))?;
            return String::from_utf8(bytes)
                .map_err(|_| "the store's claim secret is not text".into());
        }
        Some(clear) => clear,
        None => {
            tracing::info!("generated a claim signing secret and kept it in the store");
            random::new_secret()?
        }
    };
    if let Some(key) = sealing {
        local.claim_secret = Some(key.seal_bytes(CLAIM_SECRET_CONTEXT, secret.as_bytes()));
        *changed = true;
    } else if local.claim_secret.as_deref() != Some(secret.as_str()) {
        local.claim_secret = Some(secret.clone());
        *changed = true;
    }
    Ok(secret)
}

/// The admin keys: the flag's, else the store's, else a new one kept
/// (hashed) in the store and returned in clear to print once.
fn admin_keys(
    args: &ServeArgs,
    doc: &mut Document,
    changed: &mut bool,
) -> Result<(Vec<AdminKey>, Option<String>), String> {
    if let Some(key) = &args.admin_key {
        return Ok((vec![AdminKey::from_pair(key)?], None));
    }
    let local = doc.local.get_or_insert_with(LocalState::default);
    if !local.admin_keys.is_empty() {
        return Ok((local.admin_keys.clone(), None));
    }
    let secret = random::new_secret()?;
    let key = AdminKey {
        client_id: "admin".into(),
        client_secret: Some(secret.clone()),
        client_secret_hash: None,
        client_secret_sealed: None,
    };
    local.admin_keys.push(key.clone());
    *changed = true;
    Ok((vec![key], Some(format!("admin:{secret}"))))
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

/// The key signing the UI's sessions: derived from the deployment key, so
/// every instance sharing it accepts the same sessions; without one (a
/// Redis store and no `--secret-key`), made for this process (a session
/// then holds on this instance only, until it stops).
fn session_key(sealing: Option<&SealingKey>) -> Result<admin::SessionKey, String> {
    Ok(match sealing {
        Some(key) => admin::SessionKey::from_deployment_key(key),
        None => admin::SessionKey::from_material(&crate::random::secret_bytes()?),
    })
}
