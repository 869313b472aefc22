//! The tenant-level engine: run migrations on one tenant and record them. Take the tenant
//! lock, read the history and plan under it, run each step in a transaction or statement by
//! statement, record every change in the history table and its log, release the lock. Used
//! by rollouts, baseline, adoption and repair alike; it knows nothing of jobs, waves or the
//! control store, and tells its caller what happens through an [`Observer`].
//!
//! | file | what | DESIGN.md rule |
//! | --- | --- | --- |
//! | `lock.rs` | [`under_lock`]: the tenant lock held by a guard, released on every path | 3 |
//! | `tenant.rs` | [`run`] and [`dry_run`]: one tenant's plan under the lock, step by step | 4 |
//! | `transaction.rs` | the one transaction runner: steps and their history rows, one commit | 1, 5 |
//! | `statements.rs` | the non-transactional path: a `running` row, then statement by statement | 2, 5 |
//! | `guard.rs` | a statement that gave up waiting for a lock, retried with backoff within the server's budget | 7 |
//! | `record.rs` | [`RunMeta`] and the `Recorder`: every history row a step writes, and where a failure is | 5 |
//! | `report.rs` | what a tenant ended with ([`TenantReport`]) and its state afterwards | 9 |
//! | `observer.rs` | [`Observer`]: events, metrics and cancellation, for the caller | |
//! | `baseline.rs` | versions recorded applied without running them (baseline, adoption) | 5 |
//! | `repair.rs` | an operator's verdict on one record | 5 |
//! | `fake.rs`, `tests.rs` | a scripted fake database, and unit tests of every rule on it | |
//! | `backup_tests.rs` | when the engine asks its observer for a backup, and a failed one | |

mod baseline;
mod guard;
mod lock;
mod observer;
mod record;
mod repair;
mod report;
mod statements;
mod tenant;
mod transaction;

#[cfg(test)]
mod backup_tests;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

pub(crate) use baseline::{BaselineError, baseline};
pub(crate) use lock::under_lock;
pub(crate) use observer::Observer;
pub(crate) use record::{RunMeta, StepOutcome};
pub use repair::RepairError;
pub(crate) use repair::{Repaired, repair};
pub(crate) use report::TenantReport;
pub(crate) use tenant::{Job, dry_run, run};
