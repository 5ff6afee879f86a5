use std::path::PathBuf;

/// Everything that can go wrong with API keys and their file.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The presented text is not `smq_<id>_<secret>`.
    #[error("malformed API key: {0}")]
    MalformedKey(&'static str),
    /// Well-formed, but no key has this id.
    #[error("unknown API key id {id}")]
    UnknownKey { id: String },
    /// The id exists but the secret does not match its hash.
    #[error("wrong secret for API key {id}")]
    WrongSecret { id: String },
    /// The key matched, but it was revoked.
    #[error("API key {id} ({name}) was revoked")]
    Revoked { id: String, name: String },
    #[error("invalid permission {permission:?}: {reason}")]
    InvalidPermission { permission: String, reason: String },
    #[error("invalid key name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("an active key named {0:?} already exists; revoke it first or pick another name")]
    DuplicateName(String),
    #[error("no API key has the id or name {0:?}")]
    NotFound(String),
    #[error("API key {id} ({name}) is already revoked")]
    AlreadyRevoked { id: String, name: String },
    #[error("too many {what}: at most {max}")]
    TooMany { what: &'static str, max: usize },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no API key file at {path}")]
    Missing { path: PathBuf },
    #[error("{path} is {len} bytes; an API key file may be at most {max} bytes")]
    FileTooLarge { path: PathBuf, len: u64, max: u64 },
    #[error("{path} is not a valid API key file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("the OS random number generator failed")]
    Random,
}

impl AuthError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> AuthError {
        let path = path.into();
        move |source| AuthError::Io { path, source }
    }

    /// A short, stable label for logs and metrics (a bounded set).
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MalformedKey(_) => "malformed",
            AuthError::UnknownKey { .. } => "unknown_key",
            AuthError::WrongSecret { .. } => "wrong_secret",
            AuthError::Revoked { .. } => "revoked",
            AuthError::InvalidPermission { .. } => "invalid_permission",
            AuthError::InvalidName { .. } => "invalid_name",
            AuthError::DuplicateName(_) => "duplicate_name",
            AuthError::NotFound(_) => "not_found",
            AuthError::AlreadyRevoked { .. } => "already_revoked",
            AuthError::TooMany { .. } => "too_many",
            AuthError::Io { .. } => "io",
            AuthError::Missing { .. } => "missing_file",
            AuthError::FileTooLarge { .. } => "file_too_large",
            AuthError::Corrupt { .. } => "corrupt_file",
            AuthError::Random => "random",
        }
    }

    /// The key id the error is about, when there is one (never a secret).
    pub fn key_id(&self) -> Option<&str> {
        match self {
            AuthError::UnknownKey { id }
            | AuthError::WrongSecret { id }
            | AuthError::Revoked { id, .. }
            | AuthError::AlreadyRevoked { id, .. } => Some(id),
            _ => None,
        }
    }
}
