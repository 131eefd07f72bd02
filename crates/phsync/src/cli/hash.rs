//! `phsync hash ...`: the digest core from the shell.

use clap::Subcommand;
use phsync_hash::{self as hash, NtHash, PhsDigest, DEFAULT_ITERATIONS, SALT_LEN};

use super::stdin::read_secret_line;
use super::{CliResult, Outcome};

#[derive(Subcommand)]
pub enum HashCommand {
    /// Print the upper-case NT hash of the password on stdin
    Nt,
    /// Print the PHS digest string (`v1;PPH1_MD4,...;`) of the password on stdin
    Digest {
        /// Salt as 20 hex digits (10 bytes); default: fresh from the OS CSPRNG
        #[arg(long, value_name = "HEX")]
        salt: Option<String>,
        /// PBKDF2 iteration count (1..=1000000)
        #[arg(long, value_name = "N", default_value_t = DEFAULT_ITERATIONS)]
        iterations: u32,
        /// Digest this NT hash (32 hex digits) instead of reading a password
        #[arg(long, value_name = "HEX")]
        nt_hash: Option<String>,
    },
    /// Check the password on stdin against a digest: exit 0 on match, 1 on mismatch, 2 on error
    Verify {
        /// The digest string, with or without the trailing `;`
        #[arg(long, value_name = "STR")]
        digest: String,
        /// Check this NT hash (32 hex digits) instead of reading a password
        #[arg(long, value_name = "HEX")]
        nt_hash: Option<String>,
    },
}

fn nt_from_arg_or_stdin(nt_hash: Option<&str>) -> Result<NtHash, String> {
    match nt_hash {
        Some(hex) => NtHash::from_hex(hex).map_err(|e| e.to_string()),
        None => {
            let password = read_secret_line("password")?;
            NtHash::from_password(&password).map_err(|e| e.to_string())
        }
    }
}

pub fn run(command: HashCommand) -> CliResult {
    match command {
        HashCommand::Nt => {
            let nt = nt_from_arg_or_stdin(None)?;
            println!("{}", nt.to_upper_hex().as_str());
            Ok(Outcome::Success)
        }
        HashCommand::Digest {
            salt,
            iterations,
            nt_hash,
        } => {
            let salt = match salt {
                Some(hex_salt) => {
                    let mut bytes = [0u8; SALT_LEN];
                    hex::decode_to_slice(&hex_salt, &mut bytes)
                        .map_err(|_| hash::HashError::MalformedSalt.to_string())?;
                    bytes
                }
                None => hash::random_salt().map_err(|e| e.to_string())?,
            };
            let nt = nt_from_arg_or_stdin(nt_hash.as_deref())?;
            let digest =
                PhsDigest::from_nt_hash(&nt, salt, iterations).map_err(|e| e.to_string())?;
            println!("{}", digest.encode().as_str());
            Ok(Outcome::Success)
        }
        HashCommand::Verify { digest, nt_hash } => {
            let parsed = PhsDigest::parse(&digest).map_err(|e| format!("malformed digest: {e}"))?;
            let nt = nt_from_arg_or_stdin(nt_hash.as_deref())?;
            if parsed.matches_nt_hash(&nt) {
                println!("match");
                Ok(Outcome::Success)
            } else {
                println!("mismatch");
                Ok(Outcome::Negative)
            }
        }
    }
}
