//! From a recipient address to the Maildir user it delivers to.

/// The user whose Maildir receives mail for `recipient`, or why none does.
/// `domains`: the accepted domains (`None`: any).
pub fn mailbox_user(recipient: &str, domains: Option<&[String]>) -> Result<String, String> {
    let (local, domain) = match recipient.rsplit_once('@') {
        Some((local, domain)) => (local, Some(domain)),
        // RFC 5321 §4.5.1: Postmaster without a domain.
        None if recipient.eq_ignore_ascii_case("postmaster") => (recipient, None),
        None => return Err(format!("{recipient} has no domain")),
    };
    if let (Some(domains), Some(domain)) = (domains, domain)
        && !domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    {
        return Err(format!("Mail for {domain} is not accepted here"));
    }
    let user = local.to_ascii_lowercase();
    let safe = !user.is_empty()
        && user.len() <= 64
        && !user.starts_with('.')
        && !user.contains("..")
        && user
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._+-".contains(&b));
    if !safe {
        return Err(format!("No mailbox here for {local}"));
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::mailbox_user;

    #[test]
    fn recipients() {
        let only = vec!["example.com".to_owned()];
        type Case<'a> = (&'a str, Option<&'a [String]>, Result<&'a str, ()>);
        let cases: &[Case] = &[
            ("Guest@localhost", None, Ok("guest")),
            ("a.b+tag@example.com", Some(&only), Ok("a.b+tag")),
            ("x@EXAMPLE.com", Some(&only), Ok("x")),
            ("x@other.org", Some(&only), Err(())),
            ("Postmaster", None, Ok("postmaster")),
            ("nobody", None, Err(())),
            ("../etc@example.com", None, Err(())),
            (".hidden@example.com", None, Err(())),
            ("a/b@example.com", None, Err(())),
            ("\"quoted\"@example.com", None, Err(())),
            ("jörg@example.com", None, Err(())),
            ("@example.com", None, Err(())),
        ];
        for (rcpt, domains, want) in cases {
            let got = mailbox_user(rcpt, *domains);
            assert_eq!(got.as_deref().map_err(|_| ()), *want, "{rcpt}");
        }
        let long = format!("{}@x", "a".repeat(65));
        assert!(mailbox_user(&long, None).is_err());
    }
}
