use thiserror::Error;

/// Why a digest string was refused. Each variant names the exact defect, so an operator
/// comparing against a hash dumped elsewhere can see which field is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DigestParseError {
    #[error("digest is empty")]
    Empty,
    #[error("digest must start with \"v1;PPH1_MD4,\"")]
    BadPrefix,
    #[error(
        "digest must have 4 comma-separated fields (algorithm, salt, iterations, key), found {0}"
    )]
    FieldCount(usize),
    #[error("digest salt must be {expected} hex characters, found {found}")]
    SaltLength { expected: usize, found: usize },
    #[error("digest salt is not hexadecimal")]
    SaltNotHex,
    #[error("digest iteration count is not a decimal number")]
    IterationsNotNumber,
    #[error("digest iteration count has leading zeros")]
    IterationsLeadingZero,
    #[error("digest iteration count must be between {min} and {max}")]
    IterationsOutOfRange { min: u32, max: u32 },
    #[error("digest key must be {expected} hex characters, found {found}")]
    KeyLength { expected: usize, found: usize },
    #[error("digest key is not hexadecimal")]
    KeyNotHex,
    #[error("digest has data after the terminating ';'")]
    TrailingData,
    #[error("digest contains whitespace or control characters")]
    Whitespace,
}

/// Errors of the hashing core. Messages never contain a password, hash or digest.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HashError {
    #[error("password is too long: {units} UTF-16 code units, the limit is {max}")]
    PasswordTooLong { units: usize, max: usize },
    #[error("password is not valid UTF-8")]
    InvalidUtf8,
    #[error("malformed digest: {0}")]
    MalformedDigest(#[from] DigestParseError),
    #[error("iteration count {0} is out of range 1..=1000000")]
    IterationsOutOfRange(u32),
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    #[error("an NT hash must be 32 hexadecimal characters")]
    MalformedNtHash,
    #[error("a salt must be 20 hexadecimal characters (10 bytes)")]
    MalformedSalt,
}
