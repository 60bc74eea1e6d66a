//! The loaded mechanisms, by SASL name.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use anyhow::bail;

use crate::portal::{Mechanism, MechanismInfo, Portal};

/// A SASL mechanism name (RFC 4422 §3.1), stored upper case.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mechname(String);

impl Mechname {
    /// Parses a name as a client sends it; SASL names are case-insensitive.
    pub fn parse(raw: &[u8]) -> Option<Mechname> {
        let valid = !raw.is_empty()
            && raw.len() <= 20
            && raw
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
        valid.then(|| Mechname(String::from_utf8_lossy(raw).to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Mechname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A loaded mechanism and what it said about itself.
pub struct Registered {
    pub mechanism: Arc<dyn Mechanism>,
    pub info: MechanismInfo,
}

/// Every mechanism the host can run.
#[derive(Default)]
pub struct Mechanisms {
    by_name: BTreeMap<Mechname, Registered>,
}

impl fmt::Debug for Mechanisms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

impl Mechanisms {
    /// Adds a mechanism plugin; a later one replaces an earlier one of the
    /// same name (so operators can replace a built-in).
    pub async fn register(&mut self, mechanism: Arc<dyn Mechanism>) -> anyhow::Result<Mechname> {
        let info = mechanism.info().await?;
        let Some(name) = Mechname::parse(info.name.as_bytes()) else {
            bail!(
                "plugin {} names itself {:?}, not a SASL name",
                mechanism.name(),
                info.name
            );
        };
        self.by_name
            .insert(name.clone(), Registered { mechanism, info });
        Ok(name)
    }

    pub fn get(&self, name: &Mechname) -> Option<&Registered> {
        self.by_name.get(name)
    }

    /// Removes a mechanism (an operator's exclusion).
    pub fn remove(&mut self, name: &Mechname) -> bool {
        self.by_name.remove(name).is_some()
    }

    /// The mechanisms a client may use now: a checker serves one of the
    /// kinds it needs, and it is not a plaintext one on a channel where
    /// those are not allowed.
    pub fn offered<'a>(
        &'a self,
        portal: &'a Portal,
        allow_plaintext: bool,
    ) -> impl Iterator<Item = &'a Mechname> + 'a {
        self.by_name
            .iter()
            .filter(move |(_, m)| allow_plaintext || !m.info.plaintext)
            .filter(|(_, m)| {
                m.info
                    .kinds
                    .iter()
                    .any(|k| portal.checker_for(*k).is_some())
            })
            .map(|(name, _)| name)
    }

    pub fn names(&self) -> impl Iterator<Item = &Mechname> {
        self.by_name.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::Mechname;

    #[test]
    fn mechnames() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"PLAIN", Some("PLAIN")),
            (b"plain", Some("PLAIN")),
            (b"SCRAM-SHA-256", Some("SCRAM-SHA-256")),
            (b"X_OTP", Some("X_OTP")),
            (b"", None),
            (b"TWENTY-ONE-CHARS-XXXX", None),
            (b"PL AIN", None),
            (b"PL\xffAIN", None),
        ];
        for (raw, want) in cases {
            assert_eq!(
                Mechname::parse(raw).as_ref().map(Mechname::as_str),
                *want,
                "{raw:?}"
            );
        }
    }
}
