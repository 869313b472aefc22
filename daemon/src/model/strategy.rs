//! How a rollout proceeds through its tenants: canary, waves, concurrency, failure
//! threshold, and the state a rollout is in.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A count of tenants, or a percentage of the tenants a rollout selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Amount {
    /// This many tenants.
    Count(u32),
    /// This percentage (0 to 100) of the selected tenants, rounded up.
    Percent(u32),
}

impl Amount {
    /// The number of tenants this amount is out of `total`: a percentage rounds up, so a
    /// non-zero percentage of a non-empty fleet is at least one tenant.
    pub fn of(self, total: usize) -> usize {
        match self {
            Self::Count(n) => n as usize,
            Self::Percent(p) => (total * p as usize).div_ceil(100),
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl FromStr for Amount {
    type Err = String;

    /// `"50"` or `"10%"`.
    ///
    /// # Errors
    /// A sentence when the text is neither a whole number nor a percentage from 0 to 100.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = || format!("{s:?} is not a count (\"50\") or a percentage (\"10%\")");
        match s.strip_suffix('%') {
            Some(p) => match p.trim().parse::<u32>() {
                Ok(p) if p <= 100 => Ok(Self::Percent(p)),
                Ok(_) => Err(format!(
                    "{s:?} is above 100%: give a percentage from 0% to 100%"
                )),
                _ => Err(bad()),
            },
            None => s.parse().map(Self::Count).map_err(|_| bad()),
        }
    }
}

/// A rollout's strategy, every field resolved (request over the fleet's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Strategy {
    /// The first N tenants run alone as wave 0 and must all succeed before others start.
    pub canary: u32,
    /// Tenants per wave after the canary; `None`: all of them in one wave.
    pub wave_size: Option<Amount>,
    /// Tenants at once, at least 1.
    pub concurrency: u32,
    /// Tenants at once on one database server; `None`: no limit but the budget.
    pub per_host_concurrency: Option<u32>,
    /// Failed tenants tolerated; past it no new tenant starts and the rollout fails.
    /// `None`: no limit.
    pub max_failures: Option<Amount>,
    /// Wait between waves, ms.
    pub pause_between_waves_ms: u64,
}

impl Default for Strategy {
    fn default() -> Self {
        Self {
            canary: 0,
            wave_size: None,
            concurrency: 8,
            per_host_concurrency: None,
            max_failures: None,
            pause_between_waves_ms: 0,
        }
    }
}

/// What a request asks of a strategy; every `None` takes the fleet's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyRequest {
    /// See [`Strategy::canary`].
    pub canary: Option<u32>,
    /// See [`Strategy::wave_size`]; `Some(None)` asks for a single wave.
    pub wave_size: Option<Option<Amount>>,
    /// See [`Strategy::concurrency`].
    pub concurrency: Option<u32>,
    /// See [`Strategy::per_host_concurrency`]; `Some(None)` lifts the fleet's limit.
    pub per_host_concurrency: Option<Option<u32>>,
    /// See [`Strategy::max_failures`].
    pub max_failures: Option<Option<Amount>>,
    /// See [`Strategy::pause_between_waves_ms`].
    pub pause_between_waves_ms: Option<u64>,
}

impl StrategyRequest {
    /// This request over `defaults`.
    pub fn over(self, defaults: Strategy) -> Strategy {
        Strategy {
            canary: self.canary.unwrap_or(defaults.canary),
            wave_size: self.wave_size.unwrap_or(defaults.wave_size),
            concurrency: self.concurrency.unwrap_or(defaults.concurrency),
            per_host_concurrency: self
                .per_host_concurrency
                .unwrap_or(defaults.per_host_concurrency),
            max_failures: self.max_failures.unwrap_or(defaults.max_failures),
            pause_between_waves_ms: self
                .pause_between_waves_ms
                .unwrap_or(defaults.pause_between_waves_ms),
        }
    }
}

/// The life of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Created, not started yet.
    Pending,
    /// Starting tenants.
    Running,
    /// Starting no tenant until resumed.
    Paused,
    /// Every tenant succeeded (or was planned, on a dry run).
    Succeeded,
    /// A tenant failed (past the threshold, or a canary).
    Failed,
    /// Stopped by a caller.
    Cancelled,
    /// The daemon stopped while it ran; resumable.
    Interrupted,
}

impl RolloutState {
    /// Every state, in the order of the life of a rollout.
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Running,
        Self::Paused,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::Interrupted,
    ];

    /// The spelling stored and shown: `pending`, `running`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
        }
    }

    /// True for states no rollout leaves by itself: succeeded, failed, cancelled.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl FromStr for RolloutState {
    type Err = String;

    /// The spelling of [`RolloutState::as_str`].
    ///
    /// # Errors
    /// A sentence naming the unknown state.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown rollout state {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_and_round_up() {
        assert_eq!("10%".parse::<Amount>(), Ok(Amount::Percent(10)));
        assert_eq!(" 7 ".parse::<Amount>(), Ok(Amount::Count(7)));
        assert!("101%".parse::<Amount>().is_err());
        assert!("-1".parse::<Amount>().is_err());
        assert!("ten".parse::<Amount>().is_err());
        assert_eq!(Amount::Percent(10).of(300), 30);
        assert_eq!(Amount::Percent(10).of(5), 1);
        assert_eq!(Amount::Percent(0).of(5), 0);
        assert_eq!(Amount::Count(3).of(1), 3);
    }

    #[test]
    fn a_request_overrides_only_what_it_sets() {
        let defaults = Strategy {
            canary: 1,
            per_host_concurrency: Some(4),
            ..Strategy::default()
        };
        let req = StrategyRequest {
            concurrency: Some(16),
            per_host_concurrency: Some(None),
            ..Default::default()
        };
        let s = req.over(defaults);
        assert_eq!(
            (s.canary, s.concurrency, s.per_host_concurrency),
            (1, 16, None)
        );
    }
}
