//! Reading `passwd(5)` and `shadow(5)` lines: pure functions. The host
//! finds a user's line through its index of the file ([`line_format`]);
//! the scans over a whole text serve the unit tests.
//!
//! Both are `:`-separated, one user a line. Blank lines, `#` comments and
//! NIS compatibility lines (`+…`, `-…`) are skipped, and so are lines
//! without a password field. The first line for a name wins.

/// A user's `passwd` line: the name and the password field (`x` when the
/// hash is in `shadow`).
#[derive(Debug, PartialEq, Eq)]
pub struct PasswdEntry<'a> {
    pub name: &'a str,
    pub password: &'a str,
}

/// A user's `shadow` line: the hash and the account expiry.
#[derive(Debug, PartialEq, Eq)]
pub struct ShadowEntry<'a> {
    pub name: &'a str,
    pub hash: &'a str,
    /// The eighth field: the day (counted from 1970-01-01) from which the
    /// account is expired; empty when it never expires.
    pub expire: &'a str,
}

/// The password field meaning "see shadow".
pub const IN_SHADOW: &str = "x";

/// The layout the host indexes both files by: the rules above, names in
/// field 0 compared exactly, the hash in field 1.
pub fn line_format() -> portcullis_sdk::keyed_file::LineFormat {
    portcullis_sdk::keyed_file::LineFormat {
        delimiter: ':',
        key_field: 0,
        value_field: 1,
        value_required: false,
        case_sensitive: true,
        comments: "#+-".into(),
        indented_comments: false,
    }
}

/// The fields of a usable line.
fn fields(line: &str) -> Option<Vec<&str>> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() || line.starts_with(['#', '+', '-']) {
        return None;
    }
    let fields: Vec<&str> = line.split(':').collect();
    (fields.len() >= 2 && !fields[0].is_empty()).then_some(fields)
}

/// The entry of one `passwd` line, if it is one.
pub fn passwd_entry(line: &str) -> Option<PasswdEntry<'_>> {
    fields(line).map(|f| PasswdEntry {
        name: f[0],
        password: f[1],
    })
}

/// The entry of one `shadow` line, if it is one.
pub fn shadow_entry(line: &str) -> Option<ShadowEntry<'_>> {
    fields(line).map(|f| ShadowEntry {
        name: f[0],
        hash: f[1],
        expire: f.get(7).copied().unwrap_or(""),
    })
}

pub fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(passwd_entry)
}

pub fn shadow_entries(text: &str) -> impl Iterator<Item = ShadowEntry<'_>> {
    text.lines().filter_map(shadow_entry)
}

/// `name`'s `passwd` line. Names match exactly, as on Unix.
pub fn find_passwd<'a>(text: &'a str, name: &str) -> Option<PasswdEntry<'a>> {
    passwd_entries(text).find(|e| e.name == name)
}

/// `name`'s `shadow` line.
pub fn find_shadow<'a>(text: &'a str, name: &str) -> Option<ShadowEntry<'a>> {
    shadow_entries(text).find(|e| e.name == name)
}

impl ShadowEntry<'_> {
    /// Whether the account is expired on day `today` (days since
    /// 1970-01-01). As in shadow-utils, an account is expired from its
    /// expiry day on, and 0 or an empty field means it never expires. An
    /// expiry that is not a number is an error.
    pub fn expired(&self, today: u64) -> Result<bool, String> {
        let field = self.expire.trim();
        if field.is_empty() {
            return Ok(false);
        }
        let day: i64 = field
            .parse()
            .map_err(|_| format!("the shadow entry of {} has a bad expiry field", self.name))?;
        Ok(day > 0 && today >= day.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        # comment\n\
        \n\
        alice:x:1000:1000:Alice:/home/alice:/bin/sh\r\n\
        bob:$6$salt$hash:1001:1001::/home/bob:/bin/sh\n\
        +nis::0:0:::\n\
        -evil:x:0:0:::\n\
        short\n\
        :x:0:0:::\n\
        carol::1002:1002:::\n\
        alice:second:1:1:::\n";

    const SHADOW: &str = "root:!:19000:0:99999:7:::\n\
        alice:$y$j9T$salt$hash:19000:0:99999:7::20000:\n\
        dave:*:19000::::::\n\
        eve:$5$s$h\n";

    #[test]
    fn passwd_lookups() {
        let e = |name, password| Some(PasswdEntry { name, password });
        let cases = [
            ("root", e("root", "x")),
            ("alice", e("alice", "x")),
            ("bob", e("bob", "$6$salt$hash")),
            ("carol", e("carol", "")),
            ("Alice", None),
            ("nis", None),
            ("+nis", None),
            ("-evil", None),
            ("evil", None),
            ("short", None),
            ("", None),
            ("# comment", None),
        ];
        for (name, want) in cases {
            assert_eq!(find_passwd(PASSWD, name), want, "{name}");
        }
    }

    #[test]
    fn shadow_lookups() {
        let e = |name, hash, expire| Some(ShadowEntry { name, hash, expire });
        let cases = [
            ("root", e("root", "!", "")),
            ("alice", e("alice", "$y$j9T$salt$hash", "20000")),
            ("dave", e("dave", "*", "")),
            ("eve", e("eve", "$5$s$h", "")),
            ("bob", None),
        ];
        for (name, want) in cases {
            assert_eq!(find_shadow(SHADOW, name), want, "{name}");
        }
    }

    #[test]
    fn expiry() {
        let entry = |expire| ShadowEntry {
            name: "u",
            hash: "",
            expire,
        };
        let cases = [
            ("", 20_000, Ok(false)),
            (" ", 20_000, Ok(false)),
            ("0", 20_000, Ok(false)),
            ("-1", 20_000, Ok(false)),
            ("20001", 20_000, Ok(false)),
            ("20000", 20_000, Ok(true)),
            ("19999", 20_000, Ok(true)),
            ("1", 20_000, Ok(true)),
            ("soon", 20_000, Err(())),
            ("1e5", 20_000, Err(())),
        ];
        for (expire, today, want) in cases {
            assert_eq!(
                entry(expire).expired(today).map_err(|_| ()),
                want,
                "{expire:?}"
            );
        }
    }
}
