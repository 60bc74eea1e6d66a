//! `--auth TYPE[:ARGS]`, in the style of twistd's strcred (seeds/001):
//! parsing is a pure function over the argument, and the help texts for
//! `--help-auth` and `--help-auth-type` live beside it.

use std::path::PathBuf;
use std::str::FromStr;

use serde_json::{Map, Value, json};

use super::plugin_arg::PluginArg;

/// A checker the operator asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum AuthSpec {
    /// `memory:user:pass:user2:pass2`
    Memory(Vec<(String, String)>),
    /// `file:PATH[:option...]`
    File {
        path: PathBuf,
        options: Map<String, Value>,
    },
    /// `anonymous`
    Anonymous,
    /// `external[:ID:ID...]`
    External(Vec<String>),
    /// `sql:DSN[:pool=N][:query=SQL]`
    Sql {
        dsn: String,
        query: Option<String>,
        pool: Option<usize>,
    },
    /// `unix[:passwd=PATH][:shadow=PATH]`
    Unix { passwd: PathBuf, shadow: PathBuf },
    /// `token:tokens=PATH[:{JSON}]` or `token:{JSON}`: a token file and the
    /// checker's other settings (`jwt`).
    Token {
        tokens: Option<PathBuf>,
        config: Map<String, Value>,
    },
    /// `wasm:PATH[:grant=DIR[@GUEST]]...[:sha256=HEX][:memory=SIZE]...[:{JSON}]`
    Wasm(PluginArg),
}

/// The auth types, with their one-line argument formats.
pub const AUTH_TYPES: &[(&str, &str)] = &[
    ("memory", "A colon-separated list (name:password:...)"),
    (
        "file",
        "Location of a FilePasswordDB-formatted file, then options",
    ),
    ("anonymous", "No argstring required."),
    (
        "external",
        "Identities allowed from TLS client certificates (ID:ID:...)",
    ),
    (
        "sql",
        "A database (sqlite:PATH or postgresql://...), then :pool=N, :query=SQL",
    ),
    (
        "unix",
        "Optional passwd=PATH:shadow=PATH (default /etc/passwd, /etc/shadow)",
    ),
    (
        "token",
        "tokens=PATH of a bearer token file, and/or {JSON} JWT settings",
    ),
    (
        "wasm",
        "Path of a checker component (.wasm), then grants and JSON",
    ),
];

/// `--help-auth`.
pub fn help_auth() -> String {
    let mut out = String::from(
        "Usage: --auth AuthType[:ArgString]\n\
         For detailed help: --help-auth-type AuthType\n\n\
         AuthType   ArgString format\n\
         ========   ================\n",
    );
    for (name, format) in AUTH_TYPES {
        out.push_str(&format!("{name:<10} {format}\n"));
    }
    out
}

/// `--help-auth-type TYPE`.
pub fn help_auth_type(name: &str) -> Result<&'static str, String> {
    Ok(match name {
        "memory" => {
            "Usage: --auth memory:name:password[:name2:password2...]\n\n\
             Users and passwords given on the command line, checked in memory (Twisted's\n\
             InMemoryUsernamePasswordDatabaseDontUse). Names and passwords cannot contain ':'.\n\
             SCRAM keys are derived from the passwords with a salt computed from the user\n\
             name: fine for testing; for production store SCRAM keys in a file.\n\
             Credential kinds: username-password, challenge-response (CRAM-MD5),\n\
             scram-sha1, scram-sha256.\n\n\
             Example: --auth memory:alice:wonderland:bob:builder\n"
        }
        "file" => {
            "Usage: --auth file:PATH[:option...]\n\n\
             Users from a FilePasswordDB-formatted file: one 'user:password' line per user.\n\
             Blank lines and lines starting with '#' are ignored. The password field may be\n\
             plain text or a hash recognised by its prefix: $argon2id$ (and $argon2i$,\n\
             $argon2d$), $2b$/$2a$/$2y$ (bcrypt), $6$ (SHA-512-crypt), $5$ (SHA-256-crypt),\n\
             or stored SCRAM keys as Dovecot writes them ({SCRAM-SHA-256}ITER,SALT,STOREDKEY,\n\
             SERVERKEY from 'doveadm pw -s SCRAM-SHA-256', and {SCRAM-SHA-1}). CRAM-MD5 needs\n\
             a plain-text password; SCRAM needs plain text or stored keys of its variant.\n\
             Users are found through an index the host keeps of the file, rebuilt when the\n\
             file changes, so edits (in place or by rename) take effect at the next login\n\
             and a login costs the same at any number of users (up to 1 GiB of file, 64 KiB\n\
             per line). The checker runs sandboxed and can read only the file's folder,\n\
             read-only.\n\n\
             Options:\n\
             \x20 delimiter=C          field separator (one character, or colon, tab, space,\n\
             \x20                      comma, pipe); default ':'\n\
             \x20 username-field=N     0-based field of the user name; default 0\n\
             \x20 password-field=N     0-based field of the password; default 1\n\
             \x20 case-insensitive     match user names regardless of ASCII case\n\n\
             Example: --auth file:/etc/portcullis/passwords.txt:delimiter=tab\n\
             Credential kinds: username-password, challenge-response (CRAM-MD5),\n\
             scram-sha1, scram-sha256.\n"
        }
        "anonymous" => {
            "Usage: --auth anonymous\n\n\
             Allows anonymous logins (the ANONYMOUS SASL mechanism; SMTP sessions that do\n\
             not authenticate). The realm receives no avatar id.\n\
             Credential kinds: anonymous.\n"
        }
        "external" => {
            "Usage: --auth external[:ID[:ID...]]\n\n\
             Logins with SASL EXTERNAL: the identity is the subject CN (or e-mail) of\n\
             the client's TLS certificate, verified against --tls-client-ca. Without IDs\n\
             every verified identity may log in; with them, only those. The avatar id is\n\
             the identity.\n\
             Credential kinds: external.\n\n\
             Example: --tls-client-ca clients-ca.pem --auth external:alice:bob\n"
        }
        "sql" => {
            "Usage: --auth sql:DSN[:pool=N][:query=SQL]\n\n\
             Users from a SQL database. DSN is sqlite:PATH (a database file, opened\n\
             read-only) or a PostgreSQL URL (postgresql://user:password@host/dbname).\n\
             The checker runs sandboxed and never sees the connection: it may run only\n\
             the one query granted here, with the user name as its parameter. The query\n\
             returns (username, password) or (password); the password field may be plain\n\
             or hashed as for the file type (portcullis password prints entries); NULL\n\
             means a disabled account. Everything after ':query=' is the SQL.\n\
             :pool=N is the most PostgreSQL connections kept (default 4, at most 64):\n\
             each one is opened when first needed and again after it fails. The server\n\
             starts while PostgreSQL is down; its logins get 454 until it answers.\n\n\
             Default query: SELECT username, password FROM users WHERE username = ?\n\
             ($1 instead of ? for PostgreSQL).\n\
             Credential kinds: username-password.\n\n\
             Example: --auth 'sql:postgresql://auth@127.0.0.1/mail:query=SELECT pw FROM accounts WHERE login = $1'\n"
        }
        "unix" => {
            "Usage: --auth unix[:passwd=PATH][:shadow=PATH]\n\n\
             Unix accounts from a passwd file and its shadow file (Twisted's --auth unix),\n\
             by default /etc/passwd and /etc/shadow. The hash is the shadow entry's when the\n\
             passwd field is 'x'. Hashes: $6$ (SHA-512-crypt), $5$ (SHA-256-crypt),\n\
             $2b$/$2a$/$2y$ (bcrypt), $y$ (yescrypt). Locked accounts ('!' or '*') and\n\
             expired accounts (shadow field 8) are refused; so are empty passwords. The\n\
             files are indexed by the host and re-indexed when they change, so edits take\n\
             effect at the next login. The checker runs sandboxed and can read only the\n\
             files' folders, read-only; portcullis itself must be able to read them\n\
             (/etc/shadow is readable by root only).\n\
             Credential kinds: username-password.\n\n\
             Example: --auth unix:passwd=/srv/mail/passwd:shadow=/srv/mail/shadow\n"
        }
        "token" => {
            "Usage: --auth token:tokens=PATH[:{JSON}]  or  --auth token:{JSON}\n\n\
             Bearer tokens, for XOAUTH2 and OAUTHBEARER. tokens=PATH names a file of\n\
             'user:TOKEN' or 'user:sha256:HEX' lines ('#' comments), read on every login;\n\
             the checker can read only its folder, read-only. The JSON configures JSON Web\n\
             Tokens, signed HS256 or RS256:\n\
             \x20 {\"jwt\": {\"hs256-secret\": \"at least 32 bytes\" and/or\n\
             \x20          \"rs256-public-key-pem\": \"-----BEGIN PUBLIC KEY-----...\",\n\
             \x20          \"issuer\": \"...\", \"audience\": \"...\",\n\
             \x20          \"user-claim\": \"sub\" (default: email, then sub),\n\
             \x20          \"leeway-seconds\": 60}}\n\
             exp is required; iss and aud are checked when configured (a token carrying aud\n\
             is refused when no audience is configured). The token's user is the avatar id;\n\
             a user or authzid the client gives must match it.\n\
             Credential kinds: bearer-token.\n\n\
             Example: --auth 'token:tokens=/etc/portcullis/tokens.txt:{\"jwt\":{\"hs256-secret\":\"...\"}}'\n"
        }
        "wasm" => {
            "Usage: --auth wasm:PATH[:OPTION]...[:{JSON}]\n\n\
             A third-party checker component, built for wasm32-wasip2 against this host's\n\
             portcullis:auth WIT package. It runs sandboxed: it sees only the folders\n\
             granted here, read-only (grant-rw= for read-write), at GUESTPATH (default\n\
             /grant). Everything after ':{' is JSON configuration, handed to the plugin.\n\
             The credential kinds are whatever the plugin declares.\n\n\
             Options (the same for --mechanism and --realm plugins):\n\
             \x20 grant=DIR[@GUESTPATH]   a folder, read-only\n\
             \x20 grant-rw=DIR[@GUESTPATH] a folder, read-write\n\
             \x20 sha256=HEX              refuse to start unless the file has this digest\n\
             \x20 memory=SIZE             linear memory (default 96M, or --plugin-memory)\n\
             \x20 call-time=DURATION      time per call (default 2s, or --plugin-call-time)\n\
             \x20 max-output=SIZE         largest answer (default 64K, or --plugin-max-output)\n\n\
             Example: --auth 'wasm:./json-checker.wasm:grant=/srv/users:memory=32M:{\"path\":\"/grant/users.json\"}'\n"
        }
        other => {
            return Err(format!(
                "unknown auth type '{other}'; known types: {}",
                AUTH_TYPES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    })
}

fn parse_sql(rest: &str) -> Result<AuthSpec, String> {
    let (head, query) = match rest.split_once(":query=") {
        Some((head, query)) if !query.trim().is_empty() => (head, Some(query.trim().to_owned())),
        Some(_) => return Err("sql: the query after ':query=' is empty".into()),
        None => (rest, None),
    };
    let (dsn, pool) = match head.rsplit_once(":pool=") {
        Some((dsn, n)) => match n.parse::<usize>() {
            Ok(n) if n > 0 => (dsn, Some(n)),
            _ => {
                return Err(format!(
                    "sql: :pool={n} is not a number of connections (1 or more)"
                ));
            }
        },
        None => (head, None),
    };
    let known = ["sqlite:", "postgres://", "postgresql://"];
    if !known.iter().any(|p| dsn.starts_with(p)) || known.contains(&dsn) {
        // Name only the scheme: the rest may hold a password.
        let scheme = dsn.split(':').next().unwrap_or_default();
        return Err(format!(
            "sql: {scheme:?} is not a database this checker knows; write sql:sqlite:PATH \
             or sql:postgresql://user@host/dbname (see --help-auth-type sql)"
        ));
    }
    Ok(AuthSpec::Sql {
        dsn: dsn.to_owned(),
        query,
        pool,
    })
}

impl FromStr for AuthSpec {
    type Err = String;

    fn from_str(arg: &str) -> Result<Self, String> {
        let (kind, rest) = match arg.split_once(':') {
            Some((k, r)) => (k, Some(r)),
            None => (arg, None),
        };
        match kind {
            "memory" => parse_memory(rest.unwrap_or("")),
            "file" => parse_file(rest.unwrap_or("")),
            "anonymous" => match rest {
                None | Some("") => Ok(AuthSpec::Anonymous),
                Some(_) => Err("anonymous takes no arguments: write --auth anonymous".into()),
            },
            "unix" => parse_unix(rest.unwrap_or("")),
            "token" => parse_token(rest.unwrap_or("")),
            "wasm" => parse_wasm(rest.unwrap_or("")),
            "sql" => parse_sql(rest.unwrap_or("")),
            "external" => {
                let ids: Vec<String> = rest
                    .unwrap_or("")
                    .split(':')
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned)
                    .collect();
                Ok(AuthSpec::External(ids))
            }
            other => Err(format!(
                "unknown auth type '{other}'; known types: {} (see --help-auth)",
                AUTH_TYPES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

fn parse_memory(args: &str) -> Result<AuthSpec, String> {
    let fields: Vec<&str> = args.split(':').collect();
    if args.is_empty() || !fields.len().is_multiple_of(2) {
        return Err(
            "memory needs name:password pairs, e.g. --auth memory:alice:wonderland \
                    (names and passwords cannot contain ':')"
                .into(),
        );
    }
    let mut users = Vec::new();
    for pair in fields.chunks(2) {
        if pair[0].is_empty() {
            return Err("memory: a user name is empty; write --auth memory:name:password".into());
        }
        if users.iter().any(|(u, _): &(String, String)| u == pair[0]) {
            return Err(format!("memory: user '{}' is given twice", pair[0]));
        }
        users.push((pair[0].to_owned(), pair[1].to_owned()));
    }
    Ok(AuthSpec::Memory(users))
}

fn parse_file(args: &str) -> Result<AuthSpec, String> {
    let mut parts = args.split(':');
    let path = parts.next().unwrap_or_default();
    if path.is_empty() {
        return Err("file needs a path: --auth file:passwords.txt".into());
    }
    let mut options = Map::new();
    for option in parts {
        let (key, value) = match option.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (option, None),
        };
        let number = |v: Option<&str>| -> Result<Value, String> {
            v.and_then(|v| v.parse::<u32>().ok())
                .map(|n| json!(n))
                .ok_or_else(|| format!("file: {key} needs a number, e.g. {key}=1"))
        };
        match key {
            "delimiter" => {
                let c = match v_or(value, key)? {
                    "colon" => ":",
                    "tab" => "\t",
                    "space" => " ",
                    "comma" => ",",
                    "pipe" => "|",
                    c if c.chars().count() == 1 => c,
                    _ => {
                        return Err("file: delimiter=C takes one character, or colon, tab, \
                                    space, comma or pipe"
                            .into());
                    }
                };
                options.insert("delimiter".into(), json!(c));
            }
            "username-field" | "password-field" => {
                options.insert(key.into(), number(value)?);
            }
            "case-insensitive" if value.is_none() => {
                options.insert("case-sensitive".into(), json!(false));
            }
            _ => {
                return Err(format!(
                    "file: unknown option '{option}'; options are delimiter=C, \
                     username-field=N, password-field=N, case-insensitive \
                     (see --help-auth-type file)"
                ));
            }
        }
    }
    if options.get("username-field").is_some()
        && options.get("username-field") == options.get("password-field")
    {
        return Err("file: username-field and password-field must differ".into());
    }
    Ok(AuthSpec::File {
        path: PathBuf::from(path),
        options,
    })
}

fn v_or<'a>(value: Option<&'a str>, key: &str) -> Result<&'a str, String> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("file: {key} needs a value, e.g. {key}=tab"))
}

fn parse_unix(args: &str) -> Result<AuthSpec, String> {
    let (mut passwd, mut shadow) = (None, None);
    for option in args.split(':').filter(|o| !o.is_empty()) {
        let (slot, value) = match option.split_once('=') {
            Some(("passwd", v)) => (&mut passwd, v),
            Some(("shadow", v)) => (&mut shadow, v),
            _ => {
                return Err(format!(
                    "unix: unknown option '{option}'; options are passwd=PATH and shadow=PATH \
                     (see --help-auth-type unix)"
                ));
            }
        };
        if value.is_empty() || slot.is_some() {
            return Err(format!("unix: give {option} once, with a path"));
        }
        *slot = Some(PathBuf::from(value));
    }
    Ok(AuthSpec::Unix {
        passwd: passwd.unwrap_or_else(|| "/etc/passwd".into()),
        shadow: shadow.unwrap_or_else(|| "/etc/shadow".into()),
    })
}

fn parse_token(args: &str) -> Result<AuthSpec, String> {
    let (options, json) = match args.find('{') {
        Some(0) => ("", Some(args)),
        Some(at) if args[..at].ends_with(':') => (&args[..at - 1], Some(&args[at..])),
        _ => (args, None),
    };
    let config = match json {
        None => Map::new(),
        // The text may hold a secret: the error does not quote it.
        Some(json) => match serde_json::from_str(json) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err("token: the settings must be a JSON object".into()),
            Err(e) => return Err(format!("token: the settings are not valid JSON ({e})")),
        },
    };
    let mut tokens = None;
    for option in options.split(':').filter(|o| !o.is_empty()) {
        match option.strip_prefix("tokens=") {
            Some(path) if !path.is_empty() && tokens.is_none() => {
                tokens = Some(PathBuf::from(path))
            }
            _ => {
                return Err(format!(
                    "token: unexpected '{option}'; write token:tokens=PATH[:{{JSON}}] or \
                     token:{{JSON}} (see --help-auth-type token)"
                ));
            }
        }
    }
    if config.contains_key("tokens") {
        return Err(
            "token: give the token file as tokens=PATH, not in the JSON, so that \
                    the checker is granted its folder"
                .into(),
        );
    }
    if tokens.is_none() && !config.contains_key("jwt") {
        return Err(
            "token needs tokens=PATH or {\"jwt\": {...}} settings (see --help-auth-type token)"
                .into(),
        );
    }
    Ok(AuthSpec::Token { tokens, config })
}

fn parse_wasm(args: &str) -> Result<AuthSpec, String> {
    if args.is_empty() {
        return Err("wasm needs the path of a checker component: --auth wasm:checker.wasm".into());
    }
    Ok(AuthSpec::Wasm(args.parse()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(arg: &str) -> AuthSpec {
        arg.parse().unwrap_or_else(|e| panic!("{arg}: {e}"))
    }

    fn err(arg: &str) -> String {
        arg.parse::<AuthSpec>().unwrap_err()
    }

    #[test]
    fn memory() {
        assert_eq!(
            ok("memory:user:pass:foo:bar"),
            AuthSpec::Memory(vec![
                ("user".into(), "pass".into()),
                ("foo".into(), "bar".into())
            ])
        );
        assert_eq!(
            ok("memory:u:"),
            AuthSpec::Memory(vec![("u".into(), "".into())])
        );
        assert!(err("memory:user").contains("name:password pairs"));
        assert!(err("memory").contains("name:password pairs"));
        assert!(err("memory::pw").contains("empty"));
        assert!(err("memory:a:1:a:2").contains("twice"));
    }

    #[test]
    fn file() {
        assert_eq!(
            ok("file:passwords.txt"),
            AuthSpec::File {
                path: "passwords.txt".into(),
                options: Map::new()
            }
        );
        let AuthSpec::File { options, .. } =
            ok("file:/x/p.txt:delimiter=tab:username-field=1:password-field=2:case-insensitive")
        else {
            panic!()
        };
        assert_eq!(options["delimiter"], json!("\t"));
        assert_eq!(options["username-field"], json!(1));
        assert_eq!(options["password-field"], json!(2));
        assert_eq!(options["case-sensitive"], json!(false));
        assert_eq!(
            ok("file:p:delimiter=|"),
            AuthSpec::File {
                path: "p".into(),
                options: [("delimiter".to_owned(), json!("|"))].into_iter().collect()
            }
        );
        assert!(err("file").contains("needs a path"));
        assert!(err("file:p:bogus").contains("unknown option"));
        assert!(err("file:p:username-field=x").contains("needs a number"));
        assert!(err("file:p:delimiter=ab").contains("one character"));
        assert!(err("file:p:username-field=1:password-field=1").contains("must differ"));
    }

    #[test]
    fn anonymous_and_unknown() {
        assert_eq!(ok("anonymous"), AuthSpec::Anonymous);
        assert!(err("anonymous:x").contains("no arguments"));
        let e = err("ldap:x");
        assert!(
            e.contains("unknown auth type 'ldap'") && e.contains("memory, file"),
            "{e}"
        );
    }

    #[test]
    fn unix() {
        let unix = |p: &str, s: &str| AuthSpec::Unix {
            passwd: p.into(),
            shadow: s.into(),
        };
        assert_eq!(ok("unix"), unix("/etc/passwd", "/etc/shadow"));
        assert_eq!(ok("unix:"), unix("/etc/passwd", "/etc/shadow"));
        assert_eq!(ok("unix:passwd=/p"), unix("/p", "/etc/shadow"));
        assert_eq!(ok("unix:shadow=/s:passwd=p"), unix("p", "/s"));
        assert!(err("unix:/etc/passwd").contains("unknown option"));
        assert!(err("unix:home=/x").contains("unknown option"));
        assert!(err("unix:passwd=").contains("once, with a path"));
        assert!(err("unix:passwd=a:passwd=b").contains("once, with a path"));
    }

    #[test]
    fn token() {
        assert_eq!(
            ok("token:tokens=/t/tokens.txt"),
            AuthSpec::Token {
                tokens: Some("/t/tokens.txt".into()),
                config: Map::new()
            }
        );
        let AuthSpec::Token { tokens, config } =
            ok(r#"token:tokens=t.txt:{"jwt":{"hs256-secret":"s:e{c}"}}"#)
        else {
            panic!()
        };
        assert_eq!(tokens, Some("t.txt".into()));
        assert_eq!(config["jwt"], json!({"hs256-secret": "s:e{c}"}));
        let AuthSpec::Token { tokens, config } = ok(r#"token:{"jwt":{"audience":"a"}}"#) else {
            panic!()
        };
        assert_eq!(
            (tokens, config["jwt"].clone()),
            (None, json!({"audience": "a"}))
        );
        assert!(err("token").contains("needs tokens=PATH"));
        assert!(err("token:{}").contains("needs tokens=PATH"));
        assert!(err("token:t.txt").contains("unexpected 't.txt'"));
        assert!(err("token:tokens=").contains("unexpected 'tokens='"));
        assert!(err("token:tokens=a:tokens=b").contains("unexpected"));
        assert!(err(r#"token:{"tokens":"/x"}"#).contains("as tokens=PATH"));
        assert!(err("token:[1]").contains("unexpected"));
        let e = err(r#"token:{"jwt":{"hs256-secret":"hunter2"}"#);
        assert!(
            e.contains("not valid JSON") && !e.contains("hunter2"),
            "{e}"
        );
    }

    #[test]
    fn wasm() {
        assert_eq!(
            ok("wasm:c.wasm"),
            AuthSpec::Wasm(PluginArg {
                path: "c.wasm".into(),
                grants: vec![],
                options: Default::default(),
                config: json!({})
            })
        );
        let AuthSpec::Wasm(PluginArg {
            path,
            grants,
            config,
            options,
            ..
        }) = ok(r#"wasm:/p/c.wasm:grant=/srv/users:grant-rw=/tmp@/scratch:memory=32M:{"a":"b:c"}"#)
        else {
            panic!()
        };
        assert_eq!(path, PathBuf::from("/p/c.wasm"));
        assert_eq!(grants.len(), 2);
        assert_eq!(grants[1].guest_path, "/scratch");
        assert!(grants[1].writable);
        assert_eq!(config, json!({"a": "b:c"}));
        assert_eq!(options.limits.memory, Some(32 << 20));
        assert!(err("wasm:").contains("needs the path"));
        assert!(err("wasm:c.wasm:{nope").contains("JSON"));
        assert!(err("wasm:c.wasm:what").contains("grant="));
    }

    #[test]
    fn sql() {
        let sql = |dsn: &str, query: Option<&str>| AuthSpec::Sql {
            dsn: dsn.into(),
            query: query.map(Into::into),
            pool: None,
        };
        assert_eq!(
            ok("sql:sqlite:/srv/users.db"),
            sql("sqlite:/srv/users.db", None)
        );
        assert_eq!(
            ok(
                "sql:postgresql://auth@127.0.0.1:5432/mail:query=SELECT pw::text FROM u WHERE n = $1"
            ),
            sql(
                "postgresql://auth@127.0.0.1:5432/mail",
                Some("SELECT pw::text FROM u WHERE n = $1")
            )
        );
        assert_eq!(
            ok("sql:postgresql://a:b@h:5432/db:pool=2:query=SELECT pw FROM u WHERE n = $1"),
            AuthSpec::Sql {
                dsn: "postgresql://a:b@h:5432/db".into(),
                query: Some("SELECT pw FROM u WHERE n = $1".into()),
                pool: Some(2),
            }
        );
        for bad in [
            "sql:",
            "sql:mysql://x",
            "sql:sqlite:",
            "sql:sqlite:/x.db:query=",
            "sql:postgresql://h/db:pool=0",
            "sql:postgresql://h/db:pool=many",
        ] {
            assert!(bad.parse::<AuthSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn help_texts() {
        let all = help_auth();
        for (name, _) in AUTH_TYPES {
            assert!(all.contains(name));
            assert!(help_auth_type(name).unwrap().contains("Usage: --auth"));
        }
        assert!(help_auth_type("nope").unwrap_err().contains("known types"));
    }
}
