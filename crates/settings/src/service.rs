//! The settings operations: who may read and write which scope, the conditional writes
//! (`PUT` replaces, `PATCH` merges an RFC 7396 patch; both checked against the namespace's
//! schema before the store sees them), the effective value, the audit trail, and applying the
//! events service's stream (which organizer owns which event).

use evently_core::clock::SharedClock;
use evently_core::identity::{Identity, Role};
use serde_json::{Map, Value};
use std::sync::Arc;
use uuid::Uuid;

use crate::domain::{DocKey, Effective, Expected, Scope, effective, merge_patch};
use crate::error::SettingsError;
use crate::schema::Schemas;
use crate::store::{AuditEntry, NewDocument, SettingsStore, Write};

/// A document as read: absent documents read as `{}` at version 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    /// Which.
    pub key: DocKey,
    /// Its version (0: never written).
    pub version: i64,
    /// The keys set at this scope.
    pub value: Value,
    /// When it was last written (epoch ms), if ever.
    pub updated_at: Option<i64>,
    /// Who wrote it last, if anyone.
    pub updated_by: Option<Uuid>,
}

/// A change asked for: the whole document, or a merge patch.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// `PUT`: replaces the document.
    Replace(&'a Value),
    /// `PATCH`: RFC 7396 merge patch over the document.
    Merge(&'a Value),
}

/// The settings operations.
pub struct SettingsService {
    store: Arc<dyn SettingsStore>,
    schemas: Arc<Schemas>,
    clock: SharedClock,
}

impl std::fmt::Debug for SettingsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsService").finish_non_exhaustive()
    }
}

impl SettingsService {
    /// The service over `store`, checking documents with `schemas`.
    pub fn new(store: Arc<dyn SettingsStore>, schemas: Arc<Schemas>, clock: SharedClock) -> Self {
        Self {
            store,
            schemas,
            clock,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SettingsStore> {
        &self.store
    }

    /// The compiled schemas.
    pub fn schemas(&self) -> &Arc<Schemas> {
        &self.schemas
    }

    fn now(&self) -> i64 {
        evently_bus::envelope::time_to_ms(self.clock.now())
    }

    /// Checks that `caller` may read (`write` false) or change `key`: a user their own
    /// preferences; admins the platform; an organizer their own scope, an event's organizer
    /// that event; admins every organizer and event.
    ///
    /// # Errors
    /// 403 or 404 (an event the caller does not organise reads as unknown).
    pub async fn authorize(&self, caller: &Identity, key: DocKey) -> Result<(), SettingsError> {
        let admin = caller.role == Role::Admin;
        match key.scope {
            Scope::User if key.scope_id == caller.user_id.0 => Ok(()),
            Scope::User => Err(SettingsError::NotFound),
            Scope::Platform if admin => Ok(()),
            Scope::Platform => Err(SettingsError::Forbidden("platform settings are for admins")),
            Scope::Organizer if admin => Ok(()),
            Scope::Organizer
                if caller.role == Role::Organizer && key.scope_id == caller.user_id.0 =>
            {
                Ok(())
            }
            Scope::Organizer => Err(SettingsError::Forbidden(
                "an organizer's settings are for that organizer and admins",
            )),
            // Admins may set an event's settings before its creation reaches this service.
            Scope::Event if admin => Ok(()),
            Scope::Event => {
                let owner = self.store.event_organizer(key.scope_id).await?;
                if caller.role == Role::Organizer && owner == Some(caller.user_id.0) {
                    Ok(())
                } else {
                    Err(SettingsError::NotFound)
                }
            }
        }
    }

    /// The document `key` (after [`Self::authorize`]).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn read(&self, key: DocKey) -> Result<Read, SettingsError> {
        Ok(match self.store.document(key).await? {
            Some(d) => Read {
                key,
                version: d.version,
                value: d.value,
                updated_at: Some(d.updated_at),
                updated_by: Some(d.updated_by),
            },
            None => Read {
                key,
                version: 0,
                value: Value::Object(Map::new()),
                updated_at: None,
                updated_by: None,
            },
        })
    }

    /// Applies `change` to `key` as `caller` if the document is at `expected` (`If-Match`;
    /// required): the result must match the namespace's schema.
    ///
    /// # Errors
    /// 428 without `If-Match`, 412 on a stale one, 422 for a result that breaks the schema
    /// (nothing is written then).
    pub async fn write(
        &self,
        caller: &Identity,
        key: DocKey,
        expected: Option<Expected>,
        change: Change<'_>,
    ) -> Result<Read, SettingsError> {
        let expected = expected.ok_or(SettingsError::PreconditionRequired)?;
        let (document, expected) = match change {
            Change::Replace(value) => (value.clone(), expected),
            Change::Merge(patch) => {
                self.schemas.validate_patch(key.namespace, patch)?;
                let current = self.read(key).await?;
                if !expected.admits(current.version) {
                    return Err(SettingsError::Stale {
                        current: current.version,
                    });
                }
                let mut merged = current.value;
                merge_patch(&mut merged, patch);
                // The patch was made against this version: a write in between is stale.
                (merged, Expected::Version(current.version))
            }
        };
        self.schemas.validate(key.namespace, &document)?;
        let written = self
            .store
            .write(
                NewDocument {
                    key,
                    expected,
                    value: &document,
                    actor: caller.user_id.0,
                },
                self.now(),
            )
            .await?;
        match written {
            Write::Written(d) => {
                tracing::info!(
                    settings.scope = %key.scope,
                    settings.scope_id = %key.scope_id,
                    settings.namespace = %key.namespace,
                    settings.version = d.version,
                    user.id = %caller.user_id.0,
                    "settings changed"
                );
                Ok(Read {
                    key,
                    version: d.version,
                    value: d.value,
                    updated_at: Some(d.updated_at),
                    updated_by: Some(d.updated_by),
                })
            }
            Write::Stale { current } => Err(SettingsError::Stale { current }),
        }
    }

    /// The effective value of `key`'s namespace at its scope: the schema's defaults, then
    /// the platform's document, the organizer's and the event's, as far as the scope goes
    /// (a user's preferences: defaults, then the user's).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn effective(&self, key: DocKey) -> Result<Effective, SettingsError> {
        let mut chain = Vec::new();
        match key.scope {
            Scope::User => chain.push(key),
            Scope::Platform => chain.push(DocKey::platform()),
            Scope::Organizer => {
                chain.push(DocKey::platform());
                chain.push(key);
            }
            Scope::Event => {
                chain.push(DocKey::platform());
                if let Some(organizer) = self.store.event_organizer(key.scope_id).await? {
                    chain.push(DocKey::new(Scope::Organizer, organizer));
                }
                chain.push(key);
            }
        }
        let mut layers = Vec::with_capacity(chain.len());
        for k in chain {
            if let Some(d) = self.store.document(k).await? {
                layers.push((k.scope, d.value));
            }
        }
        let refs: Vec<(Scope, &Value)> = layers.iter().map(|(s, v)| (*s, v)).collect();
        Ok(effective(self.schemas.defaults(key.namespace), &refs))
    }

    /// The audit trail (admins only; see [`SettingsStore::audit`]).
    ///
    /// # Errors
    /// 403 for anyone else.
    pub async fn audit(
        &self,
        caller: &Identity,
        key: Option<DocKey>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, SettingsError> {
        if caller.role != Role::Admin {
            return Err(SettingsError::Forbidden("the audit trail is for admins"));
        }
        Ok(self.store.audit(key, before, limit).await?)
    }

    /// Applies one of the events service's domain events: which organizer owns which
    /// event. Other events are skipped.
    ///
    /// # Errors
    /// When the store fails (the event is delivered again).
    pub async fn apply(&self, envelope: &evently_bus::Envelope) -> anyhow::Result<()> {
        use evently_bus::DomainEvent;
        let (event_id, organizer) = match DomainEvent::decode(envelope) {
            Ok(DomainEvent::EventCreated(e) | DomainEvent::EventUpdated(e)) => {
                (e.event_id, Some(e.organizer_id))
            }
            Ok(DomainEvent::EventDeleted { event_id }) => (event_id, None),
            Ok(_) | Err(evently_bus::catalog::DecodeError::Unknown { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        self.store
            .apply_owner(envelope.id, event_id, organizer, self.now())
            .await
            .map_err(|e| anyhow::anyhow!("applying {}: {e}", envelope.event_type))?;
        Ok(())
    }
}
