//! The configuration model: routes, API keys, groups, exporters and settings, and the
//! whole configuration as one versioned [`Document`] (the export/import
//! document of the contract, and the on-disk format of the `file:` store).
//!
//! Every type is plain serde data with camelCase fields and
//! `deny_unknown_fields`, so a typo in a document is an error, never a
//! silently ignored setting. [`Document::validate`] checks what serde cannot
//! (references, formats, ranges) and names the field at fault, e.g.
//! `routes[2].backend.targets[0].url`.

mod apikey;
mod auth_module;
mod diff;
mod document;
mod exporter;
mod group;
mod otoroshi;
mod route;
mod settings;
mod validate;

pub use apikey::{ApiKey, HmacAlg, Quotas, Rotation};
pub use auth_module::{AuthKind, AuthModule, LocalUser, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
pub use diff::{Diff, EntityChange, Op};
pub use document::{AdminKey, Document, LocalState, FORMAT};
pub use exporter::{Exporter, ExporterKind};
pub use group::Group;
pub use otoroshi::{Challenge, InfoToken, OtoroshiProfile, OtoroshiSettings};
pub use route::{
    Backend, CircuitBreaker, Cors, HeaderChanges, HealthCheck, LoadBalancing, Redirect, Retries,
    Route, RouteAuth, StaticResponse, Strategy, Target, Timeouts, MAX_TARGETS,
};
pub use settings::{AlertSettings, MaintenanceSettings, MetricsSettings, QuotaFailure, Settings};
pub use validate::{
    check_secret, is_valid_id, FieldError, ValidationErrors, MAX_SECRET_CHARS, MIN_SECRET_CHARS,
};
