//! Unix accounts from a `passwd`/`shadow` pair (Twisted's `--auth unix`) as
//! a portcullis checker plugin; what `--auth unix` loads.
//!
//! Configuration (JSON; both fields optional, defaults shown):
//!
//! ```json
//! {"passwd": "/grant/passwd", "shadow": "/grant/shadow"}
//! ```
//!
//! - `passwd`: the guest path of a `passwd(5)` file;
//! - `shadow`: the guest path of its `shadow(5)` file.
//!
//! The host grants the files' folders read-only; the checker can read
//! nothing else, and a path outside the grants (`/etc/shadow`, `../x`)
//! cannot be opened. Both files are read on every call, so changes are
//! noticed at once.
//!
//! A user is looked up in `passwd` by exact name. The hash is the `shadow`
//! entry's when the `passwd` field is `x`, else the `passwd` field itself
//! (and then `shadow` is not consulted at all). Verifies username-password
//! credentials (see [`hash`] for the schemes: SHA-512-crypt, SHA-256-crypt,
//! bcrypt, yescrypt), and then:
//!
//! - a hash starting with `!` or `*` (locked, or no password login) denies
//!   `account-disabled`, without checking the password;
//! - an empty hash denies `bad-credentials`: a password-less account never
//!   logs in;
//! - once the password is proved, a `shadow` expiry day (field 8, days since
//!   1970-01-01) on or before today denies `account-disabled`, as
//!   shadow-utils counts it; `0` or empty never expires. Password ageing
//!   (fields 3–7) is not enforced;
//! - an authzid must name the user itself.
//!
//! Unknown users are denied only after the password was checked against
//! another user's hash, so that timing does not tell them apart. An
//! unreadable file, a `passwd` entry pointing to a missing `shadow` entry,
//! an unsupported or malformed hash or a bad expiry field make the answer
//! `unavailable`, with a text (never the hash) for the operator's log.

pub mod files;
pub mod hash;

use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_sdk::checker::{Checker, Verdict};
use portcullis_sdk::types::{CredentialKind, Credentials, Denial};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_passwd")]
    passwd: String,
    #[serde(default = "default_shadow")]
    shadow: String,
}

fn default_passwd() -> String {
    "/grant/passwd".into()
}
fn default_shadow() -> String {
    "/grant/shadow".into()
}

impl Config {
    fn parse(json: &str) -> Result<Config, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }
}

/// What was read from disk: the `passwd` text, and the `shadow` text or
/// why it could not be read (only users whose hash is there need it).
struct Files<'a> {
    passwd: &'a str,
    shadow: Result<&'a str, &'a str>,
}

impl Files<'_> {
    /// A real hash of some user, to spend time on for an unknown user.
    fn decoy(&self) -> Option<&str> {
        let shadow = self.shadow.ok().into_iter().flat_map(files::shadow_entries);
        shadow
            .map(|e| e.hash)
            .chain(files::passwd_entries(self.passwd).map(|e| e.password))
            .find(|h| hash::Scheme::of(h) != hash::Scheme::Unknown)
    }
}

/// The decision for one login, on day `today` (days since 1970-01-01).
fn verify(
    files: &Files,
    today: u64,
    username: &str,
    authzid: Option<&str>,
    password: &str,
) -> Verdict {
    let Some(entry) = files::find_passwd(files.passwd, username) else {
        hash::burn(password, files.decoy());
        return Verdict::Denied(Denial::UnknownUser);
    };
    let (stored, shadow) = if entry.password == files::IN_SHADOW {
        let text = match files.shadow {
            Ok(text) => text,
            Err(why) => return Verdict::Unavailable(why.to_owned()),
        };
        match files::find_shadow(text, username) {
            Some(s) => (s.hash, Some(s)),
            None => {
                return Verdict::Unavailable(format!(
                    "{username} has 'x' in passwd but no shadow entry"
                ));
            }
        }
    } else {
        (entry.password, None)
    };
    if stored.starts_with(['!', '*']) {
        return Verdict::Denied(Denial::AccountDisabled);
    }
    if stored.is_empty() {
        hash::burn(password, files.decoy());
        return Verdict::Denied(Denial::BadCredentials);
    }
    match hash::verify(password, stored) {
        Err(e) => Verdict::Unavailable(format!("the password hash of {username} is unusable: {e}")),
        Ok(false) => Verdict::Denied(Denial::BadCredentials),
        Ok(true) => {
            // Only a user who proved the password learns about expiry and
            // authorization.
            match shadow.map(|s| s.expired(today)) {
                Some(Err(e)) => return Verdict::Unavailable(e),
                Some(Ok(true)) => return Verdict::Denied(Denial::AccountDisabled),
                _ => {}
            }
            match authzid {
                Some(z) if z != username => Verdict::Denied(Denial::NotAuthorized),
                _ => Verdict::Accepted(username.to_owned()),
            }
        }
    }
}

/// Today, in days since 1970-01-01, by the WASI wall clock.
fn today() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}

struct Unix;

impl Checker for Unix {
    fn kinds() -> Vec<CredentialKind> {
        vec![CredentialKind::UsernamePassword]
    }

    fn check(credentials: Credentials) -> Verdict {
        let Credentials::UsernamePassword(up) = credentials else {
            return Verdict::Denied(Denial::Unsupported);
        };
        let config = match Config::parse(&portcullis_sdk::host::config()) {
            Ok(c) => c,
            Err(e) => return Verdict::Unavailable(format!("bad configuration: {e}")),
        };
        let passwd = match std::fs::read_to_string(&config.passwd) {
            Ok(text) => text,
            Err(e) => {
                return Verdict::Unavailable(format!(
                    "cannot read passwd file {}: {e}",
                    config.passwd
                ));
            }
        };
        let shadow = std::fs::read_to_string(&config.shadow)
            .map_err(|e| format!("cannot read shadow file {}: {e}", config.shadow));
        let files = Files {
            passwd: &passwd,
            shadow: shadow.as_deref().map_err(String::as_str),
        };
        verify(
            &files,
            today(),
            &up.username,
            up.authzid.as_deref(),
            &up.password,
        )
    }
}

portcullis_sdk::export_checker!(Unix);

#[cfg(test)]
mod tests {
    use super::*;

    // Python's crypt.crypt("password", SALT) over libxcrypt.
    const SHA512: &str = "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/";
    const YESCRYPT: &str =
        "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$tnSYvahCwPBHKZUspmcxMfb0.WiB9W.zEaKlOBL35rC";

    fn passwd() -> String {
        [
            "root:x:0:0:root:/root:/bin/bash",
            "alice:x:1000:1000::/home/alice:/bin/sh",
            &format!("bob:{SHA512}:1001:1001::/home/bob:/bin/sh"),
            "carol:x:1002:1002:::",
            "dave:x:1003:1003:::",
            "erin:x:1004:1004:::",
            "frank::1005:1005:::",
            "gina:*:1006:1006:::",
            "hal:x:1007:1007:::",
            "ivy:x:1008:1008:::",
            "jo:x:1009:1009:::",
            "kim:x:1010:1010:::",
        ]
        .join("\n")
    }

    fn shadow() -> String {
        [
            "root:!:19000:0:99999:7:::".to_owned(),
            format!("alice:{YESCRYPT}:19000:0:99999:7:::"),
            format!("carol:!{YESCRYPT}:19000:0:99999:7:::"),
            format!("dave:{SHA512}:19000:0:99999:7::20000:"),
            format!("erin:{SHA512}:19000:0:99999:7::20001:"),
            format!("hal:{SHA512}:19000:0:99999:7::never:"),
            "ivy:$1$md5$hash:19000::::::".to_owned(),
            "kim::19000::::::".to_owned(),
        ]
        .join("\n")
    }

    fn show(v: Verdict) -> String {
        match v {
            Verdict::Accepted(id) => format!("ok {id}"),
            Verdict::Denied(d) => format!("denied {d:?}").replace("Denial::", ""),
            Verdict::Unavailable(w) => format!("unavailable {w}"),
        }
    }

    #[test]
    fn decisions() {
        let (passwd, shadow) = (passwd(), shadow());
        let files = Files {
            passwd: &passwd,
            shadow: Ok(&shadow),
        };
        let today = 20_000;
        let cases = [
            ("alice", None, "password", "ok alice"),
            ("alice", Some("alice"), "password", "ok alice"),
            ("alice", None, "Password", "denied BadCredentials"),
            ("alice", None, "", "denied BadCredentials"),
            ("alice", Some("root"), "password", "denied NotAuthorized"),
            ("alice", Some("root"), "wrong", "denied BadCredentials"),
            ("Alice", None, "password", "denied UnknownUser"),
            ("bob", None, "password", "ok bob"),
            ("bob", None, "passwore", "denied BadCredentials"),
            ("root", None, "anything", "denied AccountDisabled"),
            ("carol", None, "password", "denied AccountDisabled"),
            ("gina", None, "", "denied AccountDisabled"),
            ("dave", None, "password", "denied AccountDisabled"),
            ("dave", None, "wrong", "denied BadCredentials"),
            ("erin", None, "password", "ok erin"),
            ("frank", None, "", "denied BadCredentials"),
            ("frank", None, "x", "denied BadCredentials"),
            ("kim", None, "", "denied BadCredentials"),
            (
                "hal",
                None,
                "password",
                "unavailable the shadow entry of hal has a bad expiry field",
            ),
            (
                "ivy",
                None,
                "x",
                "unavailable the password hash of ivy is unusable: unsupported hash scheme",
            ),
            (
                "jo",
                None,
                "x",
                "unavailable jo has 'x' in passwd but no shadow entry",
            ),
            ("nobody", None, "password", "denied UnknownUser"),
            ("", None, "password", "denied UnknownUser"),
            ("alice:x", None, "password", "denied UnknownUser"),
        ];
        for (user, authzid, pass, want) in cases {
            let got = show(verify(&files, today, user, authzid, pass));
            assert_eq!(got, want, "{user}/{authzid:?}/{pass}");
        }
    }

    #[test]
    fn an_unreadable_shadow_matters_only_to_users_in_it() {
        let passwd = passwd();
        let files = Files {
            passwd: &passwd,
            shadow: Err("cannot read shadow file /grant/shadow: denied"),
        };
        let cases = [
            (
                "alice",
                "unavailable cannot read shadow file /grant/shadow: denied",
            ),
            ("bob", "ok bob"),
            ("nobody", "denied UnknownUser"),
        ];
        for (user, want) in cases {
            assert_eq!(show(verify(&files, 20_000, user, None, "password")), want);
        }
    }

    #[test]
    fn decoys_are_real_hashes() {
        let (passwd, shadow) = (passwd(), shadow());
        let cases = [
            (Ok(shadow.as_str()), Some(YESCRYPT)),
            (Err("unreadable"), Some(SHA512)),
            (Ok(""), Some(SHA512)),
        ];
        for (shadow, want) in cases {
            let files = Files {
                passwd: &passwd,
                shadow,
            };
            assert_eq!(files.decoy(), want);
        }
        let files = Files {
            passwd: "a:x:1:1:::\nb:!:2:2:::",
            shadow: Ok("a:*:1::::::"),
        };
        assert_eq!(files.decoy(), None);
    }

    #[test]
    fn configs() {
        let c = Config::parse("{}").unwrap();
        assert_eq!(
            (c.passwd.as_str(), c.shadow.as_str()),
            ("/grant/passwd", "/grant/shadow")
        );
        let c = Config::parse(r#"{"passwd":"/a/p","shadow":"/b/s"}"#).unwrap();
        assert_eq!((c.passwd.as_str(), c.shadow.as_str()), ("/a/p", "/b/s"));
        for bad in [r#"{"path":"/p"}"#, r#"{"passwd":1}"#, "1", "null"] {
            assert!(Config::parse(bad).is_err(), "{bad}");
        }
    }
}
