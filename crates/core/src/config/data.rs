//! `[data]`: the data service's settings (imports and exports).

use anyhow::bail;
use serde::Deserialize;

/// `[data]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Largest uploaded import file in bytes (413 beyond it).
    pub max_import_bytes: usize,
    /// Most data rows in an imported file (422 beyond it).
    pub max_import_rows: usize,
    /// Hours an import job's report is kept after it finished.
    pub keep_hours: u64,
    /// Events read from the events service per page while exporting.
    pub export_page_size: u32,
    /// URL of the events service (`http://events:8080`) when it does not run in the data
    /// service's process. Unset: `gateway.services.events`.
    pub events_url: Option<String>,
    /// URL of the booking service (`http://booking:8080`) when it does not run in the data
    /// service's process. Unset: `gateway.services.booking`; neither: orders exports answer 503.
    pub booking_url: Option<String>,
    /// URL of the auth service (`http://auth:8080`) when it does not run in the data
    /// service's process (orders exports name their buyers). Unset: `gateway.services.auth`;
    /// neither: buyers' names and e-mails are left empty.
    pub auth_url: Option<String>,
    /// Seconds a call to the events or booking service of another process may take (503
    /// after).
    pub upstream_timeout_seconds: u64,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            max_import_bytes: 5 * 1024 * 1024,
            max_import_rows: 10_000,
            keep_hours: 24,
            export_page_size: 500,
            events_url: None,
            booking_url: None,
            auth_url: None,
            upstream_timeout_seconds: 30,
        }
    }
}

impl DataConfig {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if !(1024..=64 * 1024 * 1024).contains(&self.max_import_bytes) {
            bail!("data.max_import_bytes must be between 1024 and 67108864");
        }
        if !(1..=1_000_000).contains(&self.max_import_rows) {
            bail!("data.max_import_rows must be between 1 and 1000000");
        }
        if !(1..=24 * 30).contains(&self.keep_hours) {
            bail!("data.keep_hours must be between 1 and 720");
        }
        if !(1..=10_000).contains(&self.export_page_size) {
            bail!("data.export_page_size must be between 1 and 10000");
        }
        if !(1..=600).contains(&self.upstream_timeout_seconds) {
            bail!("data.upstream_timeout_seconds must be between 1 and 600");
        }
        Ok(())
    }
}
