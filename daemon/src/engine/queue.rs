//! One line per fleet and direction (issue 25, finding 9): rollouts that change a fleet
//! (not dry runs) in one direction run one at a time on a daemon, as Flyway's and Atlas's
//! migration lock makes a second `migrate` wait for the first. One request may wait its
//! turn (its call's first answer waits, up to `[limits] request_timeout`); while one runs
//! and one waits, a third is refused `RESOURCE_EXHAUSTED`, so 40 Applies make one run, one
//! wait and 38 refusals instead of 40 rollouts.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use crate::model::Direction;

/// How often a waiting request looks whether the running rollout ended, if no end
/// wakes it first.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The lines of every (fleet, direction); an entry lives while a request is in it.
#[derive(Default)]
pub(super) struct Lines {
    lines: Mutex<HashMap<(String, Direction), Arc<Line>>>,
}

/// One (fleet, direction)'s line: requests in it (waiting or starting), in order.
#[derive(Default)]
struct Line {
    /// Requests admitted and not yet gone (started, refused or dropped).
    admitted: Mutex<usize>,
    /// Held by the request whose turn it is, until its rollout is running.
    turn: tokio::sync::Mutex<()>,
}

/// A request's place in its line; leaving it (drop) lets the next request go.
pub(super) struct Place {
    line: Arc<Line>,
    key: (String, Direction),
    lines: Arc<Lines>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut lines = self
            .lines
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut admitted = self
            .line
            .admitted
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *admitted = admitted.saturating_sub(1);
        if *admitted == 0 {
            lines.remove(&self.key);
        }
    }
}

/// Why a request got no place.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Full;

impl Lines {
    /// A place in `fleet`'s line for `direction`, unless `running` (the rollouts of that
    /// fleet and direction running now) plus the requests already in the line make two.
    ///
    /// # Errors
    /// [`Full`] then.
    pub(super) fn join(
        self: &Arc<Self>,
        fleet: &str,
        direction: Direction,
        running: usize,
    ) -> Result<Place, Full> {
        let key = (fleet.to_owned(), direction);
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let line = lines.entry(key.clone()).or_default().clone();
        let mut admitted = line.admitted.lock().unwrap_or_else(PoisonError::into_inner);
        if running + *admitted >= 2 {
            if *admitted == 0 {
                drop(admitted);
                lines.remove(&key);
            }
            return Err(Full);
        }
        *admitted += 1;
        drop(admitted);
        Ok(Place {
            line,
            key,
            lines: self.clone(),
        })
    }
}

impl Place {
    /// Waits for this request's turn, then until `running()` is zero, looking again each
    /// time `ended` wakes it (a rollout stopped running); the turn is held by the returned
    /// guard until the rollout is started (or given up).
    pub(super) async fn turn(
        &self,
        running: impl Fn() -> usize,
        ended: &tokio::sync::Notify,
    ) -> tokio::sync::MutexGuard<'_, ()> {
        let turn = self.line.turn.lock().await;
        loop {
            // Registered before the look, so an end between the two is not missed.
            let woken = ended.notified();
            let mut woken = std::pin::pin!(woken);
            woken.as_mut().enable();
            if running() == 0 {
                return turn;
            }
            let _ = tokio::time::timeout(LOOK_EVERY, woken).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One runs, one waits, a third is refused; a place given up frees the line.
    #[test]
    fn one_waits_and_the_next_is_refused() {
        let lines = Arc::new(Lines::default());
        let waiting = lines.join("eu", Direction::Up, 1).expect("one may wait");
        assert_eq!(lines.join("eu", Direction::Up, 1).err(), Some(Full));
        // Another direction or another fleet has its own line.
        let down = lines
            .join("eu", Direction::Down, 1)
            .expect("rollbacks: a line of their own");
        let us = lines.join("us", Direction::Up, 1).expect("another fleet");
        drop((down, us));
        drop(waiting);
        assert!(
            lines.lines.lock().unwrap().is_empty(),
            "no line left behind"
        );
        // Nothing running: two may be in line (one starts, one waits), not three.
        let (a, b) = (
            lines.join("eu", Direction::Up, 0),
            lines.join("eu", Direction::Up, 0),
        );
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(lines.join("eu", Direction::Up, 0).err(), Some(Full));
    }
}
