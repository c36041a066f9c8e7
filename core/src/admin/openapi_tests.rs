//! The OpenAPI document cannot drift from the code: its schemas for the
//! configuration entities and the handlers' bodies are generated from the
//! very types the API reads and writes (`schemars`, which follows their
//! serde attributes), and this test fails when the served document differs
//! from what they generate. `KOMAINU_BLESS=1 cargo test -p komainu-core
//! openapi` rewrites it.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Value};

use crate::model::{ApiKey, AuthModule, Document, Exporter, Group, Route};

/// The served document with every generated part put in place.
fn generated() -> Value {
    let mut doc: Value = serde_json::from_str(super::OPENAPI).expect("openapi.json is JSON");
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut generator = SchemaGenerator::new(settings);
    generator.subschema_for::<Document>();
    generator.subschema_for::<super::entities::RotateBody>();
    generator.subschema_for::<crate::migrate::Report>();
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("components.schemas");
    for (name, schema) in generator.definitions() {
        schemas.insert(name.clone(), schema.clone());
    }
    // PUT: the id comes from the path; the body may leave it out, and one
    // that differs is refused (400).
    for (name, id_field) in [
        (Route::schema_name(), "id"),
        (ApiKey::schema_name(), "clientId"),
        (Group::schema_name(), "id"),
        (Exporter::schema_name(), "id"),
        (AuthModule::schema_name(), "id"),
    ] {
        let mut schema = schemas[name.as_ref()].clone();
        if let Some(required) = schema["required"].as_array_mut() {
            required.retain(|f| f != id_field);
        }
        schema["description"] = json!(format!(
            "A {name} replacing the one named in the path. `{id_field}` may be left out: the path's wins, and a different one is refused (400)."
        ));
        schemas.insert(format!("{name}Replace"), schema);
    }
    // PATCH: a JSON merge patch of the entity, every field optional.
    for name in ["Route", "ApiKey", "Group", "Exporter", "AuthModule"] {
        let mut schema = schemas[name].clone();
        if let Some(map) = schema.as_object_mut() {
            map.remove("required");
        }
        schema["description"] = json!(format!(
            "A JSON merge patch (RFC 7396) of a {name}: the fields given replace the stored ones, null removes an optional one."
        ));
        schemas.insert(format!("{name}Patch"), schema);
    }
    // The answer to a create, replace or rotation shows a secret just set,
    // once: there `clientSecret` is read, not only written.
    let mut with_secret = schemas["ApiKey"].clone();
    if let Some(secret) = with_secret["properties"]["clientSecret"].as_object_mut() {
        secret.remove("writeOnly");
        secret.insert(
            "description".into(),
            json!("The secret just set or generated: shown in this answer only."),
        );
    }
    schemas.insert("ApiKeyWithSecret".into(), with_secret);
    for (path, name) in [
        ("/api/routes/{id}", "Route"),
        ("/api/apikeys/{clientId}", "ApiKey"),
        ("/api/groups/{id}", "Group"),
        ("/api/exporters/{id}", "Exporter"),
        ("/api/auth-modules/{id}", "AuthModule"),
    ] {
        doc["paths"][path]["put"]["requestBody"]["content"]["application/json"]["schema"] =
            json!({ "$ref": format!("#/components/schemas/{name}Replace") });
        for media in ["application/json", "application/merge-patch+json"] {
            doc["paths"][path]["patch"]["requestBody"]["content"][media]["schema"] =
                json!({ "$ref": format!("#/components/schemas/{name}Patch") });
        }
    }
    for (path, method, status) in [
        ("/api/apikeys", "post", "201"),
        ("/api/apikeys/{clientId}", "put", "200"),
        ("/api/apikeys/{clientId}", "patch", "200"),
    ] {
        doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"] =
            json!({ "$ref": "#/components/schemas/ApiKeyWithSecret" });
    }
    doc
}

#[test]
fn openapi_is_generated_from_the_types() {
    let generated = generated();
    let text = serde_json::to_string_pretty(&generated).expect("serializable") + "\n";
    if std::env::var_os("KOMAINU_BLESS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/admin/openapi.json");
        std::fs::write(path, &text).expect("write openapi.json");
        return;
    }
    assert!(
        text == super::OPENAPI,
        "core/src/admin/openapi.json differs from what the types generate: run KOMAINU_BLESS=1 cargo test -p komainu-core openapi, and review the diff"
    );
}

#[test]
fn documented_settings_and_put_bodies_match_the_code() {
    let doc: Value = serde_json::from_str(super::OPENAPI).expect("JSON");
    let schemas = &doc["components"]["schemas"];
    // Found by schemathesis once: fields the API returns were missing.
    assert!(schemas["Settings"]["properties"]["quotaFailure"].is_object());
    assert!(schemas["ApiKey"]["properties"]["clientSecretSealed"].is_object());
    for name in ["RouteReplace", "ApiKeyReplace", "GroupReplace"] {
        let required = schemas[name]["required"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            !required.contains(&json!("id")) && !required.contains(&json!("clientId")),
            "{name}: {required:?}"
        );
    }
}
