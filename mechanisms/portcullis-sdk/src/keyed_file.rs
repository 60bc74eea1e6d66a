//! Lines of a file the plugin was granted, found by key through an index
//! the host keeps per file version (`interface keyed-file`).
//!
//! [`lookup`]`(path, format, key)` answers the whole line of the first
//! entry for `key`, or, for an absent key, the kinds of values the file
//! holds (so a checker can spend the time a present user would cost).
//! `path` is a guest path inside the plugin's grants. An edit to the file,
//! in place or by rename, applies at the next lookup. Only checkers may
//! call it.
//!
//! [`scan`] answers as the host's index does, over a text: for native
//! unit tests of a checker's decisions.

pub use crate::bindings::checker::portcullis::auth::keyed_file::*;

/// The tag the host gives a value (see `value-kind` in
/// `wit/keyed-file.wit`): its prefix up to its second `$` or first `}`
/// within 32 bytes, else `$` or `{` for a value starting with one, else
/// empty.
pub fn tag(value: &str) -> &str {
    let head = &value.as_bytes()[..value.len().min(32)];
    let end = match head.first() {
        Some(b'$') => head[1..].iter().position(|&b| b == b'$').map(|i| i + 2),
        Some(b'{') => head.iter().position(|&b| b == b'}').map(|i| i + 1),
        _ => return "",
    };
    &value[..end.unwrap_or(1)]
}

/// The key and value of an entry line, as the host reads it.
fn fields<'a>(format: &LineFormat, line: &'a str) -> Option<(&'a str, &'a str)> {
    let probe = if format.indented_comments {
        line.trim_start()
    } else {
        line
    };
    if probe.is_empty() || probe.starts_with(|c| format.comments.contains(c)) {
        return None;
    }
    let fields: Vec<&str> = line.split(format.delimiter).collect();
    let key = *fields.get(format.key_field as usize)?;
    let value = *fields.get(format.value_field as usize)?;
    let skipped = key.is_empty() || (format.value_required && value.is_empty());
    (!skipped).then_some((key, value))
}

/// What [`lookup`] would answer for `key` if the file held `text`.
pub fn scan(text: &str, format: &LineFormat, key: &str) -> Entry {
    let same = |a: &str| {
        if format.case_sensitive {
            a == key
        } else {
            a.eq_ignore_ascii_case(key)
        }
    };
    let lines = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    let mut kinds: Vec<ValueKind> = Vec::new();
    for line in lines {
        let Some((k, value)) = fields(format, line) else {
            continue;
        };
        if same(k) {
            return Entry::Found(line.to_owned());
        }
        let tag = tag(value);
        if let Some(kind) = kinds.iter_mut().find(|kind| kind.tag == tag) {
            kind.count += 1;
        } else if kinds.len() < 16 {
            kinds.push(ValueKind {
                tag: tag.to_owned(),
                count: 1,
                first_line: line.to_owned(),
            });
        }
    }
    Entry::Absent(kinds)
}
