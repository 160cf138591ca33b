//! The settings store's one body, for both engines ([`evently_core::sql`]). The statements
//! are the same text on SQLite and PostgreSQL except where a document is written: PostgreSQL
//! keeps documents as `JSONB` (the text is cast on the way in), SQLite as JSON text; both
//! read it back as text. What else differs (migrations, connections) is in `sqlite.rs` and
//! `postgres.rs`.

use evently_bus::DomainEvent;
use evently_bus::catalog::SettingsDocument;
use evently_bus::envelope::time_from_ms;
use evently_core::db::StoreError;
use evently_core::sql::{Db, Row, Tx, query};
use serde_json::Value;
use uuid::Uuid;

use super::{AuditEntry, Document, NewDocument, SettingsStore, Write};
use crate::domain::{DocKey, Namespace, Scope};

/// The settings service's tables on either engine: in one SQLite file, or in the `settings`
/// schema of a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct SqlSettingsStore {
    pub(super) db: Db,
}

impl SqlSettingsStore {
    /// The outbox the store's writes append to, on the store's own connections.
    pub fn outbox(&self) -> evently_bus::outbox::SqlOutbox {
        evently_bus::outbox::SqlOutbox::new(self.db.clone())
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(anyhow::anyhow!("corrupt {what} column: {e}"))
}

fn json(row: &Row, column: &str) -> Result<Value, StoreError> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text).map_err(|e| corrupt(column, e))
}

fn key_from(row: &Row) -> Result<DocKey, StoreError> {
    let scope: String = row.get("scope")?;
    let namespace: String = row.get("namespace")?;
    Ok(DocKey {
        scope: Scope::parse(&scope).ok_or_else(|| corrupt("scope", &scope))?,
        scope_id: row.get("scope_id")?,
        namespace: Namespace::parse(&namespace).ok_or_else(|| corrupt("namespace", &namespace))?,
    })
}

fn text(value: &Value) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Other(e.into()))
}

/// Records `id` as applied; `false` if it already was.
async fn first_time(tx: &mut Tx, id: Uuid, now: i64) -> Result<bool, StoreError> {
    let inserted = query(
        "INSERT INTO applied_events (id, applied_at) VALUES ($1, $2) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(inserted == 1)
}

const INSERT_SQLITE: &str = "INSERT INTO documents (scope, scope_id, namespace, version, document, \
     updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7)";
const INSERT_POSTGRES: &str = "INSERT INTO documents (scope, scope_id, namespace, version, \
     document, updated_at, updated_by) VALUES ($1, $2, $3, $4, CAST($5 AS JSONB), $6, $7)";
const UPDATE_SQLITE: &str = "UPDATE documents SET version = $4, document = $5, updated_at = $6, \
     updated_by = $7 WHERE scope = $1 AND scope_id = $2 AND namespace = $3 AND version = $8";
const UPDATE_POSTGRES: &str = "UPDATE documents SET version = $4, document = CAST($5 AS JSONB), \
     updated_at = $6, updated_by = $7 \
     WHERE scope = $1 AND scope_id = $2 AND namespace = $3 AND version = $8";
const AUDIT_SQLITE: &str = "INSERT INTO audit (scope, scope_id, namespace, version, actor, at, \
     previous, document) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const AUDIT_POSTGRES: &str = "INSERT INTO audit (scope, scope_id, namespace, version, actor, at, \
     previous, document) VALUES ($1, $2, $3, $4, $5, $6, CAST($7 AS JSONB), CAST($8 AS JSONB))";

#[async_trait::async_trait]
impl SettingsStore for SqlSettingsStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(settings.scope = %key.scope, settings.scope_id = %key.scope_id))]
    async fn document(&self, key: DocKey) -> Result<Option<Document>, StoreError> {
        query(
            "SELECT scope, scope_id, namespace, version, CAST(document AS TEXT) AS document, \
             updated_at, updated_by FROM documents \
             WHERE scope = $1 AND scope_id = $2 AND namespace = $3",
        )
        .bind(key.scope.as_str())
        .bind(key.scope_id)
        .bind(key.namespace.as_str())
        .fetch_optional(self.db.reader())
        .await?
        .map(|row| {
            Ok(Document {
                key: key_from(&row)?,
                version: row.get("version")?,
                value: json(&row, "document")?,
                updated_at: row.get("updated_at")?,
                updated_by: row.get("updated_by")?,
            })
        })
        .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(settings.scope = %new.key.scope, settings.scope_id = %new.key.scope_id))]
    async fn write(&self, new: NewDocument<'_>, now: i64) -> Result<Write, StoreError> {
        let key = new.key;
        let mut tx = self.db.begin().await?;
        let read = tx.for_update(
            "SELECT version, CAST(document AS TEXT) AS document FROM documents \
             WHERE scope = $1 AND scope_id = $2 AND namespace = $3",
            "",
        );
        let current = query(read)
            .bind(key.scope.as_str())
            .bind(key.scope_id)
            .bind(key.namespace.as_str())
            .fetch_optional(&mut tx)
            .await?;
        let (version, previous) = match &current {
            Some(row) => (row.get::<i64>("version")?, Some(json(row, "document")?)),
            None => (0, None),
        };
        if !new.expected.admits(version) {
            return Ok(Write::Stale { current: version });
        }
        let next = version + 1;
        let document = text(new.value)?;
        // A first write inserts: of two racing first writes, the second meets the primary
        // key (never an upsert, which would overwrite the winner). A later write updates the
        // row it locked, at the version it read.
        let sql = match (version, tx.engine()) {
            (0, engine) => engine.pick(INSERT_SQLITE, INSERT_POSTGRES),
            (_, engine) => engine.pick(UPDATE_SQLITE, UPDATE_POSTGRES),
        };
        let mut statement = query(sql)
            .bind(key.scope.as_str())
            .bind(key.scope_id)
            .bind(key.namespace.as_str())
            .bind(next)
            .bind(&document)
            .bind(now)
            .bind(new.actor);
        if version > 0 {
            statement = statement.bind(version);
        }
        match statement.execute(&mut tx).await {
            Ok(1) => {}
            Ok(_) => {
                return Ok(Write::Stale {
                    current: version + 1,
                });
            }
            // Two first writes raced on PostgreSQL (no row to lock): the other won.
            Err(StoreError::Conflict { .. }) => return Ok(Write::Stale { current: 1 }),
            Err(e) => return Err(e),
        }
        let previous_text = previous.as_ref().map(text).transpose()?;
        query(tx.engine().pick(AUDIT_SQLITE, AUDIT_POSTGRES))
            .bind(key.scope.as_str())
            .bind(key.scope_id)
            .bind(key.namespace.as_str())
            .bind(next)
            .bind(new.actor)
            .bind(now)
            .bind(previous_text)
            .bind(&document)
            .execute(&mut tx)
            .await?;
        let event = DomainEvent::SettingsChanged(SettingsDocument {
            scope: key.scope.as_str().to_owned(),
            scope_id: key.scope_id,
            namespace: key.namespace.as_str().to_owned(),
            version: next,
            document: new.value.clone(),
        });
        evently_bus::outbox::append(&mut tx, &event.into_envelope(next, time_from_ms(now))).await?;
        tx.commit().await?;
        Ok(Write::Written(Document {
            key,
            version: next,
            value: new.value.clone(),
            updated_at: now,
            updated_by: new.actor,
        }))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn audit(
        &self,
        key: Option<DocKey>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        const COLUMNS: &str = "SELECT seq, scope, scope_id, namespace, version, actor, at, \
             CAST(previous AS TEXT) AS previous, CAST(document AS TEXT) AS document FROM audit";
        let before = before.unwrap_or(i64::MAX);
        let rows = match key {
            Some(key) => {
                query(evently_core::sql::Sql::assert_safe(format!(
                    "{COLUMNS} WHERE scope = $1 AND scope_id = $2 AND namespace = $3 \
                     AND seq < $4 ORDER BY seq DESC LIMIT $5"
                )))
                .bind(key.scope.as_str())
                .bind(key.scope_id)
                .bind(key.namespace.as_str())
                .bind(before)
                .bind(limit)
                .fetch_all(self.db.reader())
                .await?
            }
            None => {
                query(evently_core::sql::Sql::assert_safe(format!(
                    "{COLUMNS} WHERE seq < $1 ORDER BY seq DESC LIMIT $2"
                )))
                .bind(before)
                .bind(limit)
                .fetch_all(self.db.reader())
                .await?
            }
        };
        rows.iter()
            .map(|row| {
                let previous: Option<String> = row.get("previous")?;
                Ok(AuditEntry {
                    seq: row.get("seq")?,
                    key: key_from(row)?,
                    version: row.get("version")?,
                    actor: row.get("actor")?,
                    at: row.get("at")?,
                    previous: previous
                        .map(|p| serde_json::from_str(&p).map_err(|e| corrupt("previous", e)))
                        .transpose()?,
                    value: json(row, "document")?,
                })
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(envelope.id = %envelope_id, event.id = %event_id))]
    async fn apply_owner(
        &self,
        envelope_id: Uuid,
        event_id: Uuid,
        organizer_id: Option<Uuid>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.db.begin().await?;
        if !first_time(&mut tx, envelope_id, now).await? {
            return Ok(false);
        }
        match organizer_id {
            Some(organizer) => {
                query(
                    "INSERT INTO event_owners (event_id, organizer_id) VALUES ($1, $2) \
                     ON CONFLICT (event_id) DO UPDATE SET organizer_id = excluded.organizer_id",
                )
                .bind(event_id)
                .bind(organizer)
                .execute(&mut tx)
                .await?;
            }
            None => {
                query("DELETE FROM event_owners WHERE event_id = $1")
                    .bind(event_id)
                    .execute(&mut tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(event.id = %event_id))]
    async fn event_organizer(&self, event_id: Uuid) -> Result<Option<Uuid>, StoreError> {
        query("SELECT organizer_id FROM event_owners WHERE event_id = $1")
            .bind(event_id)
            .fetch_optional(self.db.reader())
            .await?
            .map(|row| row.get("organizer_id"))
            .transpose()
    }
}
