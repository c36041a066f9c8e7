//! CRUD for routes, API keys and groups, one generic implementation; plus
//! key rotation and quota look-up.

use http::{header, HeaderValue, Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::{merge_patch, ok, AdminError, AdminReply, Change, Op};
use crate::events::alert::Severity;
use crate::events::{AlertEvent, AuditEvent, Event, EventData, EventSink};
use crate::model::{ApiKey, Document, Group, Route, ValidationErrors};
use crate::quota::Plan;
use crate::secret::generate_secret;
use crate::store::{ConfigStore, CounterStore};
use crate::time::format_rfc3339;

/// A configuration entity served by the generic CRUD handlers.
pub(crate) trait Entity: Serialize + DeserializeOwned + Clone + PartialEq {
    /// Singular name, for actions and messages (`route`).
    const KIND: &'static str;
    /// The URL segment (`routes`).
    const COLLECTION: &'static str;
    /// The document field, where it differs from the URL segment.
    const FIELD: &'static str = Self::COLLECTION;
    /// The JSON name of the id (`id`, `clientId`).
    const ID_FIELD: &'static str;

    fn id(&self) -> &str;
    fn all(doc: &Document) -> &Vec<Self>;
    fn all_mut(doc: &mut Document) -> &mut Vec<Self>;

    /// The entity as the API shows it (secrets removed).
    fn view(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Completes an entity written by a client, from the one it replaces:
    /// returns a clear secret to show once, if one was set.
    fn complete(&mut self, _old: Option<&Self>, _random: [u8; 32]) -> Option<String> {
        None
    }

    /// Whether the entity may be deleted from `doc`.
    fn check_delete(_doc: &Document, _id: &str) -> Result<(), AdminError> {
        Ok(())
    }
}

impl Entity for Route {
    const KIND: &'static str = "route";
    const COLLECTION: &'static str = "routes";
    const ID_FIELD: &'static str = "id";

    fn id(&self) -> &str {
        &self.id
    }
    fn all(doc: &Document) -> &Vec<Self> {
        &doc.routes
    }
    fn all_mut(doc: &mut Document) -> &mut Vec<Self> {
        &mut doc.routes
    }
}

impl Entity for Group {
    const KIND: &'static str = "group";
    const COLLECTION: &'static str = "groups";
    const ID_FIELD: &'static str = "id";

    fn id(&self) -> &str {
        &self.id
    }
    fn all(doc: &Document) -> &Vec<Self> {
        &doc.groups
    }
    fn all_mut(doc: &mut Document) -> &mut Vec<Self> {
        &mut doc.groups
    }

    fn check_delete(doc: &Document, id: &str) -> Result<(), AdminError> {
        let mut users: Vec<String> = doc
            .routes
            .iter()
            .filter(|r| r.groups.iter().any(|g| g == id))
            .map(|r| format!("route \"{}\"", r.id))
            .collect();
        users.extend(
            doc.apikeys
                .iter()
                .filter(|k| k.groups.iter().any(|g| g == id))
                .map(|k| format!("API key \"{}\"", k.client_id)),
        );
        if users.is_empty() {
            Ok(())
        } else {
            Err(AdminError::conflict(format!(
                "group \"{id}\" is still used by {}; remove it from them first",
                users.join(", ")
            )))
        }
    }
}

impl Entity for crate::model::Exporter {
    const KIND: &'static str = "exporter";
    const COLLECTION: &'static str = "exporters";
    const ID_FIELD: &'static str = "id";

    fn id(&self) -> &str {
        &self.id
    }
    fn all(doc: &Document) -> &Vec<Self> {
        &doc.exporters
    }
    fn all_mut(doc: &mut Document) -> &mut Vec<Self> {
        &mut doc.exporters
    }

    /// A replacement that does not send the signing secret again keeps it.
    fn complete(&mut self, old: Option<&Self>, _random: [u8; 32]) -> Option<String> {
        if self.secret.is_none() && self.secret_sealed.is_none() {
            self.secret_sealed = old.and_then(|o| o.secret_sealed.clone());
        }
        None
    }
}

impl Entity for crate::model::AuthModule {
    const KIND: &'static str = "auth-module";
    const COLLECTION: &'static str = "auth-modules";
    const FIELD: &'static str = "authModules";
    const ID_FIELD: &'static str = "id";

    fn id(&self) -> &str {
        &self.id
    }
    fn all(doc: &Document) -> &Vec<Self> {
        &doc.auth_modules
    }
    fn all_mut(doc: &mut Document) -> &mut Vec<Self> {
        &mut doc.auth_modules
    }

    /// A module a private route logs people in with stays.
    fn check_delete(doc: &Document, id: &str) -> Result<(), AdminError> {
        let users: Vec<String> = doc
            .routes
            .iter()
            .filter(|r| r.auth.as_ref().is_some_and(|a| a.module == id))
            .map(|r| format!("route \"{}\"", r.id))
            .collect();
        if users.is_empty() {
            Ok(())
        } else {
            Err(AdminError::conflict(format!(
                "auth module \"{id}\" is still used by {}; change their auth first",
                users.join(", ")
            )))
        }
    }

    /// Neither password hashes nor the sealed client secret are shown:
    /// `passwordSet` / `clientSecretSet` say whether there is one.
    fn view(&self) -> Value {
        let mut view = self.clone();
        view.client_secret = None;
        view.client_secret_sealed = None;
        for u in &mut view.users {
            u.password = None;
            u.password_hash = None;
        }
        let mut value = serde_json::to_value(&view).unwrap_or(Value::Null);
        if self.kind == crate::model::AuthKind::Oidc {
            value["clientSecretSet"] =
                (self.client_secret.is_some() || self.client_secret_sealed.is_some()).into();
        }
        if let Some(users) = value.get_mut("users").and_then(Value::as_array_mut) {
            for (u, original) in users.iter_mut().zip(&self.users) {
                u["passwordSet"] =
                    (original.password.is_some() || original.password_hash.is_some()).into();
            }
        }
        value
    }

    /// A replacement that sends neither a password nor a hash for a user
    /// keeps that user's password; one that does not send the client
    /// secret keeps it.
    fn complete(&mut self, old: Option<&Self>, _random: [u8; 32]) -> Option<String> {
        let old = old?;
        if self.client_secret.is_none() && self.client_secret_sealed.is_none() {
            self.client_secret_sealed = old.client_secret_sealed.clone();
        }
        for u in &mut self.users {
            if u.password.is_none() && u.password_hash.is_none() {
                u.password_hash = old
                    .users
                    .iter()
                    .find(|o| o.username == u.username)
                    .and_then(|o| o.password_hash.clone());
            }
        }
        None
    }
}

impl Entity for ApiKey {
    const KIND: &'static str = "apikey";
    const COLLECTION: &'static str = "apikeys";
    const ID_FIELD: &'static str = "clientId";

    fn id(&self) -> &str {
        &self.client_id
    }
    fn all(doc: &Document) -> &Vec<Self> {
        &doc.apikeys
    }
    fn all_mut(doc: &mut Document) -> &mut Vec<Self> {
        &mut doc.apikeys
    }

    fn view(&self) -> Value {
        let mut key = self.clone();
        key.client_secret = None;
        key.client_secret_hash = None;
        key.client_secret_sealed = None;
        key.rotation.previous_secret_hash = None;
        key.rotation.previous_secret_sealed = None;
        serde_json::to_value(&key).unwrap_or(Value::Null)
    }

    fn complete(&mut self, old: Option<&Self>, random: [u8; 32]) -> Option<String> {
        if self.rotation.previous_secret_hash.is_none() {
            if let Some(old) = old {
                self.rotation.previous_secret_hash = old.rotation.previous_secret_hash.clone();
                self.rotation.previous_secret_sealed = old.rotation.previous_secret_sealed.clone();
                self.rotation.previous_expires_at = old.rotation.previous_expires_at.clone();
            }
        }
        match (&self.client_secret, &self.client_secret_hash, old) {
            (Some(clear), _, _) => Some(clear.clone()),
            (None, Some(_), _) => None,
            (None, None, Some(old)) => {
                self.client_secret_hash = old.client_secret_hash.clone();
                self.client_secret_sealed = old.client_secret_sealed.clone();
                None
            }
            // A caller with public keys needs no secret.
            (None, None, None) if !self.jwks.is_empty() => None,
            (None, None, None) => {
                let secret = generate_secret(random);
                self.client_secret = Some(secret.clone());
                Some(secret)
            }
        }
    }
}

/// Routes `/api/{collection}[/{id}]` by method.
pub(crate) async fn dispatch<T: Entity, S: ConfigStore, C: CounterStore, E: EventSink>(
    op: &Op<'_, S, C, E>,
    rest: &[&str],
) -> Result<AdminReply, AdminError> {
    match (rest, op.req.method) {
        ([], &Method::GET) => {
            let doc = op.load().await?;
            let views: Vec<Value> = T::all(&doc).iter().map(Entity::view).collect();
            Ok(ok(StatusCode::OK, &views))
        }
        ([], &Method::POST) => create::<T, _, _, _>(op).await,
        ([id], &Method::GET) => {
            let doc = op.load().await?;
            let found = T::all(&doc)
                .iter()
                .find(|e| e.id() == *id)
                .ok_or_else(|| not_found::<T>(id))?;
            Ok(ok(StatusCode::OK, &found.view()))
        }
        ([id], &Method::PUT) => replace::<T, _, _, _>(op, id, false).await,
        ([id], &Method::PATCH) => replace::<T, _, _, _>(op, id, true).await,
        ([id], &Method::DELETE) => delete::<T, _, _, _>(op, id).await,
        ([], _) => Err(AdminError::method_not_allowed(
            "GET, POST",
            format!("/api/{} answers GET and POST", T::COLLECTION),
        )),
        ([_], _) => Err(AdminError::method_not_allowed(
            "GET, PUT, PATCH, DELETE",
            format!(
                "/api/{}/{{id}} answers GET, PUT, PATCH and DELETE",
                T::COLLECTION
            ),
        )),
        _ => Err(AdminError::not_found(format!(
            "no admin endpoint at {}",
            op.req.path
        ))),
    }
}

fn not_found<T: Entity>(id: &str) -> AdminError {
    AdminError::not_found(format!("no {} with {} \"{id}\"", T::KIND, T::ID_FIELD))
}

/// Reads an entity from JSON, naming the field at fault.
fn parse<T: Entity>(value: Value) -> Result<T, AdminError> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| AdminError::invalid(ValidationErrors::from_serde(e)))
}

/// The answer to an accepted create or replace: the entity as shown, its
/// clear secret when one was just set (shown this once), `Location` for a
/// creation, and the compiled gateway to swap in.
fn entity_reply<T: Entity>(
    base_path: &str,
    status: StatusCode,
    committed: super::Committed<(T, Option<String>)>,
    location: bool,
) -> AdminReply {
    let (entity, secret) = committed.result;
    let mut view = entity.view();
    if let (Some(secret), Value::Object(map)) = (secret, &mut view) {
        map.insert("clientSecret".into(), Value::String(secret));
    }
    let mut reply = ok(status, &view);
    if location {
        let url = format!("{base_path}/api/{}/{}", T::COLLECTION, entity.id());
        if let Ok(v) = HeaderValue::from_str(&url) {
            reply.response.headers_mut().insert(header::LOCATION, v);
        }
    }
    reply.applied = Some(committed.gateway);
    reply
}

async fn create<T: Entity, S: ConfigStore, C: CounterStore, E: EventSink>(
    op: &Op<'_, S, C, E>,
) -> Result<AdminReply, AdminError> {
    let body = op.json_body()?;
    if !body.is_object() {
        return Err(AdminError::bad_request(
            "",
            format!("the body must be a JSON object (a {})", T::KIND),
        ));
    }
    let template: T = parse(body)?;
    let committed = op
        .commit(|doc| {
            let mut entity = template.clone();
            if T::all(doc).iter().any(|e| e.id() == entity.id()) {
                return Err(AdminError::conflict(format!(
                    "a {} with {} \"{}\" already exists",
                    T::KIND,
                    T::ID_FIELD,
                    entity.id()
                )));
            }
            let secret = entity.complete(None, op.ctx.random);
            let list = T::all_mut(doc);
            list.push(entity.clone());
            Ok(Change {
                renames: Vec::new(),
                focus: Some(format!("{}[{}]", T::FIELD, list.len() - 1)),
                action: format!("{}.create", T::KIND),
                target: Some(entity.id().to_owned()),
                before: None,
                after: Some(entity.view()),
                result: (entity, secret),
            })
        })
        .await?;
    Ok(entity_reply(
        op.ctx.base_path,
        StatusCode::CREATED,
        committed,
        true,
    ))
}

async fn replace<T: Entity, S: ConfigStore, C: CounterStore, E: EventSink>(
    op: &Op<'_, S, C, E>,
    id: &str,
    merge: bool,
) -> Result<AdminReply, AdminError> {
    let body = op.json_body()?;
    if !body.is_object() {
        return Err(AdminError::bad_request(
            "",
            format!("the body must be a JSON object (a {})", T::KIND),
        ));
    }
    let committed = op
        .commit(|doc| {
            let list = T::all(doc);
            let index = list.iter().position(|e| e.id() == id).ok_or_else(|| not_found::<T>(id))?;
            let old = list[index].clone();
            let mut value = if merge {
                let mut value = old.view();
                merge_patch(&mut value, &body);
                value
            } else {
                body.clone()
            };
            match value.get(T::ID_FIELD) {
                None => {
                    if let Value::Object(map) = &mut value {
                        map.insert(T::ID_FIELD.into(), Value::String(id.to_owned()));
                    }
                }
                Some(Value::String(given)) if given == id => {}
                Some(_) => {
                    return Err(AdminError::bad_request(
                        T::ID_FIELD,
                        format!("the {} cannot change (\"{id}\" in the URL); create a new one and delete this one", T::ID_FIELD),
                    ))
                }
            }
            let mut entity: T = parse(value)?;
            let secret = entity.complete(Some(&old), op.ctx.random);
            T::all_mut(doc)[index] = entity.clone();
            Ok(Change {
                renames: Vec::new(),
                focus: Some(format!("{}[{index}]", T::FIELD)),
                action: format!("{}.{}", T::KIND, if merge { "patch" } else { "replace" }),
                target: Some(id.to_owned()),
                before: Some(old.view()),
                after: Some(entity.view()),
                result: (entity, secret),
            })
        })
        .await?;
    Ok(entity_reply(
        op.ctx.base_path,
        StatusCode::OK,
        committed,
        false,
    ))
}

async fn delete<T: Entity, S: ConfigStore, C: CounterStore, E: EventSink>(
    op: &Op<'_, S, C, E>,
    id: &str,
) -> Result<AdminReply, AdminError> {
    let committed = op
        .commit(|doc| {
            let index = T::all(doc)
                .iter()
                .position(|e| e.id() == id)
                .ok_or_else(|| not_found::<T>(id))?;
            T::check_delete(doc, id)?;
            let old = T::all_mut(doc).remove(index);
            Ok(Change {
                renames: Vec::new(),
                focus: None,
                action: format!("{}.delete", T::KIND),
                target: Some(id.to_owned()),
                before: Some(old.view()),
                after: None,
                result: (),
            })
        })
        .await?;
    let mut response = super::json_response(StatusCode::NO_CONTENT, String::new());
    response.headers_mut().remove(header::CONTENT_TYPE);
    Ok(AdminReply {
        response,
        applied: Some(committed.gateway),
    })
}

/// The optional body of a rotation.
#[derive(serde::Deserialize, Default)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[cfg_attr(test, schemars(rename = "RotateRequest"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RotateBody {
    /// Overrides the key's `rotation.graceSeconds` for this rotation.
    grace_seconds: Option<u64>,
    /// The new secret (16 to 512 characters); generated when absent.
    #[cfg_attr(test, schemars(length(min = 16, max = 512)))]
    client_secret: Option<String>,
}

/// `POST /api/apikeys/{id}/rotate`: a new secret, returned once; the
/// previous one keeps working for the grace period.
pub(crate) async fn rotate<S: ConfigStore, C: CounterStore, E: EventSink>(
    op: &Op<'_, S, C, E>,
    id: &str,
) -> Result<AdminReply, AdminError> {
    let body: RotateBody = if op.req.body.iter().all(u8::is_ascii_whitespace) {
        RotateBody::default()
    } else {
        serde_path_to_error::deserialize(op.json_body()?)
            .map_err(|e| AdminError::invalid(ValidationErrors::from_serde(e)))?
    };
    if body.grace_seconds.is_some_and(|g| g > 30 * 86_400) {
        return Err(AdminError::bad_request(
            "graceSeconds",
            "must be at most 2592000 (30 days)",
        ));
    }
    let now = op.ctx.now_ms;
    let committed = op
        .commit(|doc| {
            let index = doc
                .apikeys
                .iter()
                .position(|k| k.client_id == id)
                .ok_or_else(|| not_found::<ApiKey>(id))?;
            let key = &mut doc.apikeys[index];
            let before = key.view();
            let grace = body.grace_seconds.unwrap_or(key.rotation.grace_seconds);
            let old_hash = key.client_secret_hash.take();
            let old_sealed = key.client_secret_sealed.take();
            if grace > 0 {
                key.rotation.previous_secret_hash = old_hash;
                key.rotation.previous_secret_sealed = old_sealed;
                key.rotation.previous_expires_at = Some(format_rfc3339(now + grace * 1000));
            } else {
                key.rotation.previous_secret_hash = None;
                key.rotation.previous_secret_sealed = None;
                key.rotation.previous_expires_at = None;
            }
            let secret = body
                .client_secret
                .clone()
                .unwrap_or_else(|| generate_secret(op.ctx.random));
            key.client_secret = Some(secret.clone());
            Ok(Change {
                renames: Vec::new(),
                focus: Some(format!("apikeys[{index}]")),
                action: "apikey.rotate".into(),
                target: Some(id.to_owned()),
                before: Some(before),
                after: Some(key.view()),
                result: (secret, key.rotation.previous_expires_at.clone()),
            })
        })
        .await?;
    let (secret, previous_until) = &committed.result;
    let mut alert = AlertEvent::new(
        "secret_rotated",
        Severity::Info,
        match previous_until {
            Some(until) => {
                format!("API key \"{id}\" has a new secret; the previous one works until {until}")
            }
            None => format!("API key \"{id}\" has a new secret; the previous one no longer works"),
        },
    );
    alert.key = Some(id.to_owned());
    alert.details = serde_json::json!({
        "previousSecretExpiresAt": previous_until,
        "revision": committed.revision,
        "actor": op.actor,
    });
    op.ctx.events.emit(Event::new(
        super::event_random(&op.ctx.random).rotate_left(1),
        now,
        EventData::Alert(alert),
    ));
    let mut reply = ok(
        StatusCode::OK,
        &serde_json::json!({
            "clientId": id,
            "clientSecret": secret,
            "previousSecretExpiresAt": previous_until,
            "revision": committed.revision,
        }),
    );
    reply.applied = Some(committed.gateway);
    Ok(reply)
}

/// The stored revision, the key's quota plan now, and its counts.
async fn consumption<S: ConfigStore, C: CounterStore, E: EventSink>(
    op: &Op<'_, S, C, E>,
    id: &str,
) -> Result<(u64, Plan, [u64; 3]), AdminError> {
    let doc = op.load().await?;
    let key = doc
        .apikeys
        .iter()
        .find(|k| k.client_id == id)
        .ok_or_else(|| not_found::<ApiKey>(id))?;
    let plan = Plan::new(&key.quotas, op.ctx.now_ms);
    let counts = op
        .ctx
        .counters
        .peek(id, plan.bumps())
        .await
        .map_err(|e| AdminError::store_unavailable(e.to_string()))?;
    Ok((doc.revision, plan, counts))
}

/// `DELETE /api/apikeys/{id}/quotas`: the key's consumption starts over in
/// every window (an audit event says who did it); answers the fresh
/// consumption, as `GET` does.
pub(crate) async fn reset_quotas<S: ConfigStore, C: CounterStore, E: EventSink>(
    op: &Op<'_, S, C, E>,
    id: &str,
) -> Result<AdminReply, AdminError> {
    let (revision, plan, before) = consumption(op, id).await?;
    op.ctx
        .counters
        .reset(id, plan.bumps())
        .await
        .map_err(|e| AdminError::store_unavailable(e.to_string()))?;
    let used = |counts: [u64; 3]| -> Value {
        plan.bumps()
            .iter()
            .zip(counts)
            .map(|(b, used)| (b.window.name().to_owned(), Value::from(used)))
            .collect::<serde_json::Map<String, Value>>()
            .into()
    };
    op.ctx.events.emit(Event::new(
        super::event_random(&op.ctx.random),
        op.ctx.now_ms,
        EventData::Audit(AuditEvent {
            actor: op.actor.to_owned(),
            user: op.person.cloned(),
            action: "apikey.quotas.reset".into(),
            target: Some(id.to_owned()),
            revision,
            before: Some(serde_json::json!({ "used": used(before) })),
            after: Some(serde_json::json!({ "used": used([0; 3]) })),
        }),
    ));
    quotas(op, id).await
}

/// `GET /api/apikeys/{id}/quotas`: consumption and remaining, per window.
pub(crate) async fn quotas<S: ConfigStore, C: CounterStore, E: EventSink>(
    op: &Op<'_, S, C, E>,
    id: &str,
) -> Result<AdminReply, AdminError> {
    let now = op.ctx.now_ms;
    let (_, plan, counts) = consumption(op, id).await?;
    let windows: Vec<Value> = plan
        .bumps()
        .iter()
        .zip(counts)
        .map(|(b, used)| {
            serde_json::json!({
                "window": b.window.name(),
                "limit": b.limit,
                "used": used,
                "remaining": b.limit.saturating_sub(used),
                "resetsAt": format_rfc3339(b.resets_at_ms),
            })
        })
        .collect();
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "clientId": id, "at": format_rfc3339(now), "windows": windows }),
    ))
}

/// `POST /api/auth-modules/{id}/revoke-sessions`: every session the module
/// opened so far is refused from now on (its `sessionsNotBefore` is set to
/// now); people log in again.
pub(crate) async fn revoke_sessions<S: ConfigStore, C: CounterStore, E: EventSink>(
    op: &Op<'_, S, C, E>,
    id: &str,
) -> Result<AdminReply, AdminError> {
    // Times are kept to the second: the next one, so that a session
    // opened earlier in this second is refused too.
    let now = format_rfc3339((op.ctx.now_ms / 1000 + 1) * 1000);
    let committed = op
        .commit(|doc| {
            let index = doc
                .auth_modules
                .iter()
                .position(|m| m.id == id)
                .ok_or_else(|| not_found::<crate::model::AuthModule>(id))?;
            let module = &mut doc.auth_modules[index];
            let before = module.view();
            module.sessions_not_before = Some(now.clone());
            Ok(Change {
                renames: Vec::new(),
                focus: Some(format!("authModules[{index}]")),
                action: "auth-module.revoke-sessions".into(),
                target: Some(id.to_owned()),
                before: Some(before),
                after: Some(module.view()),
                result: (),
            })
        })
        .await?;
    let mut reply = ok(
        StatusCode::OK,
        &serde_json::json!({
            "id": id,
            "sessionsNotBefore": now,
            "revision": committed.revision,
        }),
    );
    reply.applied = Some(committed.gateway);
    Ok(reply)
}
