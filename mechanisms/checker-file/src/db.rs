//! Finding a user's line in a FilePasswordDB-formatted text: a pure
//! function over the file's contents.

/// How lines are laid out (Twisted's `FilePasswordDB` arguments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    pub delimiter: char,
    pub username_field: usize,
    pub password_field: usize,
    pub case_sensitive: bool,
}

impl Default for Format {
    fn default() -> Self {
        Format {
            delimiter: ':',
            username_field: 0,
            password_field: 1,
            case_sensitive: true,
        }
    }
}

/// One user's entry, borrowing from the file's text.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The user name as the file spells it.
    pub username: &'a str,
    pub password: &'a str,
}

/// The first line for `username`. Blank lines, `#` comments and lines with
/// too few fields are skipped.
pub fn find<'a>(text: &'a str, format: &Format, username: &str) -> Option<Entry<'a>> {
    text.lines()
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(format.delimiter).collect();
            Some(Entry {
                username: fields.get(format.username_field)?,
                password: fields.get(format.password_field)?,
            })
        })
        .find(|entry| {
            if format.case_sensitive {
                entry.username == username
            } else {
                entry.username.eq_ignore_ascii_case(username)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let text = "# comment\n\nalice:wonderland\r\nbob:builder:extra\nshort\nAlice:second\n";
        let f = Format::default();
        let e = |u, p| {
            Some(Entry {
                username: u,
                password: p,
            })
        };
        let cases = [
            ("alice", f.clone(), e("alice", "wonderland")),
            ("bob", f.clone(), e("bob", "builder")),
            ("ALICE", f.clone(), None),
            (
                "ALICE",
                Format {
                    case_sensitive: false,
                    ..f.clone()
                },
                e("alice", "wonderland"),
            ),
            ("Alice", f.clone(), e("Alice", "second")),
            ("short", f.clone(), None),
            ("# comment", f.clone(), None),
            ("carol", f.clone(), None),
        ];
        for (user, format, want) in cases {
            assert_eq!(find(text, &format, user), want, "{user}");
        }
    }

    #[test]
    fn other_layouts() {
        let text = "1001|x|alice|$2b$hash\n";
        let f = Format {
            delimiter: '|',
            username_field: 2,
            password_field: 3,
            case_sensitive: true,
        };
        assert_eq!(
            find(text, &f, "alice"),
            Some(Entry {
                username: "alice",
                password: "$2b$hash"
            })
        );
        let tabbed = "alice\twonder:land\n";
        let t = Format {
            delimiter: '\t',
            ..Format::default()
        };
        assert_eq!(find(tabbed, &t, "alice").unwrap().password, "wonder:land");
    }
}
