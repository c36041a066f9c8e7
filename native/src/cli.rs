//! Command line: every setting is a flag with an environment variable (the
//! flag wins).

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

/// Komainu, an API gateway: routes, API keys, quotas, traceability.
#[derive(Debug, Parser)]
#[command(name = "komainu", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: the proxy listener and the admin listener.
    Serve(Box<ServeArgs>),
    /// Print the configuration document of a running gateway (native or edge).
    Export(ExportArgs),
    /// Replace (or merge) the configuration of a running gateway from a document, atomically.
    Import(ImportArgs),
    /// Copy the configuration from one admin API to another (native ↔ edge), showing the difference first.
    Sync(SyncArgs),
}

/// Settings of `komainu sync`.
#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    /// The admin API to copy from (admin base URL, the part before /api).
    #[arg(long)]
    pub from: String,

    /// The admin API to copy to.
    #[arg(long)]
    pub to: String,

    /// Admin credentials of the source, as clientId:clientSecret [default: --admin-key]
    #[arg(long, env = "KOMAINU_SYNC_FROM_KEY", hide_env_values = true)]
    pub from_key: Option<String>,

    /// Admin credentials of the target, as clientId:clientSecret [default: --admin-key]
    #[arg(long, env = "KOMAINU_SYNC_TO_KEY", hide_env_values = true)]
    pub to_key: Option<String>,

    /// Admin credentials for both sides, when the same key opens both.
    #[arg(long, env = "KOMAINU_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,

    /// Only show the difference; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Apply without asking for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// How to reach an admin API.
#[derive(Debug, Clone, Args)]
pub struct AdminTarget {
    /// Admin base URL, the part before /api: http://127.0.0.1:8081 natively,
    /// https://gateway.example.workers.dev/_komainu at the edge.
    #[arg(
        long = "admin",
        env = "KOMAINU_ADMIN_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub url: String,

    /// Admin credentials, as clientId:clientSecret.
    #[arg(long, env = "KOMAINU_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
}

/// Settings of `komainu export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The admin API to read from.
    #[command(flatten)]
    pub admin: AdminTarget,
}

/// Settings of `komainu import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The configuration document (JSON) to import.
    #[arg(
        required_unless_present = "from_otoroshi",
        conflicts_with = "from_otoroshi"
    )]
    pub file: Option<std::path::PathBuf>,

    /// An Otoroshi export (GET /api/otoroshi.json, or its back office's
    /// export button) to import instead: mapped onto routes, keys and
    /// groups, with a report of what was approximated or dropped.
    #[arg(long, value_name = "EXPORT.json")]
    pub from_otoroshi: Option<std::path::PathBuf>,

    /// Otoroshi's shared key (its app.claim.sharedKey / CLAIM_SHAREDKEY),
    /// which signs the Otoroshi-Claim and state tokens its backends verify;
    /// exports do not carry it.
    #[arg(long, env = "KOMAINU_OTOROSHI_SHARED_KEY", hide_env_values = true)]
    pub otoroshi_shared_key: Option<String>,

    /// Upsert the document's entities into the configuration instead of replacing it.
    #[arg(long)]
    pub merge: bool,

    /// Show what would change (and, for an Otoroshi export, the report); change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// The admin API to write to.
    #[command(flatten)]
    pub admin: AdminTarget,
}

/// Settings of `komainu serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address of the proxy listener [default: 0.0.0.0:8080, or 0.0.0.0:$PORT when PORT is set]
    #[arg(long, env = "KOMAINU_PROXY_ADDR")]
    pub proxy_addr: Option<SocketAddr>,

    /// Address of the admin listener.
    #[arg(long, env = "KOMAINU_ADMIN_ADDR", default_value = "127.0.0.1:8081")]
    pub admin_addr: SocketAddr,

    /// Where the configuration lives: `file:PATH` (in memory, persisted to
    /// PATH), `memory` (nothing persisted).
    #[arg(
        long,
        env = "KOMAINU_STORE",
        default_value = "file:./komainu-data.json"
    )]
    pub store: String,

    /// Secret signing the Komainu-Claim JWT sent to backends [default:
    /// generated at first start and kept in the store]
    #[arg(long, env = "KOMAINU_CLAIM_SECRET", hide_env_values = true)]
    pub claim_secret: Option<String>,

    /// The deployment key (at least 32 characters) sealing, at rest, what
    /// HS256 JWT verification needs of each API key's secret [default: a
    /// key file beside a file: store, made at first start; none for redis:
    /// give every instance the same one]
    #[arg(long, env = "KOMAINU_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,

    /// The admin API key, as clientId:clientSecret [default: generated at
    /// first start, stored hashed, and printed once]
    #[arg(long, env = "KOMAINU_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,

    /// Largest admin request body, in bytes (413 beyond it).
    #[arg(long, env = "KOMAINU_ADMIN_MAX_BODY", default_value_t = komainu_core::admin::DEFAULT_MAX_BODY_BYTES)]
    pub admin_max_body: usize,

    /// Also start a built-in echo backend, a demo route and a demo API key,
    /// and print ready-to-paste curl lines.
    #[arg(long)]
    pub demo: bool,

    /// A PEM file of extra certificates trusted for https backends (a
    /// private CA, a self-signed backend), besides the public web roots.
    #[arg(long, env = "KOMAINU_BACKEND_CA")]
    pub backend_ca: Option<std::path::PathBuf>,

    /// Trust the `X-Forwarded-Proto` sent by the platform's router (a PaaS
    /// that terminates TLS in front of Komainu): backends are then told the
    /// client's real scheme. Off by default, a client could forge it.
    #[arg(long, env = "KOMAINU_BEHIND_PROXY")]
    pub behind_proxy: bool,

    /// Proxy worker threads (one single-threaded runtime each) [default: the
    /// CPUs this process may run on]
    #[arg(long, env = "KOMAINU_WORKERS")]
    pub workers: Option<usize>,

    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT.
    #[arg(long, env = "KOMAINU_SHUTDOWN_GRACE", default_value_t = 30)]
    pub shutdown_grace: u64,

    /// Serve `GET /metrics` on the admin listener without credentials (for
    /// a Prometheus scraper on a private network). Off by default: the
    /// admin key is needed.
    #[arg(long, env = "KOMAINU_METRICS_OPEN")]
    pub metrics_open: bool,

    /// Recent events kept in memory for `GET /api/events` and for stream
    /// readers resuming with `Last-Event-ID`.
    #[arg(long, env = "KOMAINU_EVENTS_BUFFER", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub events_buffer: u64,

    /// Build no request events (`io.komainu.request.v1`): for deployments
    /// that want only metrics, audit events and alerts. Metrics and alerts
    /// are kept either way.
    #[arg(long, env = "KOMAINU_NO_REQUEST_EVENTS")]
    pub no_request_events: bool,

    /// This instance's name: the `source` of its events
    /// (`/komainu/{name}`) [default: the host name]
    #[arg(long, env = "KOMAINU_INSTANCE_NAME")]
    pub instance_name: Option<String>,

    /// A certificate chain (PEM) to serve HTTPS with; repeat it with
    /// `--tls-key` for several (chosen by the name the client asks for,
    /// SNI; the first one otherwise). Reloaded when the files change.
    #[arg(long, env = "KOMAINU_TLS_CERT", value_delimiter = ',')]
    pub tls_cert: Vec<std::path::PathBuf>,

    /// The private key (PEM) of each `--tls-cert`, in the same order.
    #[arg(long, env = "KOMAINU_TLS_KEY", value_delimiter = ',')]
    pub tls_key: Vec<std::path::PathBuf>,

    /// Address of the HTTPS proxy listener (HTTP/2 and HTTP/1.1 by ALPN),
    /// when certificates are given [default: 0.0.0.0:8443]
    #[arg(long, env = "KOMAINU_TLS_ADDR")]
    pub tls_addr: Option<SocketAddr>,

    /// Also listen here for plain HTTP and answer every request with a
    /// redirect (308) to the same URL over HTTPS (needs `--tls-cert`).
    #[arg(long, env = "KOMAINU_HTTPS_REDIRECT_ADDR")]
    pub https_redirect_addr: Option<SocketAddr>,
}

impl ServeArgs {
    /// The certificate and key files to serve HTTPS with, paired; an
    /// error says what is missing.
    pub fn tls_files(&self) -> Result<Vec<crate::tls_server::CertFiles>, String> {
        if self.tls_cert.len() != self.tls_key.len() {
            return Err(format!(
                "give one --tls-key per --tls-cert, in the same order ({} certificates, {} keys)",
                self.tls_cert.len(),
                self.tls_key.len()
            ));
        }
        if self.tls_cert.is_empty()
            && (self.tls_addr.is_some() || self.https_redirect_addr.is_some())
        {
            return Err(
                "--tls-addr and --https-redirect-addr need --tls-cert and --tls-key".into(),
            );
        }
        Ok(self
            .tls_cert
            .iter()
            .zip(&self.tls_key)
            .map(|(cert, key)| crate::tls_server::CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            })
            .collect())
    }

    /// The proxy address: the flag, else `0.0.0.0:$PORT`, else `0.0.0.0:8080`.
    pub fn proxy_addr(&self) -> Result<SocketAddr, String> {
        if let Some(addr) = self.proxy_addr {
            return Ok(addr);
        }
        match std::env::var("PORT") {
            Ok(port) => port
                .trim()
                .parse::<u16>()
                .map(|p| SocketAddr::from(([0, 0, 0, 0], p)))
                .map_err(|_| format!("PORT must be a port number, got \"{port}\"")),
            Err(_) => Ok(SocketAddr::from(([0, 0, 0, 0], 8080))),
        }
    }
}

/// Splits `clientId:clientSecret`.
pub fn split_admin_key(key: &str) -> Result<(&str, &str), String> {
    match key.split_once(':') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok((id, secret)),
        _ => Err("the admin key must be clientId:clientSecret (e.g. admin:s3cr3t)".into()),
    }
}
