//! From a recipient address to the name of a folder in the spool: a pure
//! function, so every refusal is decided (and tested) without a file system.

use std::fmt;

/// The longest local part accepted, in bytes (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL: usize = 64;

/// A user's folder name in the spool: the local part of an address, lower
/// case, made only of `a-z 0-9 . _ + -`, not starting with `.`, at most
/// [`MAX_LOCAL`] bytes. Such a name can never climb out of the spool.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct User(String);

impl User {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a recipient is not a mailbox of this realm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not `local@domain`.
    NotAnAddress,
    /// The local part is not a safe folder name.
    BadLocalPart,
    /// The domain is not one of the configured domains.
    ForeignDomain,
}

impl Refused {
    /// The text for the client: one line, no address echoed back.
    pub fn text(self) -> &'static str {
        match self {
            Refused::NotAnAddress => "Recipient is not an address of the form local@domain",
            Refused::BadLocalPart => {
                "Mailbox names here are made of letters, digits and . _ + - only"
            }
            Refused::ForeignDomain => "Mail for that domain is not accepted here",
        }
    }
}

/// The folder for `recipient`, given the accepted domains (lower case;
/// `None`: any domain).
pub fn mailbox(recipient: &str, domains: Option<&[String]>) -> Result<User, Refused> {
    let Some((local, domain)) = recipient.rsplit_once('@') else {
        return Err(Refused::NotAnAddress);
    };
    if local.is_empty() || domain.is_empty() {
        return Err(Refused::NotAnAddress);
    }
    if let Some(domains) = domains
        && !domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    {
        return Err(Refused::ForeignDomain);
    }
    let local = local.to_ascii_lowercase();
    let safe = local.len() <= MAX_LOCAL
        && !local.starts_with('.')
        && local
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._+-".contains(&b));
    if safe {
        Ok(User(local))
    } else {
        Err(Refused::BadLocalPart)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (recipient, accepted domains, expected folder name or refusal)
    type Case<'a> = (&'a str, Option<&'a [String]>, Result<&'a str, Refused>);

    #[test]
    fn mailboxes() {
        let ours = ["example.com".to_owned(), "mail.example.org".to_owned()];
        let long = format!("{}@example.com", "a".repeat(MAX_LOCAL));
        let too_long = format!("{}@example.com", "a".repeat(MAX_LOCAL + 1));
        let cases: &[Case] = &[
            ("alice@example.com", None, Ok("alice")),
            ("Alice@Example.COM", Some(&ours), Ok("alice")),
            (
                "bob.smith+tag@mail.example.org",
                Some(&ours),
                Ok("bob.smith+tag"),
            ),
            ("a_b-c.9@x", None, Ok("a_b-c.9")),
            (&long, None, Ok(&long[..MAX_LOCAL])),
            (&too_long, None, Err(Refused::BadLocalPart)),
            (
                "alice@example.net",
                Some(&ours),
                Err(Refused::ForeignDomain),
            ),
            (
                "alice@sub.example.com",
                Some(&ours),
                Err(Refused::ForeignDomain),
            ),
            ("alice@example.com", Some(&[]), Err(Refused::ForeignDomain)),
            ("alice", None, Err(Refused::NotAnAddress)),
            ("", None, Err(Refused::NotAnAddress)),
            ("@example.com", None, Err(Refused::NotAnAddress)),
            ("alice@", None, Err(Refused::NotAnAddress)),
            (".hidden@example.com", None, Err(Refused::BadLocalPart)),
            ("..@example.com", None, Err(Refused::BadLocalPart)),
            ("../etc@example.com", None, Err(Refused::BadLocalPart)),
            ("a/b@example.com", None, Err(Refused::BadLocalPart)),
            ("a\\b@example.com", None, Err(Refused::BadLocalPart)),
            ("\"a b\"@example.com", None, Err(Refused::BadLocalPart)),
            ("a@b@example.com", None, Err(Refused::BadLocalPart)),
            ("<alice@example.com>", None, Err(Refused::BadLocalPart)),
            ("jörg@example.com", None, Err(Refused::BadLocalPart)),
            ("a\0@example.com", None, Err(Refused::BadLocalPart)),
            // The domain is checked first: a foreign domain is the answer
            // even when the local part is bad too.
            (".x@example.net", Some(&ours), Err(Refused::ForeignDomain)),
        ];
        for (recipient, domains, want) in cases {
            let got = mailbox(recipient, *domains);
            assert_eq!(
                got.as_ref().map(User::as_str).map_err(|e| *e),
                *want,
                "{recipient:?}"
            );
        }
    }

    #[test]
    fn refusal_texts_are_single_lines() {
        for r in [
            Refused::NotAnAddress,
            Refused::BadLocalPart,
            Refused::ForeignDomain,
        ] {
            assert!(!r.text().contains(['\r', '\n']));
        }
    }
}
