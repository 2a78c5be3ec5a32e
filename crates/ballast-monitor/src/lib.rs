//! ballast-monitor: what a model's data looked like, and whether live traffic still looks
//! like it.
//!
//! - [`profile`]: the reference profile (quantile bins, category frequencies, missing rates)
//!   of a CSV file; `ballast profile` writes one.
//! - [`stats`]: drift statistics between two count vectors in the same bins (PSI,
//!   Jensen–Shannon, binned KS with its error bound, chi-square, binned Wasserstein-1).
//! - [`online`]: live requests counted in the reference's bins per window, with quality
//!   counters, and the verdict per feature.
//! - [`monitor`]: the observer on the serving tap that keeps those windows per version.
//! - [`offline`]: offline drift between two files (`ballast drift`), equal to scipy's tests.
//! - [`alerts`]: rules on those windows, their states, and signed delivery.

pub mod alerts;
pub mod monitor;
pub mod offline;
pub mod online;
pub mod profile;
pub mod stats;

pub use monitor::{Monitor, VersionReport};
pub use online::WindowOptions;
pub use profile::{
    Category, Column, ColumnProfile, Profile, ProfileError, ProfileOptions, profile_csv,
};
