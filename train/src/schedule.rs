//! Learning-rate schedule: linear warm-up from `base * warmup_start` to `base`, then cosine decay to
//! `base * final_fraction` at the last step. Evaluated per optimisation step.

/// A warm-up + cosine schedule over a known number of steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Peak learning rate.
    pub base: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: usize,
    /// Total steps of the run.
    pub total_steps: usize,
    /// Fraction of `base` the warm-up starts from.
    pub warmup_start: f64,
    /// Fraction of `base` reached at the last step.
    pub final_fraction: f64,
}

impl Schedule {
    /// The schedule used by `fit`: warm-up from 10% of `base`, cosine down to 1%.
    pub fn new(base: f64, warmup_steps: usize, total_steps: usize) -> Self {
        Self {
            base,
            warmup_steps,
            total_steps: total_steps.max(1),
            warmup_start: 0.1,
            final_fraction: 0.01,
        }
    }

    /// Learning rate for step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            let t = step as f64 / self.warmup_steps as f64;
            return self.base * (self.warmup_start + (1.0 - self.warmup_start) * t);
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let t = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * t).cos());
        self.base * (self.final_fraction + (1.0 - self.final_fraction) * cosine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_then_decays() {
        let s = Schedule::new(1e-3, 10, 110);
        assert!((s.lr(0) - 1e-4).abs() < 1e-12);
        assert!((s.lr(5) - 5.5e-4).abs() < 1e-12);
        assert!((s.lr(10) - 1e-3).abs() < 1e-12);
        assert!((s.lr(60) - 1e-3 * (0.01 + 0.99 * 0.5)).abs() < 1e-12);
        assert!((s.lr(110) - 1e-5).abs() < 1e-12);
        assert!((s.lr(500) - 1e-5).abs() < 1e-12);
        assert!((1..110).all(|i| s.lr(i) <= 1e-3 + 1e-15));
    }
}
