//! Groups of routes: a key that shares a group with a route may call it.

use serde::{Deserialize, Serialize};

/// A named group of routes and keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Group {
    /// Unique id, referenced by routes' and keys' `groups`.
    #[cfg_attr(test, schemars(regex(pattern = r"^[A-Za-z0-9._~@+-]{1,128}$")))]
    pub id: String,
    /// Human-readable name.
    #[serde(default)]
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}
