//! The examples' command lines: `--flag value` options and bare `--flag` switches.
// Each example uses the part it needs.
#![allow(dead_code)]

use std::str::FromStr;

/// The arguments this program was started with.
pub struct Args(Vec<String>);

impl Args {
    pub fn from_env() -> Self {
        Args(std::env::args().collect())
    }

    /// The argument after `flag`, where `flag` is given.
    pub fn value(&self, flag: &str) -> Option<String> {
        self.0
            .iter()
            .position(|a| a == flag)
            .map(|i| self.0[i + 1].clone())
    }

    /// The argument after `flag` read as a `T`, or `default` where `flag` is not given.
    pub fn parsed<T: FromStr>(&self, flag: &str, default: T) -> T {
        self.value(flag).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{flag} {v}: not a value of this option"))
        })
    }

    /// Whether the switch `flag` is given.
    pub fn has(&self, flag: &str) -> bool {
        self.0.iter().any(|a| a == flag)
    }
}
