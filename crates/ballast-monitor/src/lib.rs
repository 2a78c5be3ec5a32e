//! ballast-monitor: what a model's data looked like, so that live traffic can be compared with
//! it. Today: the reference profile ([`profile`]), built from a CSV file by `ballast profile`.
//! The online windows (bin counts, quality counters, drift statistics) build on these bins.

pub mod profile;

pub use profile::{
    Category, Column, ColumnProfile, Profile, ProfileError, ProfileOptions, profile_csv,
};
