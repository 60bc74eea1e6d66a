//! The checker's configuration: the users and their passwords.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// User name to password.
    pub users: BTreeMap<String, String>,
    /// Match user names ASCII-case-insensitively.
    #[serde(default)]
    pub case_insensitive: bool,
    /// SCRAM keys the host derived once, when it configured the checker:
    /// user name (as in `users`) to its keys per hash. Hex.
    #[serde(default)]
    pub scram: BTreeMap<String, DerivedKeys>,
}

/// One user's SCRAM keys, with the salt of its name
/// (`scram_core::derived_salt`) and the default iterations.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DerivedKeys {
    pub sha1: Option<KeyPair>,
    pub sha256: Option<KeyPair>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KeyPair {
    pub stored_key: String,
    pub server_key: String,
}

impl Config {
    /// Parses the JSON the host hands over. The error never quotes a
    /// string value from the text, since it could be a password.
    pub fn parse(json: &str) -> Result<Config, String> {
        serde_json::from_str(json).map_err(|e| redact(&e.to_string()))
    }

    /// The stored spelling and password of `username`.
    pub fn find(&self, username: &str) -> Option<(&str, &str)> {
        self.users
            .iter()
            .find(|(name, _)| self.same_user(name, username))
            .map(|(name, password)| (name.as_str(), password.as_str()))
    }

    /// Whether two user names name the same user.
    pub fn same_user(&self, a: &str, b: &str) -> bool {
        if self.case_insensitive {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    }
}

/// Replaces the quoted value in serde's `string "…"` (how it shows an
/// unexpected string) with `string "<redacted>"`.
fn redact(message: &str) -> String {
    const MARK: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at + MARK.len()]);
        out.push_str("<redacted>\"");
        rest = &rest[at + MARK.len()..];
        // The value is Debug-escaped: skip to the first unescaped quote.
        let mut escaped = false;
        let end = rest.char_indices().find(|&(_, c)| {
            let closes = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            closes
        });
        rest = end.map_or("", |(i, _)| &rest[i + 1..]);
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        let ok = Config::parse(r#"{"users":{"a":"b"}}"#).unwrap();
        assert!(!ok.case_insensitive);
        assert_eq!(ok.find("a"), Some(("a", "b")));
        let ci = Config::parse(r#"{"users":{"Bob":"b"},"case-insensitive":true}"#).unwrap();
        assert_eq!(ci.find("BOB"), Some(("Bob", "b")));
        for bad in [
            r#"{}"#,
            r#"{"users":{"a":"b"},"typo":1}"#,
            r#"{"users":{"a":"b"},"case_insensitive":true}"#,
            r#"{"users":{"a":1}}"#,
            r#"{"users":[]}"#,
            r#"not json"#,
        ] {
            assert!(Config::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_do_not_quote_values() {
        let cases = [
            r#"{"users":"guest:hunter2"}"#,
            r#"{"users":{"guest":"x"},"case-insensitive":"hunter2"}"#,
            r#"{"users":"say \"hunter2\" twice: hunter2"}"#,
        ];
        for json in cases {
            let err = Config::parse(json).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("<redacted>"), "{err}");
        }
    }

    #[test]
    fn redaction() {
        let cases = [
            ("plain message", "plain message"),
            (
                r#"invalid type: string "pw", expected a map at line 1 column 9"#,
                r#"invalid type: string "<redacted>", expected a map at line 1 column 9"#,
            ),
            (
                r#"string "a\"b" and string "c\\" end"#,
                r#"string "<redacted>" and string "<redacted>" end"#,
            ),
            (r#"string "unterminated"#, r#"string "<redacted>""#),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
    }
}
