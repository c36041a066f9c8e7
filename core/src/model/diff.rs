//! The difference between two configuration documents, entity by entity,
//! as `komainu sync` shows it before applying. Secrets never appear: a
//! changed secret hash is reported as a changed `secret`, without values.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::Document;

/// What happens to one entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Only in the source: it will be created.
    Added,
    /// In both, different: these fields will change.
    Changed,
    /// Only in the target: it will be removed.
    Removed,
}

/// One entity that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntityChange {
    /// `route`, `apikey`, `group` or `settings`.
    pub kind: &'static str,
    /// The entity's id (empty for settings).
    pub id: String,
    /// Added, changed or removed.
    pub op: Op,
    /// For a change: the top-level fields that differ (`secret` for the key's secret).
    pub fields: Vec<String>,
}

/// Every entity that differs, routes first, then keys, groups, exporters,
/// auth modules, settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff(pub Vec<EntityChange>);

impl Diff {
    /// What applying `source` over `target` would change in `target`
    /// (revisions and store-private state are not compared).
    pub fn between(source: &Document, target: &Document) -> Self {
        let mut changes = Vec::new();
        compare(
            "route",
            &by_id(&source.routes, "id"),
            &by_id(&target.routes, "id"),
            &mut changes,
        );
        compare(
            "apikey",
            &by_id(&source.apikeys, "clientId"),
            &by_id(&target.apikeys, "clientId"),
            &mut changes,
        );
        compare(
            "group",
            &by_id(&source.groups, "id"),
            &by_id(&target.groups, "id"),
            &mut changes,
        );
        compare(
            "exporter",
            &by_id(&source.exporters, "id"),
            &by_id(&target.exporters, "id"),
            &mut changes,
        );
        compare(
            "auth-module",
            &by_id(&source.auth_modules, "id"),
            &by_id(&target.auth_modules, "id"),
            &mut changes,
        );
        let settings = |d: &Document| serde_json::to_value(&d.settings).unwrap_or(Value::Null);
        let fields = changed_fields(&settings(source), &settings(target));
        if !fields.is_empty() {
            changes.push(EntityChange {
                kind: "settings",
                id: String::new(),
                op: Op::Changed,
                fields,
            });
        }
        Self(changes)
    }

    /// Whether the documents are the same.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return writeln!(f, "no difference");
        }
        for c in &self.0 {
            let sign = match c.op {
                Op::Added => '+',
                Op::Changed => '~',
                Op::Removed => '-',
            };
            write!(f, "{sign} {} {}", c.kind, c.id)?;
            if !c.fields.is_empty() {
                write!(f, " ({})", c.fields.join(", "))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

fn by_id<T: Serialize>(items: &[T], id_field: &str) -> BTreeMap<String, Value> {
    items
        .iter()
        .filter_map(|item| serde_json::to_value(item).ok())
        .filter_map(|v| Some((v.get(id_field)?.as_str()?.to_owned(), v)))
        .collect()
}

fn compare(
    kind: &'static str,
    source: &BTreeMap<String, Value>,
    target: &BTreeMap<String, Value>,
    out: &mut Vec<EntityChange>,
) {
    for (id, value) in source {
        match target.get(id) {
            None => out.push(EntityChange {
                kind,
                id: id.clone(),
                op: Op::Added,
                fields: Vec::new(),
            }),
            Some(old) => {
                let fields = changed_fields(value, old);
                if !fields.is_empty() {
                    out.push(EntityChange {
                        kind,
                        id: id.clone(),
                        op: Op::Changed,
                        fields,
                    });
                }
            }
        }
    }
    for id in target.keys().filter(|id| !source.contains_key(*id)) {
        out.push(EntityChange {
            kind,
            id: id.clone(),
            op: Op::Removed,
            fields: Vec::new(),
        });
    }
}

fn changed_fields(a: &Value, b: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (a, b) = (
        a.as_object().unwrap_or(&empty),
        b.as_object().unwrap_or(&empty),
    );
    let mut fields: Vec<String> = Vec::new();
    for k in a
        .keys()
        .chain(b.keys().filter(|k| !a.contains_key(*k)))
        .filter(|k| a.get(*k) != b.get(*k))
    {
        let name = match k.as_str() {
            "clientSecretHash" | "clientSecretSealed" => "secret",
            other => other,
        };
        if !fields.iter().any(|f| f == name) {
            fields.push(name.to_owned());
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document as exported (secrets in their stored forms).
    fn doc(json: &str) -> Document {
        Document::load(json.as_bytes()).unwrap().to_export()
    }

    #[test]
    fn added_changed_removed_and_no_secret_values() {
        let source = doc(r#"{"format":1,"revision":9,
            "routes":[{"id":"a","paths":["/a"],"backend":{}},{"id":"b","paths":["/b2"],"backend":{}}],
            "apikeys":[{"clientId":"k","clientSecret":"new-secret-0123456789"}]}"#);
        let target = doc(r#"{"format":1,"revision":2,
            "routes":[{"id":"b","paths":["/b"],"backend":{}},{"id":"c","paths":["/c"],"backend":{}}],
            "apikeys":[{"clientId":"k","clientSecret":"old-secret-0123456789"}]}"#);
        let diff = Diff::between(&source, &target);
        let text = diff.to_string();
        assert_eq!(
            text,
            "+ route a\n~ route b (paths)\n- route c\n~ apikey k (secret)\n"
        );
        assert!(!text.contains("secret-") && !text.contains("hmac"));
        assert!(Diff::between(&source, &source).is_empty());
        let mut same = source.clone();
        same.revision = 100;
        assert!(
            Diff::between(&source, &same).is_empty(),
            "revisions are not compared"
        );
    }
}
