//! FilePasswordDB's layout: the format the host indexes the file by, a
//! user's fields in the line the host found, and the decoy an absent user
//! is checked against. Pure functions.

pub use portcullis_sdk::keyed_file::{Entry as KeyedEntry, LineFormat, ValueKind};

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

/// One user's entry, borrowing from its line.
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

    /// The layout the host indexes the file by: blank lines and `#`
    /// comments (indented or not) are not entries, and neither are lines
    /// with too few fields or an empty user name or password field (an
    /// empty password must never let anyone in).
    pub fn line_format(&self) -> LineFormat {
        LineFormat {
            delimiter: self.delimiter,
            key_field: field_number(self.username_field),
            value_field: field_number(self.password_field),
            value_required: true,
            case_sensitive: self.case_sensitive,
            comments: "#".into(),
            indented_comments: true,
        }
    }
}

/// A field number for the host (which refuses those past 1024).
fn field_number(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The user name and password of a line the host found.
pub fn entry<'a>(line: &'a str, format: &Format) -> Option<Entry<'a>> {
    let fields: Vec<&str> = line.split(format.delimiter).collect();
    let username = *fields.get(format.username_field)?;
    let password = *fields.get(format.password_field)?;
    (!username.is_empty() && !password.is_empty()).then_some(Entry { username, password })
}

/// The field an absent user's password is checked against, so that the
/// answer costs what a real check does: an entry of the scheme most of the
/// file uses (ties go to the costlier scheme), whatever order the lines
/// are in. `kinds` is what the host's index counted (in the order of each
/// kind's first line). `None` for a file without entries.
pub fn decoy<'a>(kinds: &'a [ValueKind], format: &Format) -> Option<&'a str> {
    use password_fields::hash::Scheme;
    // Costliest first: a tie is broken towards the slower check.
    const ORDER: [fn(Scheme) -> bool; 5] = [
        |s| matches!(s, Scheme::Argon2),
        |s| matches!(s, Scheme::Bcrypt),
        |s| matches!(s, Scheme::ShaCrypt),
        |s| matches!(s, Scheme::Scram(_)),
        |s| matches!(s, Scheme::Plain),
    ];
    let mut counts = [0u64; ORDER.len()];
    let mut first: [Option<&'a str>; ORDER.len()] = [None; ORDER.len()];
    for kind in kinds {
        let Some(entry) = entry(&kind.first_line, format) else {
            continue;
        };
        // Every value of a kind starts with the kind's tag, so it has the
        // scheme of the kind's first entry.
        let scheme = Scheme::of(entry.password);
        if let Some(i) = ORDER.iter().position(|is| is(scheme)) {
            counts[i] += kind.count;
            first[i].get_or_insert(entry.password);
        }
    }
    let best = (0..ORDER.len())
        .filter(|&i| counts[i] > 0)
        .max_by_key(|&i| (counts[i], std::cmp::Reverse(i)))?;
    first[best]
}

/// What the host's index answers for `username` in `text` (for unit
/// tests of the decisions, natively).
#[cfg(test)]
pub fn scan(text: &str, format: &Format, username: &str) -> KeyedEntry {
    portcullis_sdk::keyed_file::scan(text, &format.line_format(), username)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The user name and password the host would find for `user`.
    fn find(text: &str, format: &Format, user: &str) -> Option<(String, String)> {
        match scan(text, format, user) {
            KeyedEntry::Found(line) => {
                let e = entry(&line, format).unwrap();
                Some((e.username.to_owned(), e.password.to_owned()))
            }
            KeyedEntry::Absent(_) => None,
        }
    }

    fn decoy_of(text: &str, format: &Format) -> Option<String> {
        let KeyedEntry::Absent(kinds) = scan(text, format, "\0nobody") else {
            panic!("nobody is absent");
        };
        decoy(&kinds, format).map(str::to_owned)
    }

    #[test]
    fn lookups() {
        let text = "# comment\n\n   \nalice:wonderland\r\nbob:builder:extra\nshort\nAlice:second\n\
                    :nameless\ncarol:\n #x:indented\n";
        let f = Format::default();
        let e = |u: &str, p: &str| Some((u.to_owned(), p.to_owned()));
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

    #[test]
    fn the_host_is_asked_for_the_same_layout() {
        let f = Format {
            delimiter: '|',
            username_field: 2,
            password_field: 3,
            case_sensitive: false,
        };
        // The generated record has no PartialEq.
        assert_eq!(
            format!("{:?}", f.line_format()),
            format!(
                "{:?}",
                LineFormat {
                    delimiter: '|',
                    key_field: 2,
                    value_field: 3,
                    value_required: true,
                    case_sensitive: false,
                    comments: "#".into(),
                    indented_comments: true,
                }
            )
        );
    }

    /// The decoy follows the file's usual scheme, not its first line.
    #[test]
    fn decoy_is_of_the_usual_scheme_in_any_order() {
        let f = Format::default();
        let argon = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
        let bcrypt = "$2b$10$abcdefghijklmnopqrstuuN7mBQXvHT1ymuVAvX3kC7dkCbHZnFrq";
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            decoy_of(&format!("a:{argon}\nb:plain\nc:{argon}\n"), &f),
            some(argon)
        );
        assert_eq!(
            decoy_of(&format!("b:plain\na:{argon}\nc:{argon}\n"), &f),
            some(argon)
        );
        // A tie goes to the costlier scheme.
        assert_eq!(
            decoy_of(&format!("x:plain\ny:{bcrypt}\n"), &f),
            some(bcrypt)
        );
        assert_eq!(decoy_of("u:one\nv:two\n", &f), some("one"));
        // Kinds of one scheme add up: two SHA-crypt variants outnumber
        // the plain lines.
        assert_eq!(
            decoy_of("p:plain\nq:other\nr:$5$s$h\ns:$6$s$h\nt:$6$u$i\n", &f),
            some("$5$s$h")
        );
        assert_eq!(decoy_of("# nothing\n", &f), None);
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
            Some(("alice".to_owned(), "$2b$hash".to_owned()))
        );
        let tabbed = "alice\twonder:land\n";
        let t = Format {
            delimiter: '\t',
            ..Format::default()
        };
        assert_eq!(find(tabbed, &t, "alice").unwrap().1, "wonder:land");
    }
}
