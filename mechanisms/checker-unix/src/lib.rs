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
//! cannot be opened. Users are found through the host's `keyed-file`
//! index of each file (see `wit/keyed-file.wit`), built once per version
//! of the file, so a login costs the same however many accounts there
//! are, and an edit (in place or by rename) applies at the next login.
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
use portcullis_sdk::keyed_file::{self, FileError};
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

/// The answer for one name in one file: its line, or the file's kinds of
/// values when the name has no entry.
pub use portcullis_sdk::keyed_file::{Entry as Lookup, ValueKind};

/// Where the checker finds users: the host's index of each file, or (in
/// unit tests) a scan of a text. `Err` says why a file cannot be read.
trait Accounts {
    fn passwd(&self, name: &str) -> Result<Lookup, String>;
    fn shadow(&self, name: &str) -> Result<Lookup, String>;
}

/// The empty name: never an entry, so a lookup of it answers the kinds.
const NOBODY: &str = "";

/// A real hash of some user, to spend time on for an unknown user: the
/// first `shadow` entry with a hash of a known scheme, else the first such
/// `passwd` field. `passwd` is what the `passwd` lookup already answered.
fn decoy(accounts: &impl Accounts, passwd: &[ValueKind]) -> Option<String> {
    let shadow = match accounts.shadow(NOBODY) {
        Ok(Lookup::Absent(kinds)) => kinds,
        _ => Vec::new(),
    };
    // Every hash of a kind starts with the kind's tag, so it has the
    // scheme of the kind's first entry; kinds come in the order of their
    // first entry.
    let hashes = shadow
        .iter()
        .filter_map(|k| files::shadow_entry(&k.first_line).map(|e| e.hash))
        .chain(
            passwd
                .iter()
                .filter_map(|k| files::passwd_entry(&k.first_line).map(|e| e.password)),
        );
    hashes
        .into_iter()
        .find(|h| hash::Scheme::of(h) != hash::Scheme::Unknown)
        .map(str::to_owned)
}

const NOT_AN_ENTRY: &str = "the host's index answered a line that is not an entry";

/// The decision for one login, on day `today` (days since 1970-01-01).
fn verify(
    accounts: &impl Accounts,
    today: u64,
    username: &str,
    authzid: Option<&str>,
    password: &str,
) -> Verdict {
    let line = match accounts.passwd(username) {
        Err(why) => return Verdict::Unavailable(why),
        Ok(Lookup::Absent(kinds)) => {
            hash::burn(password, decoy(accounts, &kinds).as_deref());
            return Verdict::Denied(Denial::UnknownUser);
        }
        Ok(Lookup::Found(line)) => line,
    };
    let Some(entry) = files::passwd_entry(&line) else {
        return Verdict::Unavailable(NOT_AN_ENTRY.into());
    };
    let shadow_line;
    let (stored, shadow) = if entry.password == files::IN_SHADOW {
        match accounts.shadow(username) {
            Err(why) => return Verdict::Unavailable(why),
            Ok(Lookup::Absent(_)) => {
                return Verdict::Unavailable(format!(
                    "{username} has 'x' in passwd but no shadow entry"
                ));
            }
            Ok(Lookup::Found(line)) => shadow_line = line,
        }
        let Some(s) = files::shadow_entry(&shadow_line) else {
            return Verdict::Unavailable(NOT_AN_ENTRY.into());
        };
        (s.hash, Some(s))
    } else {
        (entry.password, None)
    };
    if stored.starts_with(['!', '*']) {
        return Verdict::Denied(Denial::AccountDisabled);
    }
    if stored.is_empty() {
        let passwd = match accounts.passwd(NOBODY) {
            Ok(Lookup::Absent(kinds)) => kinds,
            _ => Vec::new(),
        };
        hash::burn(password, decoy(accounts, &passwd).as_deref());
        return Verdict::Denied(Denial::BadCredentials);
    }
    match hash::verify_via_host(password, stored) {
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

/// The files through the host's `keyed-file` index.
struct HostAccounts<'a>(&'a Config);

impl HostAccounts<'_> {
    fn lookup(what: &str, path: &str, name: &str) -> Result<Lookup, String> {
        keyed_file::lookup(path, &files::line_format(), name).map_err(|e| {
            let why = match e {
                FileError::NotGranted(t) | FileError::BadFormat(t) | FileError::Unavailable(t) => t,
            };
            format!("cannot read {what} file {path}: {why}")
        })
    }
}

impl Accounts for HostAccounts<'_> {
    fn passwd(&self, name: &str) -> Result<Lookup, String> {
        Self::lookup("passwd", &self.0.passwd, name)
    }
    fn shadow(&self, name: &str) -> Result<Lookup, String> {
        Self::lookup("shadow", &self.0.shadow, name)
    }
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
        verify(
            &HostAccounts(&config),
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

    /// The files as texts, looked up as the host's index would.
    struct Files<'a> {
        passwd: &'a str,
        shadow: Result<&'a str, &'a str>,
    }

    impl Accounts for Files<'_> {
        fn passwd(&self, name: &str) -> Result<Lookup, String> {
            Ok(keyed_file::scan(self.passwd, &files::line_format(), name))
        }
        fn shadow(&self, name: &str) -> Result<Lookup, String> {
            self.shadow
                .map(|text| keyed_file::scan(text, &files::line_format(), name))
                .map_err(str::to_owned)
        }
    }

    impl Files<'_> {
        fn decoy(&self) -> Option<String> {
            let Ok(Lookup::Absent(passwd)) = self.passwd(NOBODY) else {
                panic!("nobody is absent");
            };
            super::decoy(self, &passwd)
        }
    }

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
            assert_eq!(files.decoy().as_deref(), want);
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
