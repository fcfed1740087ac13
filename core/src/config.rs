//! Configs: one point of a kernel's tunable space, a map from parameter name to integer value.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A set of named integer parameters. Ordered by name, so its text and JSON forms are stable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Config(BTreeMap<String, i64>);

impl Config {
    /// An empty config.
    pub fn new() -> Self {
        Config::default()
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<i64> {
        self.0.get(name).copied()
    }

    /// The value of `name`, or an error naming it when it is missing.
    pub fn require(&self, name: &str) -> Result<i64> {
        self.get(name)
            .ok_or_else(|| Error::InvalidConfig(format!("missing parameter '{name}'")))
    }

    /// Sets `name` to `value`, returning the previous value.
    pub fn set(&mut self, name: &str, value: i64) -> Option<i64> {
        self.0.insert(name.to_string(), value)
    }

    /// Builder form of [`Config::set`].
    pub fn with(mut self, name: &str, value: i64) -> Self {
        self.set(name, value);
        self
    }

    /// The parameters in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i64)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Number of parameters set.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no parameter is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `self` with every parameter of `overrides` replaced.
    pub fn merged(&self, overrides: &Config) -> Config {
        let mut out = self.clone();
        for (k, v) in overrides.iter() {
            out.set(k, v);
        }
        out
    }
}

impl fmt::Display for Config {
    /// `name=value,name=value`, the same form [`Config::from_str`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (k, v) in self.iter() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

impl FromStr for Config {
    type Err = Error;
    /// Parses `name=value,name=value` (spaces allowed, empty string is the empty config).
    fn from_str(s: &str) -> Result<Self> {
        let mut c = Config::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) = item.split_once('=').ok_or_else(|| {
                Error::InvalidConfig(format!("'{item}' is not of the form name=value"))
            })?;
            let k = k.trim();
            if k.is_empty() || !k.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
                return Err(Error::InvalidConfig(format!(
                    "'{k}' is not a parameter name"
                )));
            }
            let v: i64 = v.trim().parse().map_err(|_| {
                Error::InvalidConfig(format!("value of '{k}' is not an integer: '{}'", v.trim()))
            })?;
            if c.set(k, v).is_some() {
                return Err(Error::InvalidConfig(format!("'{k}' is given twice")));
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        let c: Config = " mc=96, kc=256 ,nc=4096".parse().unwrap();
        assert_eq!(c.get("kc"), Some(256));
        assert_eq!(c.to_string(), "kc=256,mc=96,nc=4096");
        assert_eq!(c.to_string().parse::<Config>().unwrap(), c);
        assert!("".parse::<Config>().unwrap().is_empty());
        for bad in ["mc", "mc=x", "=3", "mc=1,mc=2", "m c=3", "mc=1.5"] {
            assert!(bad.parse::<Config>().is_err(), "{bad} parsed");
        }
    }
}
