//! `GET /api/export` and `POST /api/import`: the whole configuration document.

use http::StatusCode;

use super::{ok, AdminError, AdminReply, Change, Op};
use crate::events::EventSink;
use crate::model::{Document, ValidationErrors};
use crate::store::{ConfigStore, CounterStore};

/// The document, without store-private state or clear secrets.
pub(crate) async fn export<S: ConfigStore, C: CounterStore, E: EventSink>(
    op: &Op<'_, S, C, E>,
) -> Result<AdminReply, AdminError> {
    let doc = op.load().await?;
    Ok(AdminReply {
        response: super::json_response(StatusCode::OK, doc.to_export().to_json()),
        applied: None,
    })
}

/// Replaces the configuration with a document, or merges it (`?merge=true`:
/// entities upserted by id, others kept). Validated whole first; applied
/// all or nothing.
pub(crate) async fn import<S: ConfigStore, C: CounterStore, E: EventSink>(
    op: &Op<'_, S, C, E>,
) -> Result<AdminReply, AdminError> {
    let (incoming, report) = match op.query("from") {
        None | Some("komainu") => (
            Document::from_json(op.req.body).map_err(AdminError::invalid)?,
            None,
        ),
        Some("otoroshi") => {
            let (doc, report) = from_otoroshi(op)?;
            (doc, Some(report))
        }
        Some(other) => {
            return Err(AdminError::bad_request(
                "from",
                format!("from must be komainu or otoroshi, not \"{other}\""),
            ))
        }
    };
    let merge = match op.query("merge") {
        None | Some("false") => false,
        Some("true" | "") => true,
        Some(other) => {
            return Err(AdminError::bad_request(
                "merge",
                format!("merge must be true or false, not \"{other}\""),
            ))
        }
    };
    // A merge changes only the settings it names (a JSON merge patch).
    let settings_patch = match (merge, &report) {
        (false, _) => None,
        (true, None) => serde_json::from_slice::<serde_json::Value>(op.req.body)
            .ok()
            .and_then(|mut v| v.get_mut("settings").map(serde_json::Value::take)),
        (true, Some(_)) => Some(otoroshi_settings_patch(&incoming.settings)),
    };
    if !merge {
        // A replacement must stand on its own: validate it as sent.
        incoming.validate().map_err(AdminError::invalid)?;
    }
    let dry_run = match op.query("dryRun") {
        None | Some("false") => false,
        Some("true" | "") => true,
        Some(other) => {
            return Err(AdminError::bad_request(
                "dryRun",
                format!("dryRun must be true or false, not \"{other}\""),
            ))
        }
    };
    let change = |doc: &mut Document| {
        let mut renames = Vec::new();
        if merge {
            upsert(
                &mut doc.groups,
                &incoming.groups,
                |g| &g.id,
                "groups",
                &mut renames,
            );
            upsert(
                &mut doc.routes,
                &incoming.routes,
                |r| &r.id,
                "routes",
                &mut renames,
            );
            upsert(
                &mut doc.apikeys,
                &incoming.apikeys,
                |k| &k.client_id,
                "apikeys",
                &mut renames,
            );
            upsert(
                &mut doc.exporters,
                &incoming.exporters,
                |e| &e.id,
                "exporters",
                &mut renames,
            );
            upsert(
                &mut doc.auth_modules,
                &incoming.auth_modules,
                |m| &m.id,
                "authModules",
                &mut renames,
            );
            if let Some(patch) = &settings_patch {
                let mut settings = serde_json::to_value(&doc.settings)
                    .map_err(|e| AdminError::bad_request("settings", e.to_string()))?;
                super::merge_patch(&mut settings, patch);
                doc.settings = serde_path_to_error::deserialize(settings).map_err(|e| {
                    let mut errors = ValidationErrors::from_serde(e);
                    for error in &mut errors.0 {
                        error.field = format!("settings.{}", error.field);
                    }
                    AdminError::invalid(errors)
                })?;
            }
        } else {
            doc.groups = incoming.groups.clone();
            doc.routes = incoming.routes.clone();
            doc.apikeys = incoming.apikeys.clone();
            doc.exporters = incoming.exporters.clone();
            doc.auth_modules = incoming.auth_modules.clone();
            doc.settings = incoming.settings.clone();
        }
        Ok(Change {
            renames,
            focus: None,
            action: if merge {
                "config.merge"
            } else {
                "config.import"
            }
            .into(),
            target: None,
            before: None,
            after: Some(serde_json::json!({
                "routes": doc.routes.len(),
                "apikeys": doc.apikeys.len(),
                "groups": doc.groups.len(),
                "exporters": doc.exporters.len(),
                "authModules": doc.auth_modules.len(),
            })),
            result: (doc.routes.len(), doc.apikeys.len(), doc.groups.len()),
        })
    };
    if dry_run {
        let (revision, changes) = op.preview(change).await?;
        return Ok(ok(
            StatusCode::OK,
            &serde_json::json!({
                "dryRun": true,
                "merged": merge,
                "revision": revision,
                "changes": changes,
                "report": report,
            }),
        ));
    }
    let committed = op.commit_with(!merge, change).await?;
    let (routes, apikeys, groups) = committed.result;
    let mut reply = ok(
        StatusCode::OK,
        &serde_json::json!({
            "revision": committed.revision,
            "merged": merge,
            "routes": routes,
            "apikeys": apikeys,
            "groups": groups,
            "report": report,
        }),
    );
    reply.applied = Some(committed.gateway);
    Ok(reply)
}

/// The header of `POST /api/import?from=otoroshi` carrying Otoroshi's
/// shared key (`app.claim.sharedKey`), which its exports do not carry.
pub const OTOROSHI_SHARED_KEY_HEADER: &str = "komainu-otoroshi-shared-key";

/// An Otoroshi export mapped onto a document: 400 when it is not one, or
/// when an entity cannot be imported as it is (the report says which).
fn from_otoroshi<S: ConfigStore, C: CounterStore, E: EventSink>(
    op: &Op<'_, S, C, E>,
) -> Result<(Document, crate::migrate::Report), AdminError> {
    let shared_key = match op.req.headers.get(OTOROSHI_SHARED_KEY_HEADER) {
        Some(v) => Some(v.to_str().map_err(|_| {
            AdminError::bad_request(
                OTOROSHI_SHARED_KEY_HEADER,
                "the shared key must be visible ASCII",
            )
        })?),
        None => None,
    };
    let migration = crate::migrate::otoroshi::from_export(op.req.body, shared_key)
        .map_err(|e| AdminError::bad_request("body", e.0))?;
    if migration.report.summary.errors > 0 {
        let mut error = AdminError::invalid(ValidationErrors(migration.report.errors()));
        error.message = format!(
            "{} of the Otoroshi export's entities cannot be imported as they are (errors lists them); nothing was changed",
            migration.report.summary.errors
        );
        return Err(error);
    }
    Ok((migration.document, migration.report))
}

/// What an Otoroshi import merges into the settings: the Otoroshi shared
/// key, and the global maintenance and IP lists when the export sets them.
fn otoroshi_settings_patch(settings: &crate::model::Settings) -> serde_json::Value {
    let mut patch = serde_json::json!({});
    if let Some(key) = &settings.otoroshi.shared_key {
        patch["otoroshi"] = serde_json::json!({ "sharedKey": key });
    }
    if settings.maintenance.enabled {
        patch["maintenance"] = serde_json::json!({ "enabled": true });
    }
    if !settings.ip_allow.is_empty() {
        patch["ipAllow"] = serde_json::json!(settings.ip_allow);
    }
    if !settings.ip_block.is_empty() {
        patch["ipBlock"] = serde_json::json!(settings.ip_block);
    }
    patch
}

/// Upserts `from` into `into` by id; records where each incoming entity
/// landed, so errors can name its place in the imported document.
fn upsert<T: Clone>(
    into: &mut Vec<T>,
    from: &[T],
    id: impl Fn(&T) -> &String,
    collection: &str,
    renames: &mut Vec<(String, String)>,
) {
    for (j, item) in from.iter().enumerate() {
        let i = match into.iter().position(|x| id(x) == id(item)) {
            Some(i) => {
                into[i] = item.clone();
                i
            }
            None => {
                into.push(item.clone());
                into.len() - 1
            }
        };
        renames.push((format!("{collection}[{i}]"), format!("{collection}[{j}]")));
    }
}
