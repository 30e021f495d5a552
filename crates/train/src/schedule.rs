//! Learning-rate schedules and discriminative learning rates.
//!
//! A schedule maps the step (`0..total`) to a factor of each group's maximum
//! learning rate, and optionally a momentum (one-cycle cycles it inversely).
//! [`LrSpec`] spreads one rate over parameter groups: a single value, a
//! geometric range `lo..hi` from the first group to the head (fastai's
//! `slice(lo, hi)`), or ULMFiT's "divide by 2.6 per group downwards".

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The shape of the learning rate over training.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    /// The maximum rate throughout.
    Constant,
    /// Multiply by `gamma` every `every` steps.
    Step { every: usize, gamma: f64 },
    /// Linear warm-up over `warmup` steps, then cosine down to `final_factor`.
    CosineWarmup { warmup: usize, final_factor: f64 },
    /// fastai's one-cycle: cosine up from `max/div` to `max` over `pct_start`
    /// of training, then cosine down to `max/(div·div_final)`; momentum
    /// cycles `moms.0 -> moms.1 -> moms.0`.
    OneCycle {
        pct_start: f64,
        div: f64,
        div_final: f64,
        moms: (f64, f64),
    },
    /// ULMFiT's slanted triangular rates: a short linear rise over
    /// `cut_frac` of training, a long linear decay; the lowest rate is
    /// `max/ratio`.
    SlantedTriangular { cut_frac: f64, ratio: f64 },
}

impl Schedule {
    /// One-cycle with fastai's defaults (pct_start 0.25, div 25, div_final 1e5, moms 0.95/0.85).
    pub fn one_cycle() -> Self {
        Schedule::OneCycle {
            pct_start: 0.25,
            div: 25.0,
            div_final: 1e5,
            moms: (0.95, 0.85),
        }
    }

    /// Slanted triangular with ULMFiT's defaults (cut_frac 0.1, ratio 32).
    pub fn slanted_triangular() -> Self {
        Schedule::SlantedTriangular {
            cut_frac: 0.1,
            ratio: 32.0,
        }
    }

    /// `(factor of the maximum rate, momentum override)` at `step` of `total`.
    pub fn at(&self, step: usize, total: usize) -> (f64, Option<f64>) {
        let total = total.max(1);
        let pos = (step as f64 / total as f64).clamp(0.0, 1.0);
        match *self {
            Schedule::Constant => (1.0, None),
            Schedule::Step { every, gamma } => (gamma.powi((step / every.max(1)) as i32), None),
            Schedule::CosineWarmup {
                warmup,
                final_factor,
            } => {
                if step < warmup {
                    ((step + 1) as f64 / warmup as f64, None)
                } else {
                    let p = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
                    (cos_anneal(1.0, final_factor, p.min(1.0)), None)
                }
            }
            Schedule::OneCycle {
                pct_start,
                div,
                div_final,
                moms,
            } => {
                if pos < pct_start {
                    let p = pos / pct_start;
                    (
                        cos_anneal(1.0 / div, 1.0, p),
                        Some(cos_anneal(moms.0, moms.1, p)),
                    )
                } else {
                    let p = (pos - pct_start) / (1.0 - pct_start).max(1e-12);
                    (
                        cos_anneal(1.0, 1.0 / (div * div_final), p),
                        Some(cos_anneal(moms.1, moms.0, p)),
                    )
                }
            }
            Schedule::SlantedTriangular { cut_frac, ratio } => {
                let cut = ((total as f64 * cut_frac).floor() as usize).max(1);
                let p = if step < cut {
                    step as f64 / cut as f64
                } else {
                    1.0 - (step - cut) as f64 / (cut as f64 * (1.0 / cut_frac - 1.0))
                };
                ((1.0 + p.max(0.0) * (ratio - 1.0)) / ratio, None)
            }
        }
    }

    /// Checks the constants.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: &str| Err(TrainError::Config(format!("{self:?}: {why}")));
        match *self {
            Schedule::Step { every: 0, .. } => bad("step size must be positive"),
            Schedule::Step { gamma, .. } if !(gamma > 0.0 && gamma.is_finite()) => {
                bad("gamma must be a positive number")
            }
            Schedule::OneCycle {
                pct_start,
                div,
                div_final,
                ..
            } if !(0.0..1.0).contains(&pct_start) || div <= 0.0 || div_final <= 0.0 => {
                bad("pct_start must be in [0, 1) and divisors positive")
            }
            Schedule::SlantedTriangular { cut_frac, ratio }
                if !(cut_frac > 0.0 && cut_frac < 1.0) || ratio < 1.0 =>
            {
                bad("cut_frac must be in (0, 1) and ratio at least 1")
            }
            _ => Ok(()),
        }
    }
}

/// Cosine interpolation from `start` (p = 0) to `end` (p = 1), as fastai's `SchedCos`.
fn cos_anneal(start: f64, end: f64, p: f64) -> f64 {
    end + (start - end) / 2.0 * (1.0 + (PI * p).cos())
}

/// The maximum learning rate of each parameter group.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum LrSpec {
    /// The same rate for every group.
    Fixed(f64),
    /// Geometrically spaced from `lo` (first group) to `hi` (the head).
    Range { lo: f64, hi: f64 },
    /// ULMFiT's discriminative rates: `top` for the head, divided by
    /// `factor` (2.6) for each group below.
    Ulmfit { top: f64, factor: f64 },
}

impl LrSpec {
    /// The rate of each of `groups` groups.
    pub fn per_group(&self, groups: usize) -> Result<Vec<f64>> {
        let check = |v: f64, what: &str| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(TrainError::Config(format!(
                    "{what} must be a positive number, got {v}"
                )))
            }
        };
        Ok(match *self {
            LrSpec::Fixed(lr) => {
                check(lr, "the learning rate")?;
                vec![lr; groups]
            }
            LrSpec::Range { lo, hi } => {
                check(lo, "the lower learning rate")?;
                check(hi, "the upper learning rate")?;
                if groups <= 1 {
                    vec![hi; groups]
                } else {
                    let step = (hi / lo).powf(1.0 / (groups - 1) as f64);
                    (0..groups).map(|i| lo * step.powi(i as i32)).collect()
                }
            }
            LrSpec::Ulmfit { top, factor } => {
                check(top, "the learning rate")?;
                check(factor, "the ULMFiT factor")?;
                (0..groups)
                    .map(|i| top / factor.powi((groups - 1 - i) as i32))
                    .collect()
            }
        })
    }

    /// The largest rate (the head's).
    pub fn max(&self) -> f64 {
        match *self {
            LrSpec::Fixed(lr) => lr,
            LrSpec::Range { hi, .. } => hi,
            LrSpec::Ulmfit { top, .. } => top,
        }
    }

    /// The same spec scaled by `f` (used by `fine_tune` to halve the rate).
    pub fn scaled(&self, f: f64) -> Self {
        match *self {
            LrSpec::Fixed(lr) => LrSpec::Fixed(lr * f),
            LrSpec::Range { lo, hi } => LrSpec::Range {
                lo: lo * f,
                hi: hi * f,
            },
            LrSpec::Ulmfit { top, factor } => LrSpec::Ulmfit {
                top: top * f,
                factor,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cycle_rises_then_falls_with_inverse_momentum() {
        let s = Schedule::one_cycle();
        let (f0, m0) = s.at(0, 100);
        let (fp, mp) = s.at(25, 100);
        let (fe, me) = s.at(100, 100);
        assert!((f0 - 1.0 / 25.0).abs() < 1e-12 && (m0.unwrap() - 0.95).abs() < 1e-12);
        assert!((fp - 1.0).abs() < 1e-12 && (mp.unwrap() - 0.85).abs() < 1e-12);
        assert!((fe - 1.0 / 2.5e6).abs() < 1e-15 && (me.unwrap() - 0.95).abs() < 1e-12);
    }

    #[test]
    fn slanted_triangular_matches_ulmfit() {
        // T = 1000, cut = 100: peak at step 100, ratio 32 at both ends
        let s = Schedule::slanted_triangular();
        assert!((s.at(0, 1000).0 - 1.0 / 32.0).abs() < 1e-12);
        assert!((s.at(100, 1000).0 - 1.0).abs() < 1e-12);
        assert!((s.at(1000, 1000).0 - 1.0 / 32.0).abs() < 1e-12);
        assert!(s.at(50, 1000).0 < 1.0 && s.at(550, 1000).0 < 1.0);
    }

    #[test]
    fn cosine_warmup_and_step() {
        let s = Schedule::CosineWarmup {
            warmup: 10,
            final_factor: 0.0,
        };
        assert!((s.at(9, 110).0 - 1.0).abs() < 1e-12);
        assert!((s.at(60, 110).0 - 0.5).abs() < 1e-12);
        assert!(s.at(110, 110).0.abs() < 1e-12);
        let st = Schedule::Step {
            every: 10,
            gamma: 0.5,
        };
        assert_eq!(st.at(25, 100).0, 0.25);
    }

    #[test]
    fn discriminative_rates() {
        let r = LrSpec::Range { lo: 1e-5, hi: 1e-3 }.per_group(3).unwrap();
        assert!(
            (r[0] - 1e-5).abs() < 1e-18
                && (r[1] - 1e-4).abs() < 1e-15
                && (r[2] - 1e-3).abs() < 1e-15
        );
        let u = LrSpec::Ulmfit {
            top: 0.01,
            factor: 2.6,
        }
        .per_group(3)
        .unwrap();
        assert!(
            (u[2] - 0.01).abs() < 1e-15
                && (u[1] - 0.01 / 2.6).abs() < 1e-15
                && (u[0] - 0.01 / 6.76).abs() < 1e-15
        );
        assert!(LrSpec::Fixed(-1.0).per_group(2).is_err());
    }
}
