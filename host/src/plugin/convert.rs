//! Conversions between the generated WIT types and the portal's domain
//! types. The only file that knows both.

use super::bindings::checker::portcullis::auth::keyed_file as wit_files;
use super::bindings::checker::portcullis::auth::password_hash as wit_hash;
use super::bindings::checker::portcullis::auth::sql as wit_sql;
use super::bindings::types as wit;
use crate::portal::{CredentialKind, Credentials, Denial, ScramKeys, SecretEntry, StoredSecret};

pub fn kind_from_wit(kind: wit::CredentialKind) -> CredentialKind {
    match kind {
        wit::CredentialKind::UsernamePassword => CredentialKind::UsernamePassword,
        wit::CredentialKind::ChallengeResponse => CredentialKind::ChallengeResponse,
        wit::CredentialKind::BearerToken => CredentialKind::BearerToken,
        wit::CredentialKind::Anonymous => CredentialKind::Anonymous,
        wit::CredentialKind::External => CredentialKind::External,
        wit::CredentialKind::ScramSha1 => CredentialKind::ScramSha1,
        wit::CredentialKind::ScramSha256 => CredentialKind::ScramSha256,
    }
}

pub fn kind_to_wit(kind: CredentialKind) -> wit::CredentialKind {
    match kind {
        CredentialKind::UsernamePassword => wit::CredentialKind::UsernamePassword,
        CredentialKind::ChallengeResponse => wit::CredentialKind::ChallengeResponse,
        CredentialKind::BearerToken => wit::CredentialKind::BearerToken,
        CredentialKind::Anonymous => wit::CredentialKind::Anonymous,
        CredentialKind::External => wit::CredentialKind::External,
        CredentialKind::ScramSha1 => wit::CredentialKind::ScramSha1,
        CredentialKind::ScramSha256 => wit::CredentialKind::ScramSha256,
    }
}

pub fn credentials_from_wit(creds: wit::Credentials) -> Credentials {
    match creds {
        wit::Credentials::UsernamePassword(c) => Credentials::UsernamePassword {
            authzid: c.authzid,
            username: c.username,
            password: c.password,
        },
        wit::Credentials::ChallengeResponse(c) => Credentials::ChallengeResponse {
            authzid: c.authzid,
            username: c.username,
            method: c.method,
            challenge: c.challenge,
            response: c.response,
        },
        wit::Credentials::BearerToken(c) => Credentials::BearerToken {
            authzid: c.authzid,
            username: c.username,
            token: c.token,
        },
        wit::Credentials::Anonymous(trace) => Credentials::Anonymous { trace },
        wit::Credentials::VerifiedSecret(c) => Credentials::VerifiedSecret {
            authzid: c.authzid,
            username: c.username,
            kind: kind_from_wit(c.kind),
        },
        wit::Credentials::External(c) => Credentials::External {
            authzid: c.authzid,
            identity: c.identity,
        },
    }
}

pub fn credentials_to_wit(creds: &Credentials) -> wit::Credentials {
    match creds.clone() {
        Credentials::UsernamePassword {
            authzid,
            username,
            password,
        } => wit::Credentials::UsernamePassword(wit::UsernamePassword {
            authzid,
            username,
            password,
        }),
        Credentials::ChallengeResponse {
            authzid,
            username,
            method,
            challenge,
            response,
        } => wit::Credentials::ChallengeResponse(wit::ChallengeResponse {
            authzid,
            username,
            method,
            challenge,
            response,
        }),
        Credentials::BearerToken {
            authzid,
            username,
            token,
        } => wit::Credentials::BearerToken(wit::BearerToken {
            authzid,
            username,
            token,
        }),
        Credentials::Anonymous { trace } => wit::Credentials::Anonymous(trace),
        Credentials::VerifiedSecret {
            authzid,
            username,
            kind,
        } => wit::Credentials::VerifiedSecret(wit::VerifiedSecret {
            authzid,
            username,
            kind: kind_to_wit(kind),
        }),
        Credentials::External { authzid, identity } => {
            wit::Credentials::External(wit::ExternalIdentity { authzid, identity })
        }
    }
}

pub fn denial_from_wit(denial: wit::Denial) -> Denial {
    match denial {
        wit::Denial::UnknownUser => Denial::UnknownUser,
        wit::Denial::BadCredentials => Denial::BadCredentials,
        wit::Denial::AccountDisabled => Denial::AccountDisabled,
        wit::Denial::NotAuthorized => Denial::NotAuthorized,
        wit::Denial::Unsupported => Denial::Unsupported,
        wit::Denial::Other(text) => Denial::Other(text),
    }
}

pub fn denial_to_wit(denial: &Denial) -> wit::Denial {
    match denial {
        Denial::UnknownUser => wit::Denial::UnknownUser,
        Denial::BadCredentials => wit::Denial::BadCredentials,
        Denial::AccountDisabled => wit::Denial::AccountDisabled,
        Denial::NotAuthorized => wit::Denial::NotAuthorized,
        Denial::Unsupported | Denial::NoChecker(_) => wit::Denial::Unsupported,
        other => wit::Denial::Other(other.to_string()),
    }
}

pub fn secret_from_wit(entry: wit::SecretEntry) -> SecretEntry {
    SecretEntry {
        avatar_id: entry.avatar_id,
        secret: match entry.secret {
            wit::StoredSecret::Scram(k) => StoredSecret::Scram(ScramKeys {
                salt: k.salt,
                iterations: k.iterations,
                stored_key: k.stored_key,
                server_key: k.server_key,
            }),
        },
    }
}

pub fn secret_to_wit(secret: &StoredSecret) -> wit::StoredSecret {
    match secret {
        StoredSecret::Scram(k) => wit::StoredSecret::Scram(wit::ScramKeys {
            salt: k.salt.clone(),
            iterations: k.iterations,
            stored_key: k.stored_key.clone(),
            server_key: k.server_key.clone(),
        }),
    }
}

pub(super) fn sql_value_from_wit(value: wit_sql::Value) -> crate::sql::Value {
    use crate::sql::Value;
    match value {
        wit_sql::Value::Null => Value::Null,
        wit_sql::Value::Integer(i) => Value::Integer(i),
        wit_sql::Value::Real(r) => Value::Real(r),
        wit_sql::Value::Text(t) => Value::Text(t),
        wit_sql::Value::Blob(b) => Value::Blob(b),
    }
}

pub(super) fn sql_value_to_wit(value: crate::sql::Value) -> wit_sql::Value {
    use crate::sql::Value;
    match value {
        Value::Null => wit_sql::Value::Null,
        Value::Integer(i) => wit_sql::Value::Integer(i),
        Value::Real(r) => wit_sql::Value::Real(r),
        Value::Text(t) => wit_sql::Value::Text(t),
        Value::Blob(b) => wit_sql::Value::Blob(b),
    }
}

pub(super) fn sql_error_to_wit(error: crate::sql::QueryError) -> wit_sql::QueryError {
    use crate::sql::QueryError;
    match error {
        QueryError::UnknownQuery(t) => wit_sql::QueryError::UnknownQuery(t),
        QueryError::BadParameters(t) => wit_sql::QueryError::BadParameters(t),
        QueryError::Unavailable(t) => wit_sql::QueryError::Unavailable(t),
    }
}

pub(super) fn line_format_from_wit(f: wit_files::LineFormat) -> crate::keyed_file::index::Format {
    crate::keyed_file::index::Format {
        delimiter: f.delimiter,
        key_field: f.key_field as usize,
        value_field: f.value_field as usize,
        value_required: f.value_required,
        case_sensitive: f.case_sensitive,
        comments: f.comments,
        indented_comments: f.indented_comments,
    }
}

pub(super) fn entry_to_wit(entry: crate::keyed_file::Entry) -> wit_files::Entry {
    use crate::keyed_file::Entry;
    match entry {
        Entry::Found(line) => wit_files::Entry::Found(line),
        Entry::Absent(kinds) => wit_files::Entry::Absent(
            kinds
                .into_iter()
                .map(|(tag, count, first_line)| wit_files::ValueKind {
                    tag,
                    count,
                    first_line,
                })
                .collect(),
        ),
    }
}

pub(super) fn file_error_to_wit(error: crate::keyed_file::FileError) -> wit_files::FileError {
    use crate::keyed_file::FileError;
    match error {
        FileError::NotGranted(t) => wit_files::FileError::NotGranted(t),
        FileError::BadFormat(t) => wit_files::FileError::BadFormat(t),
        FileError::Unavailable(t) => wit_files::FileError::Unavailable(t),
    }
}

/// Why the host did not verify a hash, as the guest is told.
pub(super) fn declined_to_wit(why: crate::password_hash::Declined) -> wit_hash::HashError {
    use crate::password_hash::Declined;
    match why {
        Declined::Unsupported => wit_hash::HashError::Unsupported,
        Declined::OverLimit(text) => wit_hash::HashError::OverLimit(text),
        Declined::Malformed(text) => wit_hash::HashError::Malformed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in CredentialKind::ALL {
            assert_eq!(kind_from_wit(kind_to_wit(kind)), kind);
        }
    }

    #[test]
    fn credentials_round_trip() {
        let all = [
            Credentials::UsernamePassword {
                authzid: Some("z".into()),
                username: "u".into(),
                password: "p".into(),
            },
            Credentials::ChallengeResponse {
                authzid: None,
                username: "u".into(),
                method: "hmac-md5".into(),
                challenge: vec![1, 2],
                response: vec![3],
            },
            Credentials::BearerToken {
                authzid: None,
                username: None,
                token: "t".into(),
            },
            Credentials::Anonymous { trace: "x".into() },
            Credentials::VerifiedSecret {
                authzid: None,
                username: "u".into(),
                kind: CredentialKind::ScramSha256,
            },
            Credentials::External {
                authzid: None,
                identity: "CN=x".into(),
            },
        ];
        for c in all {
            assert_eq!(credentials_from_wit(credentials_to_wit(&c)), c);
        }
    }
}
