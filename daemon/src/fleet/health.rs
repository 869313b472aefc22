//! A fleet's set, loaded or broken. One fleet whose set cannot be loaded (a file that does
//! not parse, a marker the dialect refuses) is *broken*: its own operations answer with why,
//! while every other fleet is served and the daemon stays ready (issue 24, item 9). Each
//! change between loaded and broken is logged once, whoever noticed it.

use std::sync::{Arc, PoisonError};

use super::{Fleet, FleetError};
use crate::model::MigrationSet;

impl Fleet {
    /// The fleet's migration set: for a fleet following a published set, the one it names
    /// as last read from the control store (by the engine); else from memory unless its
    /// directory changed since it was loaded (so new files need no restart, and an unchanged set is not parsed again).
    /// Notes whether the fleet is broken: the first failure after a success (or at start)
    /// is logged as an error, the first success after a failure as a recovery.
    ///
    /// # Errors
    /// [`FleetError::Catalog`] naming the file that does not load;
    /// [`FleetError::Published`] when the published set was not read here yet.
    pub fn load_set(&self) -> Result<Arc<MigrationSet>, FleetError> {
        if let Some(follows) = self.follows() {
            return self.current_published(&follows);
        }
        let loaded = self
            .set
            .get(&self.migrations, self.dialect, self.format, &self.lint);
        let now = loaded.as_ref().err().map(ToString::to_string);
        let mut broken = self.broken.lock().unwrap_or_else(PoisonError::into_inner);
        if *broken != now {
            match &now {
                Some(why) => tracing::error!(
                    fleet = %self.name,
                    "fleet broken: its migration set does not load ({why}); its other \
                     operations answer with this, the daemon's other fleets are served"
                ),
                None => {
                    tracing::info!(fleet = %self.name, "fleet repaired: its migration set loads")
                }
            }
            *broken = now;
        }
        drop(broken);
        loaded.map_err(|source| FleetError::Catalog {
            fleet: self.name.clone(),
            source,
        })
    }

    /// Why the fleet's set did not load when last read, or `None` while it loads.
    pub fn broken(&self) -> Option<String> {
        self.broken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
