//! Migrations from other gateways' configurations: a foreign export in,
//! a Komainu [`crate::model::Document`] and a report out. The admin API
//! imports the document like any other (atomically, `dryRun`, `merge`).

pub mod otoroshi;

use serde::Serialize;

/// What became of one entity of the foreign export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Mapped as it was.
    Mapped,
    /// Mapped, with differences (the notes say which, and how).
    Approximated,
    /// Not imported (the notes say why).
    Dropped,
    /// Cannot be imported as it is: the import is refused (the notes say
    /// what to change).
    Error,
}

/// The report on one entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct EntityReport {
    /// Its kind in the foreign export (`serviceDescriptors`, `routes`,
    /// `apiKeys`, …).
    pub kind: String,
    /// Its id there.
    pub id: String,
    /// Its name there, if any.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// What became of it.
    pub status: Status,
    /// The Komainu entities made from it (`routes/users-api`, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub became: Vec<String>,
    /// What was approximated, dropped or wrong, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl EntityReport {
    /// A report for an entity, mapped until a note says otherwise.
    pub fn new(kind: &str, id: &str, name: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            id: id.to_owned(),
            name: name.to_owned(),
            status: Status::Mapped,
            became: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Notes an approximation (the entity stays imported).
    pub fn approximated(&mut self, note: impl Into<String>) {
        if self.status == Status::Mapped {
            self.status = Status::Approximated;
        }
        self.notes.push(note.into());
    }

    /// Notes that part of the entity (or all of it) was left out.
    pub fn dropped_part(&mut self, note: impl Into<String>) {
        self.approximated(note);
    }

    /// Drops the whole entity.
    pub fn drop_all(&mut self, note: impl Into<String>) {
        if self.status != Status::Error {
            self.status = Status::Dropped;
        }
        self.notes.push(note.into());
    }

    /// Marks the entity as impossible to import as it is.
    pub fn error(&mut self, note: impl Into<String>) {
        self.status = Status::Error;
        self.notes.push(note.into());
    }
}

/// The report on a whole migration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[cfg_attr(test, schemars(rename = "MigrationReport"))]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The source (`otoroshi`).
    pub source: String,
    /// How many entities were mapped, approximated, dropped, in error.
    pub summary: Summary,
    /// One entry per entity of the export.
    pub entities: Vec<EntityReport>,
}

/// Counts of a report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Summary {
    /// Mapped as they were.
    pub mapped: usize,
    /// Mapped with differences.
    pub approximated: usize,
    /// Not imported.
    pub dropped: usize,
    /// In error (the import is refused).
    pub errors: usize,
}

impl Report {
    /// Counts the entities by status.
    pub fn finish(&mut self) {
        let mut s = Summary::default();
        for e in &self.entities {
            match e.status {
                Status::Mapped => s.mapped += 1,
                Status::Approximated => s.approximated += 1,
                Status::Dropped => s.dropped += 1,
                Status::Error => s.errors += 1,
            }
        }
        self.summary = s;
    }

    /// The entities in error, as field errors (`apiKeys[xQ3b…]: …`).
    pub fn errors(&self) -> Vec<crate::model::FieldError> {
        self.entities
            .iter()
            .filter(|e| e.status == Status::Error)
            .map(|e| crate::model::FieldError {
                field: format!("{}[{}]", e.kind, e.id),
                message: e.notes.join("; "),
            })
            .collect()
    }
}
