//! The library part of `chandir-cli`: the figures' look and atomic output ([`figure`]), shared by
//! the `chandir` command and by the examples of the `chandir` repository (its study and its
//! benchmark table), which take it as a dev-dependency.

#![warn(missing_docs)]

pub mod figure;
