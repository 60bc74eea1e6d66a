//! One version of a delimited file, indexed by key: a pure function from
//! the file's bytes to an [`Index`], and lookups in it.
//!
//! The index keeps the file's text and, per entry, 16 bytes (the key's
//! hash, the line's offset and length) sorted by hash; a lookup is a
//! binary search and a comparison of the keys that share the hash. Ties
//! keep file order, so the first entry for a key wins, as a scan of the
//! file would find it. The hash is SipHash with a random key per index,
//! so a crafted file cannot make lookups slow.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// Longest line, without its line end.
pub const MAX_LINE: usize = 64 << 10;
/// Most kinds of values an index counts.
pub const MAX_KINDS: usize = 16;
/// Longest value tag.
const MAX_TAG: usize = 32;
/// Most comment characters.
const MAX_COMMENTS: usize = 8;
/// Highest field number.
const MAX_FIELD: usize = 1024;

/// How lines are laid out (see `line-format` in `wit/keyed-file.wit`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Format {
    pub delimiter: char,
    pub key_field: usize,
    pub value_field: usize,
    pub value_required: bool,
    pub case_sensitive: bool,
    pub comments: String,
    pub indented_comments: bool,
}

impl Format {
    /// Why the format cannot be used, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if matches!(self.delimiter, '\n' | '\r') {
            return Err("the delimiter cannot be a line end".into());
        }
        if self.comments.chars().count() > MAX_COMMENTS {
            return Err(format!("at most {MAX_COMMENTS} comment characters"));
        }
        if self.comments.contains(self.delimiter) {
            return Err("the delimiter cannot be a comment character".into());
        }
        if self.key_field > MAX_FIELD || self.value_field > MAX_FIELD {
            return Err(format!("fields are numbered 0 to {MAX_FIELD}"));
        }
        Ok(())
    }

    /// The key and value of `line` (its line end already removed), or
    /// `None` when the line is not an entry.
    fn fields<'a>(&self, line: &'a str) -> Option<(&'a str, &'a str)> {
        let probe = if self.indented_comments {
            line.trim_start()
        } else {
            line
        };
        if probe.is_empty() || probe.starts_with(|c| self.comments.contains(c)) {
            return None;
        }
        let (mut key, mut value) = (None, None);
        let last = self.key_field.max(self.value_field);
        for (i, field) in line.split(self.delimiter).enumerate().take(last + 1) {
            if i == self.key_field {
                key = Some(field);
            }
            if i == self.value_field {
                value = Some(field);
            }
        }
        let (key, value) = (key?, value?);
        if key.is_empty() || (self.value_required && value.is_empty()) {
            return None;
        }
        Some((key, value))
    }

    fn same_key(&self, in_file: &str, given: &str) -> bool {
        if self.case_sensitive {
            in_file == given
        } else {
            in_file.eq_ignore_ascii_case(given)
        }
    }
}

/// The tag of a value: its scheme prefix (see `value-kind`).
pub fn tag(value: &str) -> &str {
    let head = &value.as_bytes()[..value.len().min(MAX_TAG)];
    let end = match head.first() {
        Some(b'$') => head[1..].iter().position(|&b| b == b'$').map(|i| i + 2),
        Some(b'{') => head.iter().position(|&b| b == b'}').map(|i| i + 1),
        _ => return "",
    };
    // The tag ends at an ASCII byte, so it is a char boundary.
    &value[..end.unwrap_or(1)]
}

/// Why a text cannot be indexed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("it is not UTF-8 text")]
    NotText,
    #[error("line {0} is longer than {max} KiB", max = MAX_LINE >> 10)]
    LongLine(usize),
}

/// One kind of value, and where its first entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kind {
    pub tag: String,
    pub count: u64,
    first: (u32, u32),
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    hash: u64,
    start: u32,
    len: u32,
}

/// What a lookup finds.
#[derive(Debug, PartialEq, Eq)]
pub enum Found<'a> {
    Line(&'a str),
    /// No entry for the key: the file's kinds of values, with their first
    /// lines.
    Absent(Vec<(&'a Kind, &'a str)>),
}

/// One file version's entries by key.
pub struct Index {
    text: String,
    slots: Vec<Slot>,
    kinds: Vec<Kind>,
    format: Format,
    hasher: RandomState,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the text: it holds secrets.
        f.debug_struct("Index")
            .field("entries", &self.slots.len())
            .field("bytes", &self.text.len())
            .finish_non_exhaustive()
    }
}

impl Index {
    /// Indexes `bytes` (at most 4 GiB: offsets are 32-bit) laid out as
    /// `format` says.
    pub fn build(bytes: Vec<u8>, format: &Format) -> Result<Index, IndexError> {
        assert!(u32::try_from(bytes.len()).is_ok(), "a file past 4 GiB");
        let text = String::from_utf8(bytes).map_err(|_| IndexError::NotText)?;
        let hasher = RandomState::new();
        // One slot per line at most: counted first, so the slots are
        // allocated once.
        let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
        let mut slots = Vec::with_capacity(lines);
        let mut kinds: Vec<Kind> = Vec::new();
        let mut start = 0;
        for (number, raw) in text.split_inclusive('\n').enumerate() {
            let line_start = start;
            start += raw.len();
            let line = raw.strip_suffix('\n').unwrap_or(raw);
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.len() > MAX_LINE {
                return Err(IndexError::LongLine(number + 1));
            }
            let Some((key, value)) = format.fields(line) else {
                continue;
            };
            let at = (line_start as u32, line.len() as u32);
            slots.push(Slot {
                hash: key_hash(&hasher, format, key),
                start: at.0,
                len: at.1,
            });
            let tag = tag(value);
            if let Some(kind) = kinds.iter_mut().find(|k| k.tag == tag) {
                kind.count += 1;
            } else if kinds.len() < MAX_KINDS {
                kinds.push(Kind {
                    tag: tag.to_owned(),
                    count: 1,
                    first: at,
                });
            }
        }
        // By hash, then file order: the first entry of a key comes first.
        slots.sort_unstable_by_key(|s| (s.hash, s.start));
        slots.shrink_to_fit();
        Ok(Index {
            text,
            slots,
            kinds,
            format: format.clone(),
            hasher,
        })
    }

    fn line(&self, start: u32, len: u32) -> &str {
        &self.text[start as usize..(start + len) as usize]
    }

    /// The first entry for `key`, or the kinds of values when there is
    /// none.
    pub fn lookup(&self, key: &str) -> Found<'_> {
        let hash = key_hash(&self.hasher, &self.format, key);
        let from = self.slots.partition_point(|s| s.hash < hash);
        for slot in self.slots[from..].iter().take_while(|s| s.hash == hash) {
            let line = self.line(slot.start, slot.len);
            if let Some((in_file, _)) = self.format.fields(line)
                && self.format.same_key(in_file, key)
            {
                return Found::Line(line);
            }
        }
        Found::Absent(
            self.kinds
                .iter()
                .map(|k| (k, self.line(k.first.0, k.first.1)))
                .collect(),
        )
    }

    /// The entries indexed.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no line of the file was an entry.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// What the index holds in memory, roughly: the text and the slots.
    pub fn bytes(&self) -> usize {
        self.text.capacity() + self.slots.capacity() * std::mem::size_of::<Slot>()
    }
}

fn key_hash(hasher: &RandomState, format: &Format, key: &str) -> u64 {
    let mut h = hasher.build_hasher();
    if !format.case_sensitive && key.bytes().any(|b| b.is_ascii_uppercase()) {
        h.write(key.to_ascii_lowercase().as_bytes());
    } else {
        h.write(key.as_bytes());
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file checker's layout (Twisted's FilePasswordDB).
    fn file_format() -> Format {
        Format {
            delimiter: ':',
            key_field: 0,
            value_field: 1,
            value_required: true,
            case_sensitive: true,
            comments: "#".into(),
            indented_comments: true,
        }
    }

    /// `passwd(5)` / `shadow(5)`.
    fn unix_format() -> Format {
        Format {
            value_required: false,
            comments: "#+-".into(),
            indented_comments: false,
            ..file_format()
        }
    }

    fn find<'a>(index: &'a Index, key: &str) -> Option<&'a str> {
        match index.lookup(key) {
            Found::Line(line) => Some(line),
            Found::Absent(_) => None,
        }
    }

    #[test]
    fn lookups_as_a_scan_would_find_them() {
        let text = "# comment\n\n   \nalice:wonderland\r\nbob:builder:extra\nshort\nAlice:second\n\
                    :nameless\ncarol:\n #x:indented\nalice:later\nlast:no-newline";
        let exact = Index::build(text.into(), &file_format()).unwrap();
        let any_case = Index::build(
            text.into(),
            &Format {
                case_sensitive: false,
                ..file_format()
            },
        )
        .unwrap();
        let cases = [
            (&exact, "alice", Some("alice:wonderland")),
            (&exact, "bob", Some("bob:builder:extra")),
            (&exact, "ALICE", None),
            (&any_case, "ALICE", Some("alice:wonderland")),
            (&any_case, "aLiCe", Some("alice:wonderland")),
            (&exact, "Alice", Some("Alice:second")),
            (&exact, "short", None),
            (&exact, "# comment", None),
            (&exact, "carol", None),
            (&exact, "", None),
            (&exact, " #x", None),
            (&exact, "dave", None),
            (&exact, "last", Some("last:no-newline")),
        ];
        for (index, key, want) in cases {
            assert_eq!(find(index, key), want, "{key}");
        }
        assert_eq!(exact.len(), 5);
    }

    #[test]
    fn unix_layout() {
        let text = "root:x:0:0:root:/root:/bin/bash\n# c\n+nis::0:0:::\n-evil:x:0:0:::\n\
                    carol::1002:1002:::\n #x:y\nshort\n";
        let index = Index::build(text.into(), &unix_format()).unwrap();
        let cases = [
            ("root", Some("root:x:0:0:root:/root:/bin/bash")),
            ("carol", Some("carol::1002:1002:::")),
            ("+nis", None),
            ("nis", None),
            ("-evil", None),
            (" #x", Some(" #x:y")),
            ("short", None),
        ];
        for (key, want) in cases {
            assert_eq!(find(&index, key), want, "{key}");
        }
    }

    #[test]
    fn other_layouts() {
        let f = Format {
            delimiter: '|',
            key_field: 2,
            value_field: 3,
            ..file_format()
        };
        let index = Index::build("1001|x|alice|$2b$hash\n1002|y|bob\n".into(), &f).unwrap();
        assert_eq!(find(&index, "alice"), Some("1001|x|alice|$2b$hash"));
        assert_eq!(find(&index, "bob"), None, "no value field");
        let tab = Format {
            delimiter: '\t',
            ..file_format()
        };
        let index = Index::build("alice\twonder:land\n".into(), &tab).unwrap();
        assert_eq!(find(&index, "alice"), Some("alice\twonder:land"));
    }

    #[test]
    fn kinds_in_order_of_first_entry() {
        let text = "a:plain\nb:$6$s$h\nc:$6$t$i\nd:{SCRAM-SHA-256}4096,x\ne:$argon2id$v=19$x\n\
                   f:$nodollar\ng:{open\nh:other\n";
        let index = Index::build(text.into(), &file_format()).unwrap();
        let Found::Absent(kinds) = index.lookup("nobody") else {
            panic!("nobody is absent");
        };
        let got: Vec<_> = kinds
            .iter()
            .map(|(k, line)| (k.tag.as_str(), k.count, *line))
            .collect();
        assert_eq!(
            got,
            [
                ("", 2, "a:plain"),
                ("$6$", 2, "b:$6$s$h"),
                ("{SCRAM-SHA-256}", 1, "d:{SCRAM-SHA-256}4096,x"),
                ("$argon2id$", 1, "e:$argon2id$v=19$x"),
                ("$", 1, "f:$nodollar"),
                ("{", 1, "g:{open"),
            ]
        );
        let many: String = (0..40).map(|i| format!("u{i}:${i}$x\n")).collect();
        let index = Index::build(many.into(), &file_format()).unwrap();
        let Found::Absent(kinds) = index.lookup("nobody") else {
            panic!("nobody is absent");
        };
        assert_eq!(kinds.len(), MAX_KINDS);
    }

    #[test]
    fn tags() {
        let cases = [
            ("", ""),
            ("plain", ""),
            ("$6$salt$hash", "$6$"),
            ("$2b$04$x", "$2b$"),
            ("$argon2id$v=19", "$argon2id$"),
            ("$y$j9T$x", "$y$"),
            ("{SCRAM-SHA-1}1,2", "{SCRAM-SHA-1}"),
            ("$", "$"),
            ("$$", "$$"),
            ("{", "{"),
            ("{}", "{}"),
            (&format!("${}$", "a".repeat(40)), "$"),
            ("$é$", "$é$"),
            ("!$6$s$h", ""),
        ];
        for (value, want) in cases {
            assert_eq!(tag(value), want, "{value}");
        }
    }

    #[test]
    fn bounds_and_bad_text() {
        let long = format!("a:{}\n", "x".repeat(MAX_LINE));
        assert_eq!(
            Index::build(long.into_bytes(), &file_format()).unwrap_err(),
            IndexError::LongLine(1)
        );
        let fits = format!("a:{}\n", "x".repeat(MAX_LINE - 2));
        assert!(Index::build(fits.into_bytes(), &file_format()).is_ok());
        assert_eq!(
            Index::build(b"a:\xff\n".to_vec(), &file_format()).unwrap_err(),
            IndexError::NotText
        );
        let empty = Index::build(Vec::new(), &file_format()).unwrap();
        assert_eq!(empty.lookup("a"), Found::Absent(Vec::new()));
    }

    #[test]
    fn formats() {
        assert!(file_format().check().is_ok());
        assert!(unix_format().check().is_ok());
        for bad in [
            Format {
                delimiter: '\n',
                ..file_format()
            },
            Format {
                comments: ":".into(),
                ..file_format()
            },
            Format {
                comments: "123456789".into(),
                ..file_format()
            },
            Format {
                key_field: 5000,
                ..file_format()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn many_keys_and_duplicates() {
        let mut text: String = (0..10_000).map(|i| format!("user{i}:pw{i}\n")).collect();
        text.push_str("user5:duplicate\n");
        let index = Index::build(text.into(), &file_format()).unwrap();
        for i in (0..10_000).step_by(97) {
            assert_eq!(
                find(&index, &format!("user{i}")),
                Some(format!("user{i}:pw{i}").as_str())
            );
        }
        assert_eq!(find(&index, "user5"), Some("user5:pw5"));
        assert_eq!(find(&index, "user10000"), None);
    }
}
