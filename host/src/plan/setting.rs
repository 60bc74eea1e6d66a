//! One setting of the plan and where it came from: a flag, a line of the
//! configuration file, or the default. Errors about a setting name its
//! origin, so an operator knows what to change.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Nobody set it: the default of this flag.
    Default(&'static str),
    /// The command line (or the flag's environment variable).
    Flag(&'static str),
    /// A line of the configuration file, under this key (`[service] user`).
    File(At, &'static str),
}

/// A line of the configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct At {
    pub file: Arc<PathBuf>,
    /// 1-based.
    pub line: usize,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

impl Origin {
    pub fn is_flag(&self) -> bool {
        matches!(self, Origin::Flag(_))
    }

    pub fn is_default(&self) -> bool {
        matches!(self, Origin::Default(_))
    }

    /// The file's line, when the file set it.
    pub fn at(&self) -> Option<&At> {
        match self {
            Origin::File(at, _) => Some(at),
            _ => None,
        }
    }

    /// The flag, or the file's key: what an operator changes.
    pub fn name(&self) -> &'static str {
        match self {
            Origin::Default(flag) | Origin::Flag(flag) => flag,
            Origin::File(_, key) => key,
        }
    }

    /// How an error names the setting with its value: `--user nobody`, or
    /// `p.toml:12: [service] user = "nobody"`.
    pub fn naming(&self, value: impl fmt::Display) -> String {
        match self {
            Origin::Default(flag) | Origin::Flag(flag) => format!("{flag} {value}"),
            Origin::File(at, key) => format!("{at}: {key} = \"{value}\""),
        }
    }

    /// `FILE:LINE: error` for what the file set; the error alone for the
    /// command line's (whose errors already name their flag).
    pub fn wrap(&self, e: anyhow::Error) -> anyhow::Error {
        match self.at() {
            Some(at) => e.context(at.to_string()),
            None => e,
        }
    }

    /// As [`Origin::wrap`], naming what the entry is when it is the file's.
    pub fn wrap_as(&self, e: anyhow::Error, what: &'static str) -> anyhow::Error {
        match self.at() {
            Some(_) => self.wrap(e.context(what)),
            None => e,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default(flag) => write!(f, "the default of {flag}"),
            Origin::Flag(flag) => f.write_str(flag),
            Origin::File(at, key) => write!(f, "{at}: {key}"),
        }
    }
}

/// A typed value with its origin.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Setting<T> {
    pub fn new(value: T, origin: Origin) -> Setting<T> {
        Setting { value, origin }
    }

    /// The file's value, unless a flag set this: flags win over the file,
    /// which wins over the default.
    pub fn offer(&mut self, value: Option<T>, origin: impl FnOnce() -> Origin) {
        if let Some(value) = value
            && !self.origin.is_flag()
        {
            *self = Setting::new(value, origin());
        }
    }
}

impl<T> std::ops::Deref for Setting<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}
