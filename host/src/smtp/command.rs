//! The SMTP command parser (RFC 5321 §4.1, RFC 4954 §4, RFC 3207): a pure
//! function from one command line (without CRLF) to a [`Command`].

use crate::sasl::Mechname;

/// A parsed command, borrowing from the line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Ehlo(&'a str),
    Helo(&'a str),
    Mail {
        /// The reverse-path; empty for the null sender `<>`.
        from: &'a str,
        params: Vec<Param<'a>>,
    },
    Rcpt {
        to: &'a str,
        params: Vec<Param<'a>>,
    },
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy(&'a str),
    Expn(&'a str),
    Help(Option<&'a str>),
    StartTls,
    Auth {
        mechanism: Mechname,
        /// The base64 initial response as sent (`=` for an empty one).
        initial_response: Option<&'a [u8]>,
    },
}

/// An ESMTP parameter, `KEYWORD[=VALUE]`; the keyword is compared
/// case-insensitively by its users.
#[derive(Debug, PartialEq, Eq)]
pub struct Param<'a> {
    pub keyword: &'a str,
    pub value: Option<&'a str>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a command this server knows (500 5.5.2).
    #[error("command not recognized")]
    Unrecognized,
    /// A known command with bad arguments (501 5.5.4).
    #[error("syntax error: {0}")]
    Syntax(&'static str),
}

/// Parses one command line, without its CRLF.
pub fn parse_command(line: &[u8]) -> Result<Command<'_>, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::Syntax("not UTF-8"))?;
    let (verb, args) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let no_args = |cmd: Command<'static>| {
        if args.trim().is_empty() {
            Ok(cmd)
        } else {
            Err(ParseError::Syntax("this command takes no arguments"))
        }
    };
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" => Ok(Command::Ehlo(domain_arg(args)?)),
        "HELO" => Ok(Command::Helo(domain_arg(args)?)),
        "MAIL" => {
            let (from, params) = path_and_params(args, "FROM:")?;
            Ok(Command::Mail { from, params })
        }
        "RCPT" => {
            let (to, params) = path_and_params(args, "TO:")?;
            if to.is_empty() {
                return Err(ParseError::Syntax("the recipient must not be empty"));
            }
            Ok(Command::Rcpt { to, params })
        }
        "DATA" => no_args(Command::Data),
        "RSET" => no_args(Command::Rset),
        "QUIT" => no_args(Command::Quit),
        "STARTTLS" => no_args(Command::StartTls),
        // NOOP may carry a string, which is ignored (RFC 5321 §4.1.1.9).
        "NOOP" => Ok(Command::Noop),
        "VRFY" if !args.trim().is_empty() => Ok(Command::Vrfy(args.trim())),
        "EXPN" if !args.trim().is_empty() => Ok(Command::Expn(args.trim())),
        "VRFY" | "EXPN" => Err(ParseError::Syntax("an argument is required")),
        "HELP" => Ok(Command::Help(Some(args.trim()).filter(|a| !a.is_empty()))),
        "AUTH" => {
            let mut parts = args.split(' ').filter(|p| !p.is_empty());
            let mechanism = parts
                .next()
                .and_then(|m| Mechname::parse(m.as_bytes()))
                .ok_or(ParseError::Syntax("AUTH needs a mechanism name"))?;
            let initial_response = parts.next().map(str::as_bytes);
            if parts.next().is_some() {
                return Err(ParseError::Syntax("too many AUTH arguments"));
            }
            Ok(Command::Auth {
                mechanism,
                initial_response,
            })
        }
        _ => Err(ParseError::Unrecognized),
    }
}

fn domain_arg(args: &str) -> Result<&str, ParseError> {
    let domain = args.trim();
    if domain.is_empty() || domain.contains(' ') {
        return Err(ParseError::Syntax(
            "a domain or address literal is required",
        ));
    }
    Ok(domain)
}

/// `FROM:<path> [params]` or `TO:<path> [params]`; a space after the
/// colon is tolerated, as many clients send one.
fn path_and_params<'a>(
    args: &'a str,
    prefix: &'static str,
) -> Result<(&'a str, Vec<Param<'a>>), ParseError> {
    let head = args.get(..prefix.len()).unwrap_or_default();
    if !head.eq_ignore_ascii_case(prefix) {
        return Err(ParseError::Syntax(
            "expected FROM:<address> or TO:<address>",
        ));
    }
    let rest = args[prefix.len()..].trim_start();
    let rest = rest
        .strip_prefix('<')
        .ok_or(ParseError::Syntax("the address must be in angle brackets"))?;
    let end = closing_bracket(rest).ok_or(ParseError::Syntax("unterminated address"))?;
    let path = strip_source_route(&rest[..end])?;
    validate_mailbox(path)?;
    let params = rest[end + 1..]
        .split(' ')
        .filter(|p| !p.is_empty())
        .map(param)
        .collect::<Result<_, _>>()?;
    Ok((path, params))
}

/// The `>` that closes the path, skipping quoted local parts.
fn closing_bracket(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Drops an obsolete source route (`@a,@b:user@c`, RFC 5321 §4.1.2).
fn strip_source_route(path: &str) -> Result<&str, ParseError> {
    if path.starts_with('@') {
        let colon = path
            .find(':')
            .ok_or(ParseError::Syntax("bad source route"))?;
        return Ok(&path[colon + 1..]);
    }
    Ok(path)
}

/// Empty (null path), `Postmaster`, or `local@domain` with a plausible
/// domain. Non-ASCII is accepted here; SMTPUTF8 rules are the session's.
fn validate_mailbox(path: &str) -> Result<(), ParseError> {
    if path.is_empty() || path.eq_ignore_ascii_case("postmaster") {
        return Ok(());
    }
    let at = path
        .rfind('@')
        .ok_or(ParseError::Syntax("the address needs a domain"))?;
    let (local, domain) = (&path[..at], &path[at + 1..]);
    if local.is_empty() || local.len() > 64 {
        return Err(ParseError::Syntax("bad local part"));
    }
    let literal = domain.starts_with('[') && domain.ends_with(']');
    let valid_domain = literal
        || (!domain.is_empty()
            && domain.len() <= 255
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            }));
    if !valid_domain {
        return Err(ParseError::Syntax("bad domain"));
    }
    if local.chars().any(|c| c.is_control() || c == ' ') && !local.starts_with('"') {
        return Err(ParseError::Syntax("bad local part"));
    }
    Ok(())
}

fn param(text: &str) -> Result<Param<'_>, ParseError> {
    let (keyword, value) = match text.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (text, None),
    };
    let keyword_ok = keyword
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && keyword
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    let value_ok = value.is_none_or(|v| {
        !v.is_empty() && v.chars().all(|c| c != '=' && !c.is_control() && c != ' ')
    });
    if !keyword_ok || !value_ok {
        return Err(ParseError::Syntax("bad ESMTP parameter"));
    }
    Ok(Param { keyword, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p<'a>(keyword: &'a str, value: Option<&'a str>) -> Param<'a> {
        Param { keyword, value }
    }

    #[test]
    fn commands() {
        use Command::*;
        let syntax = |why| Err(ParseError::Syntax(why));
        let cases: Vec<(&str, Result<Command, ParseError>)> = vec![
            ("EHLO client.example", Ok(Ehlo("client.example"))),
            ("ehlo [127.0.0.1]", Ok(Ehlo("[127.0.0.1]"))),
            ("HELO x", Ok(Helo("x"))),
            ("EHLO", syntax("a domain or address literal is required")),
            (
                "EHLO a b",
                syntax("a domain or address literal is required"),
            ),
            (
                "MAIL FROM:<a@example.com>",
                Ok(Mail {
                    from: "a@example.com",
                    params: vec![],
                }),
            ),
            (
                "mail from: <a@example.com> SIZE=100 BODY=8BITMIME SMTPUTF8",
                Ok(Mail {
                    from: "a@example.com",
                    params: vec![
                        p("SIZE", Some("100")),
                        p("BODY", Some("8BITMIME")),
                        p("SMTPUTF8", None),
                    ],
                }),
            ),
            (
                "MAIL FROM:<>",
                Ok(Mail {
                    from: "",
                    params: vec![],
                }),
            ),
            (
                "MAIL FROM:<> AUTH=<>",
                Ok(Mail {
                    from: "",
                    params: vec![p("AUTH", Some("<>"))],
                }),
            ),
            (
                "MAIL FROM:<\"odd >name\"@example.com>",
                Ok(Mail {
                    from: "\"odd >name\"@example.com",
                    params: vec![],
                }),
            ),
            (
                "MAIL FROM:<@relay.example,@b.example:u@c.example>",
                Ok(Mail {
                    from: "u@c.example",
                    params: vec![],
                }),
            ),
            (
                "MAIL FROM:a@example.com",
                syntax("the address must be in angle brackets"),
            ),
            ("MAIL FROM:<a@example.com", syntax("unterminated address")),
            (
                "MAIL TO:<a@example.com>",
                syntax("expected FROM:<address> or TO:<address>"),
            ),
            ("MAIL FROM:<a>", syntax("the address needs a domain")),
            ("MAIL FROM:<a@-bad-.com>", syntax("bad domain")),
            ("MAIL FROM:<a@x> SIZE=", syntax("bad ESMTP parameter")),
            ("MAIL FROM:<a@x> =1", syntax("bad ESMTP parameter")),
            (
                "RCPT TO:<b@example.com>",
                Ok(Rcpt {
                    to: "b@example.com",
                    params: vec![],
                }),
            ),
            (
                "RCPT TO:<Postmaster>",
                Ok(Rcpt {
                    to: "Postmaster",
                    params: vec![],
                }),
            ),
            (
                "RCPT TO:<jürgen@bücher.example>",
                Ok(Rcpt {
                    to: "jürgen@bücher.example",
                    params: vec![],
                }),
            ),
            ("RCPT TO:<>", syntax("the recipient must not be empty")),
            ("DATA", Ok(Data)),
            ("DATA now", syntax("this command takes no arguments")),
            ("RSET", Ok(Rset)),
            ("NOOP", Ok(Noop)),
            ("NOOP anything", Ok(Noop)),
            ("QUIT", Ok(Quit)),
            ("VRFY bob", Ok(Vrfy("bob"))),
            ("VRFY", syntax("an argument is required")),
            ("EXPN list", Ok(Expn("list"))),
            ("HELP", Ok(Help(None))),
            ("HELP AUTH", Ok(Help(Some("AUTH")))),
            ("STARTTLS", Ok(StartTls)),
            (
                "AUTH PLAIN AGd1ZXN0AHBhc3N3b3Jk",
                Ok(Auth {
                    mechanism: Mechname::parse(b"PLAIN").unwrap(),
                    initial_response: Some(b"AGd1ZXN0AHBhc3N3b3Jk"),
                }),
            ),
            (
                "auth login",
                Ok(Auth {
                    mechanism: Mechname::parse(b"LOGIN").unwrap(),
                    initial_response: None,
                }),
            ),
            ("AUTH", syntax("AUTH needs a mechanism name")),
            ("AUTH PLAIN a b", syntax("too many AUTH arguments")),
            ("BDAT 100", Err(ParseError::Unrecognized)),
            ("", Err(ParseError::Unrecognized)),
            ("GET / HTTP/1.1", Err(ParseError::Unrecognized)),
        ];
        for (line, want) in cases {
            assert_eq!(parse_command(line.as_bytes()), want, "{line:?}");
        }
        assert_eq!(
            parse_command(b"EHLO \xff"),
            Err(ParseError::Syntax("not UTF-8"))
        );
    }
}
