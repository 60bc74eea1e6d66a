//! Finding a user's line in a FilePasswordDB-formatted text: a pure
//! function over the file's contents.

/// How lines are laid out (Twisted's `FilePasswordDB` arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

impl Format {
    /// Whether a name from the file and a name from the client agree.
    pub fn same_user(&self, in_file: &str, given: &str) -> bool {
        if self.case_sensitive {
            in_file == given
        } else {
            in_file.eq_ignore_ascii_case(given)
        }
    }
}

/// Every usable line, in file order. Blank lines, `#` comments (indented or
/// not), lines with too few fields and lines with an empty user name or
/// password field are skipped (an empty password must never let anyone in).
pub fn entries<'a>(text: &'a str, format: &Format) -> impl Iterator<Item = Entry<'a>> {
    let format = *format;
    text.lines()
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .filter_map(move |line| {
            let fields: Vec<&str> = line.split(format.delimiter).collect();
            let username = *fields.get(format.username_field)?;
            let password = *fields.get(format.password_field)?;
            (!username.is_empty() && !password.is_empty()).then_some(Entry { username, password })
        })
}

/// The first entry for `username`.
/// The field an absent user's password is checked against, so that the
/// answer costs what a real check does: an entry of the scheme most of the
/// file uses (ties go to the costlier scheme), whatever order the lines
/// are in. `None` for a file without entries.
pub fn decoy<'a>(text: &'a str, format: &Format) -> Option<&'a str> {
    use password_fields::hash::Scheme;
    // Costliest first: a tie is broken towards the slower check.
    const ORDER: [fn(Scheme) -> bool; 5] = [
        |s| matches!(s, Scheme::Argon2),
        |s| matches!(s, Scheme::Bcrypt),
        |s| matches!(s, Scheme::ShaCrypt),
        |s| matches!(s, Scheme::Scram(_)),
        |s| matches!(s, Scheme::Plain),
    ];
    let mut counts = [0usize; ORDER.len()];
    let mut first: [Option<&'a str>; ORDER.len()] = [None; ORDER.len()];
    for entry in entries(text, format) {
        let scheme = Scheme::of(entry.password);
        if let Some(i) = ORDER.iter().position(|is| is(scheme)) {
            counts[i] += 1;
            first[i].get_or_insert(entry.password);
        }
    }
    let best = (0..ORDER.len())
        .filter(|&i| counts[i] > 0)
        .max_by_key(|&i| (counts[i], std::cmp::Reverse(i)))?;
    first[best]
}

pub fn find<'a>(text: &'a str, format: &Format, username: &str) -> Option<Entry<'a>> {
    entries(text, format).find(|entry| format.same_user(entry.username, username))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let text = "# comment\n\n   \nalice:wonderland\r\nbob:builder:extra\nshort\nAlice:second\n\
                    :nameless\ncarol:\n #x:indented\n";
        let f = Format::default();
        let e = |u, p| {
            Some(Entry {
                username: u,
                password: p,
            })
        };
        let cases = [
            ("alice", f, e("alice", "wonderland")),
            ("bob", f, e("bob", "builder")),
            ("ALICE", f, None),
            (
                "ALICE",
                Format {
                    case_sensitive: false,
                    ..f
                },
                e("alice", "wonderland"),
            ),
            ("Alice", f, e("Alice", "second")),
            ("short", f, None),
            ("# comment", f, None),
            ("carol", f, None),
            ("", f, None),
            (" #x", f, None),
            ("dave", f, None),
        ];
        for (user, format, want) in cases {
            assert_eq!(find(text, &format, user), want, "{user}");
        }
    }

    /// The decoy follows the file's usual scheme, not its first line.
    #[test]
    fn decoy_is_of_the_usual_scheme_in_any_order() {
        let f = Format::default();
        let argon = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
        let bcrypt = "$2b$10$abcdefghijklmnopqrstuuN7mBQXvHT1ymuVAvX3kC7dkCbHZnFrq";
        let hashed_first = format!(
            "a:{argon}
b:plain
c:{argon}
"
        );
        let plain_first = format!(
            "b:plain
a:{argon}
c:{argon}
"
        );
        assert_eq!(decoy(&hashed_first, &f), Some(argon));
        assert_eq!(decoy(&plain_first, &f), Some(argon));
        // A tie goes to the costlier scheme.
        assert_eq!(
            decoy(
                &format!(
                    "x:plain
y:{bcrypt}
"
                ),
                &f
            ),
            Some(bcrypt)
        );
        assert_eq!(
            decoy(
                "u:one
v:two
",
                &f
            ),
            Some("one")
        );
        assert_eq!(
            decoy(
                "# nothing
",
                &f
            ),
            None
        );
    }

    #[test]
    fn entries_in_order() {
        let text = "#c\nb:2\n\na:1\nx\n";
        let names: Vec<_> = entries(text, &Format::default())
            .map(|e| (e.username, e.password))
            .collect();
        assert_eq!(names, [("b", "2"), ("a", "1")]);
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
