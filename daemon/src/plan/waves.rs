//! How a rollout's tenants split into waves: the canary first, then waves of `wave_size`.

use std::ops::Range;

use crate::model::Strategy;

/// One wave: the positions (in selection order) of its tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WaveSpan {
    /// From 0.
    pub(crate) index: u32,
    /// True for the canary wave (always wave 0).
    pub(crate) canary: bool,
    /// Positions of its tenants.
    pub(crate) tenants: Range<usize>,
}

/// The waves of `n` tenants under `strategy`: the first `canary` tenants (if any) as wave 0,
/// then the rest in waves of `wave_size` (a count, or a percentage of all `n` rounded up;
/// none or zero: one wave). Every tenant is in exactly one wave; no wave is empty.
pub(crate) fn waves(n: usize, strategy: &Strategy) -> Vec<WaveSpan> {
    let mut waves = Vec::new();
    let canary = (strategy.canary as usize).min(n);
    if canary > 0 {
        waves.push(WaveSpan {
            index: 0,
            canary: true,
            tenants: 0..canary,
        });
    }
    let rest = n - canary;
    let size = strategy
        .wave_size
        .map(|a| a.of(n))
        .filter(|&s| s > 0)
        .unwrap_or(rest)
        .max(1);
    let mut start = canary;
    while start < n {
        let end = (start + size).min(n);
        waves.push(WaveSpan {
            index: waves.len() as u32,
            canary: false,
            tenants: start..end,
        });
        start = end;
    }
    waves
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Amount;

    fn sizes(n: usize, canary: u32, wave: Option<Amount>) -> Vec<usize> {
        let strategy = Strategy {
            canary,
            wave_size: wave,
            ..Strategy::default()
        };
        let waves = waves(n, &strategy);
        let mut next = 0;
        for (i, w) in waves.iter().enumerate() {
            assert_eq!(w.index as usize, i);
            assert_eq!(w.tenants.start, next, "waves leave a gap or overlap");
            assert_eq!(w.canary, i == 0 && canary > 0);
            next = w.tenants.end;
        }
        assert_eq!(next, n, "every tenant is in a wave");
        waves.iter().map(|w| w.tenants.len()).collect()
    }

    #[test]
    fn canary_first_then_waves_of_a_count_or_a_percentage() {
        assert_eq!(sizes(300, 1, Some(Amount::Percent(10))).len(), 1 + 10);
        assert_eq!(sizes(300, 1, Some(Amount::Percent(10)))[..3], [1, 30, 30]);
        assert_eq!(sizes(300, 1, Some(Amount::Percent(10)))[10], 29);
        assert_eq!(sizes(10, 0, Some(Amount::Count(4))), [4, 4, 2]);
        assert_eq!(sizes(10, 0, None), [10]);
        assert_eq!(sizes(10, 3, None), [3, 7]);
        assert_eq!(sizes(2, 5, None), [2]);
        assert_eq!(sizes(0, 1, None), Vec::<usize>::new());
        assert_eq!(sizes(5, 0, Some(Amount::Count(0))), [5]);
    }
}
