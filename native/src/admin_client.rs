//! `komainu export`, `import` and `sync`: clients of running admin APIs.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};

use std::io::{BufRead, IsTerminal, Write};

use komainu_core::model::Diff;
use komainu_core::Document;

use crate::cli::{split_admin_key, AdminTarget, ExportArgs, ImportArgs, SyncArgs};
use crate::tls;

/// Prints the configuration document to stdout.
pub async fn export(args: ExportArgs) -> Result<(), String> {
    let body = call(&args.admin, Method::GET, "/api/export", Bytes::new()).await?;
    println!("{}", String::from_utf8_lossy(&body).trim_end());
    Ok(())
}

/// Sends a document to `POST /api/import`.
pub async fn import(args: ImportArgs) -> Result<(), String> {
    let (file, otoroshi) = match (&args.file, &args.from_otoroshi) {
        (Some(file), None) => (file, false),
        (None, Some(file)) => (file, true),
        _ => {
            return Err(
                "give a Komainu document, or an Otoroshi export with --from-otoroshi".into(),
            )
        }
    };
    let document =
        std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut query = Vec::new();
    if otoroshi {
        query.push("from=otoroshi");
    }
    if args.merge {
        query.push("merge=true");
    }
    if args.dry_run {
        query.push("dryRun=true");
    }
    let path = if query.is_empty() {
        "/api/import".to_owned()
    } else {
        format!("/api/import?{}", query.join("&"))
    };
    let mut headers = Vec::new();
    if let Some(key) = &args.otoroshi_shared_key {
        headers.push((
            komainu_core::admin::OTOROSHI_SHARED_KEY_HEADER,
            key.as_str(),
        ));
    }
    let body = call_with(
        &args.admin,
        Method::POST,
        &path,
        Bytes::from(document),
        &headers,
    )
    .await?;
    let summary: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if !summary["report"].is_null() {
        print_report(&summary["report"]);
    }
    if args.dry_run {
        let changes = summary["changes"].as_array().map_or(0, Vec::len);
        eprintln!(
            "dry run of {}: {changes} changes to revision {}; nothing was changed",
            file.display(),
            summary["revision"]
        );
        if let Some(changes) = summary["changes"].as_array() {
            for c in changes {
                println!(
                    "  {} {} {}",
                    c["op"].as_str().unwrap_or("~"),
                    c["kind"].as_str().unwrap_or(""),
                    c["id"].as_str().unwrap_or("")
                );
            }
        }
        return Ok(());
    }
    eprintln!(
        "imported {} ({}): revision {}, {} routes, {} API keys, {} groups",
        file.display(),
        if args.merge { "merged" } else { "replaced" },
        summary["revision"],
        summary["routes"],
        summary["apikeys"],
        summary["groups"],
    );
    Ok(())
}

/// Prints a migration report: one line per entity, its notes below.
fn print_report(report: &serde_json::Value) {
    let s = &report["summary"];
    println!(
        "{} export: {} mapped, {} approximated, {} dropped, {} in error",
        report["source"].as_str().unwrap_or("foreign"),
        s["mapped"],
        s["approximated"],
        s["dropped"],
        s["errors"]
    );
    for e in report["entities"].as_array().into_iter().flatten() {
        let became: Vec<&str> = e["became"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_str)
            .collect();
        println!(
            "{:<13} {} {}{}{}",
            e["status"].as_str().unwrap_or(""),
            e["kind"].as_str().unwrap_or(""),
            e["id"].as_str().unwrap_or(""),
            match e["name"].as_str() {
                Some(n) if !n.is_empty() => format!(" ({n})"),
                _ => String::new(),
            },
            if became.is_empty() {
                String::new()
            } else {
                format!(" → {}", became.join(", "))
            }
        );
        for note in e["notes"].as_array().into_iter().flatten() {
            println!("              - {}", note.as_str().unwrap_or(""));
        }
    }
}

/// Shows what copying `--from` over `--to` changes, then (confirmed, or
/// `--yes`) imports the source's document into the target, atomically.
pub async fn sync(args: SyncArgs) -> Result<(), String> {
    let fallback = args.admin_key.clone();
    let from = AdminTarget {
        url: args.from.clone(),
        admin_key: args.from_key.clone().or_else(|| fallback.clone()),
    };
    let to = AdminTarget {
        url: args.to.clone(),
        admin_key: args.to_key.clone().or(fallback),
    };
    let source_text = call(&from, Method::GET, "/api/export", Bytes::new()).await?;
    let target_text = call(&to, Method::GET, "/api/export", Bytes::new()).await?;
    let read = |text: &Bytes, url: &str| {
        Document::from_json(text)
            .map_err(|e| format!("the export of {url} is not a configuration document: {e}"))
    };
    let (source, target) = (
        read(&source_text, &args.from)?,
        read(&target_text, &args.to)?,
    );
    let diff = Diff::between(&source, &target);
    println!("{} → {}:", args.from, args.to);
    print!("{diff}");
    if diff.is_empty() || args.dry_run {
        return Ok(());
    }
    if !args.yes
        && !confirm(&format!(
            "apply these {} changes to {}?",
            diff.0.len(),
            args.to
        ))?
    {
        return Err("nothing applied".into());
    }
    let body = call(&to, Method::POST, "/api/import", source_text).await?;
    let summary: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    println!(
        "applied: {} is now at revision {}",
        args.to, summary["revision"]
    );
    Ok(())
}

fn confirm(question: &str) -> Result<bool, String> {
    if !std::io::stdin().is_terminal() {
        return Err("not a terminal: confirm with --yes (or look first with --dry-run)".into());
    }
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| e.to_string())?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// One authenticated call; a clear error for each way it can fail.
pub async fn call(
    target: &AdminTarget,
    method: Method,
    path: &str,
    body: Bytes,
) -> Result<Bytes, String> {
    call_with(target, method, path, body, &[]).await
}

/// [`call`] with extra request headers.
pub async fn call_with(
    target: &AdminTarget,
    method: Method,
    path: &str,
    body: Bytes,
    headers: &[(&str, &str)],
) -> Result<Bytes, String> {
    let base = target.url.trim_end_matches('/');
    let url = format!("{base}{path}");
    let mut request = Request::builder().method(method).uri(&url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(key) = &target.admin_key {
        let (id, secret) = split_admin_key(key)?;
        request = request.header(
            http::header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
        );
    }
    let request = request
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| format!("\"{base}\" is not a valid admin URL: {e}"))?;
    let client = http_client(tls::client_config(None)?);
    let response = client.request(request).await.map_err(|e| {
        let cause = std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_else(|| e.to_string());
        format!("cannot reach the admin API at {base}: {cause}. Is komainu serve running, and is this its admin address (--admin-addr)?")
    })?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("the admin API at {base} broke the answer: {e}"))?
        .to_bytes();
    if status.is_success() {
        return Ok(body);
    }
    let detail: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let message = detail["message"].as_str().map_or_else(
        || String::from_utf8_lossy(&body).into_owned(),
        str::to_owned,
    );
    Err(match status {
        StatusCode::UNAUTHORIZED => format!(
            "the admin API at {base} refused the credentials (401): {message}. Pass --admin-key clientId:clientSecret or set KOMAINU_ADMIN_KEY"
        ),
        StatusCode::BAD_REQUEST => {
            let fields: Vec<String> = detail["errors"]
                .as_array()
                .map(|errors| {
                    errors
                        .iter()
                        .map(|e| format!("\n  {}: {}", e["field"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default();
            match detail["field"].as_str() {
                _ if detail["errors"][0]["message"]
                    .as_str()
                    .is_some_and(|first| !message.contains(first)) =>
                {
                    format!("the admin API refused the request (400): {message}{}", fields.concat())
                }
                Some(field) if !field.is_empty() => format!("the admin API refused the request (400), field {field}: {message}"),
                _ => format!("the admin API refused the request (400): {message}"),
            }
        }
        _ => format!("the admin API at {base} answered {status}: {message}"),
    })
}

/// An HTTP client for http and https URLs (public web roots, and `tls`'s).
pub type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// A client for admin APIs and webhooks: http or https.
pub fn http_client(tls: std::sync::Arc<rustls::ClientConfig>) -> HttpClient {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(std::time::Duration::from_secs(10)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https)
}
