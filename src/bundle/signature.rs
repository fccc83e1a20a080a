//! Offline verification of detached release signatures: minisign, and
//! cosign blob signatures made with a key (`cosign sign-blob --key`).
//!
//! Guarantees:
//! - nothing here touches the network. The only trust anchor is the public
//!   key the user gives. There is no transparency log (Rekor), no
//!   certificate authority (Fulcio), no keyless/OIDC identity and no key
//!   server, so a cosign signature is checked against the key alone and its
//!   log inclusion is not checked;
//! - the signed data is never buffered: a verifier takes the archive's bytes
//!   in chunks while the archive streams past and keeps only a hash state
//!   (BLAKE2b-512 for minisign, SHA-256 for cosign), so memory does not grow
//!   with the archive's size;
//! - keys and signature files are read and parsed before the pass starts, and
//!   at most [`MAX_SIGNATURE_INPUT`] bytes of them, so a bad argument fails in
//!   milliseconds, including when the archive is given in place of its
//!   signature;
//! - an unusable key or signature file is a [`SigError`] that names the file
//!   (or says the key was given as a string) and says what to give instead. A
//!   signature that does not verify is an outcome, not an error;
//! - minisign: only prehashed signatures (`ED`, what `minisign -S` writes by
//!   default) can be checked while streaming. Legacy `Ed` signatures
//!   (`minisign -S -l`) sign the raw message, and checking one would mean
//!   holding the whole archive in memory, so they are refused with
//!   [`SigError::LegacyMinisign`] before the pass starts;
//! - minisign signatures name the key that made them, so a signature by
//!   another key is reported with both key ids ([`MinisignOutcome::OtherKey`]).
//!   ECDSA signatures carry no key id, so for cosign a wrong key and a
//!   tampered archive give the same [`CosignOutcome::Invalid`];
//! - a minisign trusted comment is authenticated only when the outcome is
//!   [`MinisignOutcome::Valid`]. Otherwise it is returned as found in the file.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};

/// Largest key or signature file read, in bytes. Real ones are a few hundred
/// bytes. The cap means a swapped argument (the archive given as its
/// signature) is rejected at once rather than loaded into memory.
pub const MAX_SIGNATURE_INPUT: u64 = 64 * 1024;

/// Which input a [`SigError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigInput {
    MinisignKey,
    MinisignSignature,
    CosignKey,
    CosignSignature,
}

impl SigInput {
    /// What to give instead, appended to every error about this input.
    pub fn help(self) -> &'static str {
        match self {
            SigInput::MinisignKey => {
                "give the minisign .pub file (an `untrusted comment:` line, then a key starting with RW) or the key itself as a string"
            }
            SigInput::MinisignSignature => {
                "give the .minisig file written by `minisign -S` for this archive"
            }
            SigInput::CosignKey => {
                "give the PEM public key (`-----BEGIN PUBLIC KEY-----`, EC P-256), such as the cosign.pub written by `cosign generate-key-pair`"
            }
            SigInput::CosignSignature => {
                "give the base64 signature written by `cosign sign-blob --key KEY --output-signature FILE`"
            }
        }
    }
}

impl fmt::Display for SigInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SigInput::MinisignKey => "minisign public key",
            SigInput::MinisignSignature => "minisign signature",
            SigInput::CosignKey => "cosign public key",
            SigInput::CosignSignature => "cosign signature",
        })
    }
}

/// A key or signature that cannot be used. Every message is one line that
/// names the input and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SigError {
    #[error("cannot read {input} {}: {err}; {}", path.display(), input.help())]
    Unreadable {
        input: SigInput,
        path: PathBuf,
        err: std::io::Error,
    },
    /// `origin` is the path, or `given as a string`.
    #[error("{input} {origin} is malformed: {reason}; {}", input.help())]
    Malformed {
        input: SigInput,
        origin: String,
        reason: String,
    },
    #[error(
        "minisign signature {origin} uses the legacy non-prehashed format (`minisign -S -l`), \
         which cannot be checked while the archive streams past; ask for a signature made with \
         `minisign -S` (prehashed, the default since minisign 0.8)"
    )]
    LegacyMinisign { origin: String },
}

fn malformed(input: SigInput, origin: &str, reason: impl Into<String>) -> SigError {
    SigError::Malformed {
        input,
        origin: origin.to_string(),
        reason: reason.into(),
    }
}

/// Reads a key or signature file, refusing anything over
/// [`MAX_SIGNATURE_INPUT`] bytes.
fn read_small(path: &Path, input: SigInput) -> Result<Vec<u8>, SigError> {
    let unreadable = |err| SigError::Unreadable {
        input,
        path: path.to_path_buf(),
        err,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(MAX_SIGNATURE_INPUT + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_SIGNATURE_INPUT {
        return Err(malformed(
            input,
            &path.display().to_string(),
            format!(
                "it is larger than {} KiB, far too big for a key or signature (was the archive given in its place?)",
                MAX_SIGNATURE_INPUT / 1024
            ),
        ));
    }
    Ok(bytes)
}

// ---------------------------------------------------------------- minisign

/// Key ids as minisign prints them: the 8 id bytes read as a little-endian
/// integer, in upper-case hex without leading zeros (minisign formats with
/// `%llX`), so an id here matches `minisign public key EE5ACE1957329CCD`
/// character for character, also when the id starts with a zero nibble.
fn minisign_key_id(bytes: &[u8]) -> String {
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[..8]);
    format!("{:X}", u64::from_le_bytes(id))
}

/// A minisign public key, with its key id.
#[derive(Debug, Clone)]
pub struct MinisignKey {
    key: minisign_verify::PublicKey,
    key_id: String,
    origin: String,
}

impl MinisignKey {
    /// The key id as minisign prints it (16 upper-case hex digits).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Where the key came from: its path, or `given as a string`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Parses the base64 key line (`RW...`).
    fn from_base64(line: &str, origin: &str) -> Result<Self, SigError> {
        let bad = |reason: String| malformed(SigInput::MinisignKey, origin, reason);
        let line = line.trim();
        if line.starts_with("-----BEGIN") {
            return Err(bad(
                "it is a PEM key (cosign or openssl), not a minisign key".into(),
            ));
        }
        let bin = STANDARD
            .decode(line)
            .map_err(|e| bad(format!("the key is not base64 ({e})")))?;
        if bin.len() == 74 {
            return Err(bad(
                "it holds a minisign signature, not a public key (were the key and the signature swapped?)".into(),
            ));
        }
        // minisign public keys are always tagged `Ed`, even when they make
        // prehashed (`ED`) signatures.
        if bin.len() != 42 || &bin[..2] != b"Ed" {
            return Err(bad(format!(
                "expected 42 bytes starting with \"Ed\" after base64 decoding, found {} bytes",
                bin.len()
            )));
        }
        let key = minisign_verify::PublicKey::from_base64(line).map_err(|e| bad(format!("{e}")))?;
        Ok(MinisignKey {
            key,
            key_id: minisign_key_id(&bin[2..10]),
            origin: origin.to_string(),
        })
    }

    /// Parses the content of a `.pub` file: optional `untrusted comment:`
    /// lines, then the key line.
    fn from_pub_file(bytes: &[u8], origin: &str) -> Result<Self, SigError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| malformed(SigInput::MinisignKey, origin, "it is not text"))?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or_else(|| malformed(SigInput::MinisignKey, origin, "it holds no key line"))?;
        Self::from_base64(line, origin)
    }
}

/// Loads a minisign public key given either as the key itself (`RW...`) or
/// as the path of a `.pub` file.
///
/// A file by that name wins. The argument is read as a key string only when
/// no such file exists and it looks like one (starts with `RW`), so a
/// mistyped path is reported as a missing file.
pub fn load_minisign_key(text_or_path: &str) -> Result<MinisignKey, SigError> {
    let path = Path::new(text_or_path);
    match read_small(path, SigInput::MinisignKey) {
        Ok(bytes) => MinisignKey::from_pub_file(&bytes, &path.display().to_string()),
        Err(SigError::Unreadable { err, .. })
            if err.kind() == std::io::ErrorKind::NotFound
                && text_or_path.trim().starts_with("RW") =>
        {
            MinisignKey::from_base64(text_or_path, "given as a string")
        }
        Err(e) => Err(e),
    }
}

/// A parsed `.minisig` file.
#[derive(Clone)]
pub struct MinisignSignature {
    sig: minisign_verify::Signature,
    key_id: String,
    prehashed: bool,
    origin: String,
}

impl fmt::Debug for MinisignSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MinisignSignature")
            .field("key_id", &self.key_id)
            .field("prehashed", &self.prehashed)
            .field("trusted_comment", &self.sig.trusted_comment())
            .field("origin", &self.origin)
            .finish()
    }
}

impl MinisignSignature {
    /// Reads and parses a `.minisig` file.
    pub fn load(path: &Path) -> Result<Self, SigError> {
        let bytes = read_small(path, SigInput::MinisignSignature)?;
        Self::parse(&bytes, &path.display().to_string())
    }

    /// Parses the content of a `.minisig` file. `origin` names it in errors.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Self, SigError> {
        let bad = |reason: String| malformed(SigInput::MinisignSignature, origin, reason);
        let text = std::str::from_utf8(bytes).map_err(|_| bad("it is not text".into()))?;
        let mut lines = text.lines();
        if !lines
            .next()
            .is_some_and(|l| l.starts_with("untrusted comment:"))
        {
            return Err(bad("its first line is not `untrusted comment: ...`".into()));
        }
        let sig_line = lines
            .next()
            .ok_or_else(|| bad("it ends after the first line".into()))?;
        let bin = STANDARD
            .decode(sig_line.trim())
            .map_err(|e| bad(format!("its second line is not base64 ({e})")))?;
        if bin.len() != 74 {
            return Err(bad(format!(
                "its second line holds {} bytes, expected 74",
                bin.len()
            )));
        }
        let prehashed = match &bin[..2] {
            b"ED" => true,
            b"Ed" => false,
            other => {
                return Err(bad(format!(
                    "unknown signature algorithm {:?}",
                    String::from_utf8_lossy(other)
                )))
            }
        };
        if !lines
            .next()
            .is_some_and(|l| l.starts_with("trusted comment: "))
        {
            return Err(bad("its third line is not `trusted comment: ...`".into()));
        }
        // The crate repeats the structural checks above; ours exist to say
        // which line is wrong, the crate's parse is the one verification uses.
        let sig = minisign_verify::Signature::decode(text).map_err(|e| bad(format!("{e}")))?;
        Ok(MinisignSignature {
            sig,
            key_id: minisign_key_id(&bin[2..10]),
            prehashed,
            origin: origin.to_string(),
        })
    }

    /// The id of the key that made the signature, as minisign prints it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// `false` for legacy signatures (`minisign -S -l`).
    pub fn is_prehashed(&self) -> bool {
        self.prehashed
    }

    /// The trusted comment as found in the file, not yet authenticated.
    pub fn trusted_comment(&self) -> &str {
        self.sig.trusted_comment()
    }

    /// The file's path, or the origin given to [`MinisignSignature::parse`].
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// How a minisign signature relates to the data and the trusted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MinisignOutcome {
    /// The data and the trusted comment are signed by the trusted key.
    Valid,
    /// Made by the trusted key's id, but the data or the trusted comment does
    /// not match. The crate checks both signatures (data, then comment) and
    /// does not say which one failed.
    Invalid,
    /// Made by another key. Nothing was checked.
    OtherKey { signed_by: String, expected: String },
}

/// The result of a minisign verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinisignVerdict {
    /// The key id recorded in the signature, as minisign prints it.
    pub key_id: String,
    /// Authenticated only when `outcome` is [`MinisignOutcome::Valid`].
    pub trusted_comment: String,
    pub outcome: MinisignOutcome,
}

impl MinisignVerdict {
    pub fn valid(&self) -> bool {
        self.outcome == MinisignOutcome::Valid
    }

    /// Why the signature was not accepted, in one line; `None` when valid.
    pub fn reason(&self) -> Option<String> {
        match &self.outcome {
            MinisignOutcome::Valid => None,
            MinisignOutcome::Invalid => Some(
                "the minisign signature does not match the data or its trusted comment (tampered or truncated archive, or the signature of another file)".into(),
            ),
            MinisignOutcome::OtherKey { signed_by, expected } => {
                Some(format!("signed by key {signed_by}, expected key {expected}"))
            }
        }
    }
}

/// Checks a minisign signature against data fed in chunks.
///
/// It borrows the key and the signature because the crate's stream verifier
/// does. Parse both first, then feed the archive's chunks with `update`.
pub struct MinisignVerifier<'a> {
    key: &'a MinisignKey,
    sig: &'a MinisignSignature,
    /// `None` when the signature is by another key: chunks are ignored and
    /// the verdict is already known.
    stream: Option<minisign_verify::StreamVerifier<'a>>,
}

impl fmt::Debug for MinisignVerifier<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MinisignVerifier")
            .field("key_id", &self.key.key_id)
            .field("signed_by", &self.sig.key_id)
            .field("streaming", &self.stream.is_some())
            .finish()
    }
}

impl<'a> MinisignVerifier<'a> {
    /// Prepares the check. It fails only for a legacy signature made by the
    /// trusted key. A signature by another key is accepted here and reported
    /// by [`MinisignVerifier::finish`].
    pub fn new(key: &'a MinisignKey, sig: &'a MinisignSignature) -> Result<Self, SigError> {
        // The crate decides (key id first, then format); our parsed ids are
        // only used to report.
        let stream = match key.key.verify_stream(&sig.sig) {
            Ok(stream) => Some(stream),
            Err(minisign_verify::Error::UnexpectedKeyId) => None,
            Err(minisign_verify::Error::UnsupportedLegacyMode) => {
                return Err(SigError::LegacyMinisign {
                    origin: sig.origin.clone(),
                })
            }
            Err(e) => {
                return Err(malformed(
                    SigInput::MinisignSignature,
                    &sig.origin,
                    format!("{e}"),
                ))
            }
        };
        Ok(MinisignVerifier { key, sig, stream })
    }

    /// Feeds the next bytes of the signed data.
    pub fn update(&mut self, chunk: &[u8]) {
        if let Some(stream) = &mut self.stream {
            stream.update(chunk);
        }
    }

    /// Ends the data and gives the verdict.
    pub fn finish(self) -> MinisignVerdict {
        let outcome = match self.stream {
            Some(mut stream) => match stream.finalize() {
                Ok(()) => MinisignOutcome::Valid,
                Err(_) => MinisignOutcome::Invalid,
            },
            None => MinisignOutcome::OtherKey {
                signed_by: self.sig.key_id.clone(),
                expected: self.key.key_id.clone(),
            },
        };
        MinisignVerdict {
            key_id: self.sig.key_id.clone(),
            trusted_comment: self.sig.trusted_comment().to_string(),
            outcome,
        }
    }
}

// ------------------------------------------------------------------ cosign

/// An EC P-256 public key in PEM form, as `cosign generate-key-pair` writes it.
#[derive(Debug, Clone)]
pub struct CosignKey {
    key: p256::ecdsa::VerifyingKey,
    origin: String,
}

impl CosignKey {
    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo). `origin` names it in
    /// errors.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Self, SigError> {
        let bad = |reason: String| malformed(SigInput::CosignKey, origin, reason);
        let text = std::str::from_utf8(bytes).map_err(|_| {
            bad("it is not text (a DER key? convert it with `openssl pkey -pubin -inform DER -in KEY -out KEY.pem`)".into())
        })?;
        let text = text.trim();
        if text.contains("PRIVATE KEY-----") {
            return Err(bad(
                "it is a private key; give the public half (cosign.pub)".into(),
            ));
        }
        if !text.starts_with("-----BEGIN PUBLIC KEY-----") {
            return Err(bad(
                "it does not start with `-----BEGIN PUBLIC KEY-----`".into()
            ));
        }
        let key = p256::ecdsa::VerifyingKey::from_public_key_pem(text).map_err(|e| match e {
            p256::pkcs8::spki::Error::OidUnknown { oid } => bad(format!(
                "it is not an EC P-256 key (algorithm or curve OID {oid})"
            )),
            e => bad(format!("{e}")),
        })?;
        Ok(CosignKey {
            key,
            origin: origin.to_string(),
        })
    }

    /// The file's path, or the origin given to [`CosignKey::parse`].
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// Loads a PEM EC P-256 public key (cosign.pub).
pub fn load_cosign_key(path: &Path) -> Result<CosignKey, SigError> {
    let bytes = read_small(path, SigInput::CosignKey)?;
    CosignKey::parse(&bytes, &path.display().to_string())
}

/// A cosign blob signature: base64 of an ASN.1 DER ECDSA signature.
#[derive(Debug, Clone)]
pub struct CosignSignature {
    sig: p256::ecdsa::Signature,
    origin: String,
}

impl CosignSignature {
    /// Reads and parses a cosign `.sig` file.
    pub fn load(path: &Path) -> Result<Self, SigError> {
        let bytes = read_small(path, SigInput::CosignSignature)?;
        Self::parse(&bytes, &path.display().to_string())
    }

    /// Parses the content of a cosign `.sig` file. `origin` names it in
    /// errors.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Self, SigError> {
        let bad = |reason: String| malformed(SigInput::CosignSignature, origin, reason);
        let text = std::str::from_utf8(bytes).map_err(|_| {
            bad("it is not base64 text (raw DER? encode it with `base64 -w0`)".into())
        })?;
        if text.trim_start().starts_with('{') {
            return Err(bad(
                "it is JSON (a cosign bundle?), which needs the transparency log; this offline check takes the bare signature".into(),
            ));
        }
        // `base64` without -w0 wraps lines, so whitespace anywhere is dropped.
        let compact: String = text.split_ascii_whitespace().collect();
        if compact.is_empty() {
            return Err(bad("it is empty".into()));
        }
        let der = STANDARD
            .decode(&compact)
            .map_err(|e| bad(format!("it is not base64 ({e})")))?;
        let sig = p256::ecdsa::Signature::from_der(&der).map_err(|_| {
            bad(format!(
                "its {} decoded bytes are not an ASN.1 DER ECDSA P-256 signature",
                der.len()
            ))
        })?;
        Ok(CosignSignature {
            sig,
            origin: origin.to_string(),
        })
    }

    /// The file's path, or the origin given to [`CosignSignature::parse`].
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// How a cosign signature relates to the data and the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CosignOutcome {
    Valid,
    /// The data was changed, or the signature was made by another key (ECDSA
    /// cannot tell which).
    Invalid,
}

impl CosignOutcome {
    /// Why the signature was not accepted, in one line; `None` when valid.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            CosignOutcome::Valid => None,
            CosignOutcome::Invalid => Some(
                "the cosign signature does not match this key and the archive's SHA-256 (tampered archive, another key, or the signature of another file)",
            ),
        }
    }
}

/// Checks a cosign blob signature against data fed in chunks. It hashes with
/// SHA-256 as the data arrives and verifies the prehash at the end, which is
/// what `cosign verify-blob --key` checks before it looks at the log.
#[derive(Debug, Clone)]
pub struct CosignVerifier {
    key: p256::ecdsa::VerifyingKey,
    sig: p256::ecdsa::Signature,
    hasher: Sha256,
}

impl CosignVerifier {
    pub fn new(key: &CosignKey, sig: &CosignSignature) -> Self {
        CosignVerifier {
            key: key.key,
            sig: sig.sig,
            hasher: Sha256::new(),
        }
    }

    /// Feeds the next bytes of the signed data.
    pub fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
    }

    /// Ends the data and gives the outcome.
    pub fn finish(self) -> CosignOutcome {
        let digest = self.hasher.finalize();
        match self.key.verify_prehash(&digest, &self.sig) {
            Ok(()) => CosignOutcome::Valid,
            Err(_) => CosignOutcome::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    //! Signatures made by the real tools: `minisign` (installed with apt-get
    //! when missing) and `openssl` for the cosign format.

    use super::*;
    use std::process::{Command, Stdio};
    use std::sync::Mutex;
    use tempfile::TempDir;

    /// Serialises installs: tests run in parallel.
    static INSTALL: Mutex<()> = Mutex::new(());

    fn on_path(program: &str) -> bool {
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join(program).is_file())
        })
    }

    /// Makes sure `program` exists, installing `package` with apt-get if
    /// needed. It fails the test rather than skipping it.
    fn require_tool(program: &str, package: &str) {
        let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
        if on_path(program) {
            return;
        }
        let _ = Command::new("apt-get")
            .args(["install", "-y", package])
            .stdin(Stdio::null())
            .output();
        assert!(
            on_path(program),
            "`{program}` is required by the signature tests and could not be installed; run `apt-get install -y {package}`"
        );
    }

    fn run(dir: &Path, program: &str, args: &[&str]) {
        let out = Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// About 300 KiB of deterministic, incompressible-looking bytes.
    fn message() -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..300_007)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// Feeds `data` in uneven chunks, from 1 byte to 64 KiB, and returns how
    /// many `update` calls were made.
    fn feed(data: &[u8], mut update: impl FnMut(&[u8])) -> usize {
        const SIZES: [usize; 8] = [1, 2, 7, 13, 4096, 65_536, 3, 1000];
        let (mut at, mut calls) = (0, 0);
        while at < data.len() {
            let n = SIZES[calls % SIZES.len()].min(data.len() - at);
            update(&data[at..at + n]);
            at += n;
            calls += 1;
        }
        calls
    }

    fn minisign_verdict(
        key: &MinisignKey,
        sig: &MinisignSignature,
        data: &[u8],
    ) -> MinisignVerdict {
        let mut v = MinisignVerifier::new(key, sig).expect("verifier");
        let calls = feed(data, |c| v.update(c));
        assert!(calls > 20, "data should arrive in many chunks");
        v.finish()
    }

    fn cosign_outcome(key: &CosignKey, sig: &CosignSignature, data: &[u8]) -> CosignOutcome {
        let mut v = CosignVerifier::new(key, sig);
        let calls = feed(data, |c| v.update(c));
        assert!(calls > 20, "data should arrive in many chunks");
        v.finish()
    }

    /// A temp dir holding `release.tar` (the message) and minisign key pairs.
    struct Minisign {
        dir: TempDir,
        data: Vec<u8>,
    }

    impl Minisign {
        fn new() -> Self {
            require_tool("minisign", "minisign");
            let dir = tempfile::tempdir().unwrap();
            let data = message();
            std::fs::write(dir.path().join("release.tar"), &data).unwrap();
            Minisign { dir, data }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        /// Generates `NAME.pub` and `NAME.key` without a password and returns
        /// the key id minisign wrote in the .pub comment.
        fn keypair(&self, name: &str) -> String {
            let (p, s) = (format!("{name}.pub"), format!("{name}.key"));
            run(
                self.dir.path(),
                "minisign",
                &["-G", "-W", "-p", &p, "-s", &s],
            );
            let text = std::fs::read_to_string(self.path(&p)).unwrap();
            let comment = text.lines().next().unwrap();
            comment
                .strip_prefix("untrusted comment: minisign public key ")
                .unwrap_or_else(|| panic!("unexpected .pub comment {comment:?}"))
                .to_string()
        }

        /// Signs release.tar with `NAME.key` into `sig`, legacy when asked.
        fn sign(&self, name: &str, sig: &str, legacy: bool) -> PathBuf {
            let s = format!("{name}.key");
            let mut args = vec!["-S", "-s", &s, "-m", "release.tar", "-x", sig];
            args.extend(["-t", "trusted comment"]);
            if legacy {
                args.push("-l");
            }
            run(self.dir.path(), "minisign", &args);
            self.path(sig)
        }
    }

    #[test]
    fn minisign_valid_signature_streams_in_small_chunks() {
        let m = Minisign::new();
        let id = m.keypair("vendor");
        let sig_path = m.sign("vendor", "release.tar.minisig", false);
        let key = load_minisign_key(m.path("vendor.pub").to_str().unwrap()).unwrap();
        let sig = MinisignSignature::load(&sig_path).unwrap();
        assert_eq!(key.key_id(), id, "key id as minisign prints it");
        assert!(sig.is_prehashed(), "minisign -S signs prehashed by default");
        let verdict = minisign_verdict(&key, &sig, &m.data);
        assert_eq!(
            verdict,
            MinisignVerdict {
                key_id: id,
                trusted_comment: "trusted comment".into(),
                outcome: MinisignOutcome::Valid,
            }
        );
        assert!(verdict.valid());
        assert_eq!(verdict.reason(), None);
    }

    #[test]
    fn minisign_tampered_message_is_invalid() {
        let m = Minisign::new();
        m.keypair("vendor");
        let sig_path = m.sign("vendor", "release.tar.minisig", false);
        let key = load_minisign_key(m.path("vendor.pub").to_str().unwrap()).unwrap();
        let sig = MinisignSignature::load(&sig_path).unwrap();
        let mut tampered = m.data.clone();
        tampered[150_000] ^= 0x01;
        let verdict = minisign_verdict(&key, &sig, &tampered);
        assert_eq!(verdict.outcome, MinisignOutcome::Invalid);
        assert!(verdict.reason().unwrap().contains("does not match"));
        let truncated = &m.data[..m.data.len() - 1];
        assert_eq!(
            minisign_verdict(&key, &sig, truncated).outcome,
            MinisignOutcome::Invalid
        );
    }

    #[test]
    fn minisign_tampered_trusted_comment_is_invalid() {
        let m = Minisign::new();
        m.keypair("vendor");
        let sig_path = m.sign("vendor", "release.tar.minisig", false);
        let text = std::fs::read_to_string(&sig_path).unwrap();
        let forged = text.replace(
            "trusted comment: trusted comment",
            "trusted comment: version 9.9",
        );
        assert_ne!(text, forged);
        let key = load_minisign_key(m.path("vendor.pub").to_str().unwrap()).unwrap();
        let sig = MinisignSignature::parse(forged.as_bytes(), "forged.minisig").unwrap();
        let verdict = minisign_verdict(&key, &sig, &m.data);
        assert_eq!(verdict.outcome, MinisignOutcome::Invalid);
        assert_eq!(verdict.trusted_comment, "version 9.9", "returned as found");
    }

    #[test]
    fn minisign_signature_by_another_key_names_both_key_ids() {
        let m = Minisign::new();
        let vendor = m.keypair("vendor");
        let attacker = m.keypair("attacker");
        assert_ne!(vendor, attacker);
        let sig_path = m.sign("attacker", "release.tar.minisig", false);
        let key = load_minisign_key(m.path("vendor.pub").to_str().unwrap()).unwrap();
        let sig = MinisignSignature::load(&sig_path).unwrap();
        assert_eq!(sig.key_id(), attacker);
        let verdict = minisign_verdict(&key, &sig, &m.data);
        assert_eq!(
            verdict.outcome,
            MinisignOutcome::OtherKey {
                signed_by: attacker.clone(),
                expected: vendor.clone(),
            }
        );
        assert_eq!(verdict.key_id, attacker);
        assert_eq!(
            verdict.reason().unwrap(),
            format!("signed by key {attacker}, expected key {vendor}")
        );
    }

    #[test]
    fn minisign_legacy_signature_is_refused_before_streaming() {
        let m = Minisign::new();
        m.keypair("vendor");
        let sig_path = m.sign("vendor", "release.tar.legacy.minisig", true);
        // The file is genuine: minisign itself accepts it.
        run(
            m.dir.path(),
            "minisign",
            &[
                "-V",
                "-p",
                "vendor.pub",
                "-m",
                "release.tar",
                "-x",
                "release.tar.legacy.minisig",
            ],
        );
        let key = load_minisign_key(m.path("vendor.pub").to_str().unwrap()).unwrap();
        let sig = MinisignSignature::load(&sig_path).unwrap();
        assert!(!sig.is_prehashed());
        let err = MinisignVerifier::new(&key, &sig).unwrap_err();
        assert!(matches!(err, SigError::LegacyMinisign { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("legacy") && msg.contains("minisign -S"),
            "{msg}"
        );
        assert!(msg.contains(&sig_path.display().to_string()), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn minisign_garbage_signature_file_is_malformed_and_named() {
        let m = Minisign::new();
        let cases: [(&str, &[u8]); 5] = [
            ("binary.minisig", &[0xff, 0xfe, 0x00, 0x12]),
            ("empty.minisig", b""),
            ("prose.minisig", b"this is not a signature\n"),
            (
                "badb64.minisig",
                b"untrusted comment: x\n!!!notbase64!!!\ntrusted comment: y\nAAAA\n",
            ),
            ("short.minisig", b"untrusted comment: x\nRUQAAAAA\n"),
        ];
        for (name, bytes) in cases {
            let path = m.path(name);
            std::fs::write(&path, bytes).unwrap();
            let err = MinisignSignature::load(&path).unwrap_err();
            assert!(
                matches!(
                    err,
                    SigError::Malformed {
                        input: SigInput::MinisignSignature,
                        ..
                    }
                ),
                "{name}: {err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains("minisign -S"), "says what to give: {msg}");
            assert!(!msg.contains('\n'), "one line: {msg}");
        }
        let missing = MinisignSignature::load(&m.path("absent.minisig")).unwrap_err();
        assert!(
            matches!(missing, SigError::Unreadable { .. }),
            "{missing:?}"
        );
        // The archive given in place of its signature is refused unread.
        let err = MinisignSignature::load(&m.path("release.tar")).unwrap_err();
        assert!(err.to_string().contains("too big"), "{err}");
    }

    #[test]
    fn minisign_key_given_as_a_string() {
        let m = Minisign::new();
        let id = m.keypair("vendor");
        let sig_path = m.sign("vendor", "release.tar.minisig", false);
        let text = std::fs::read_to_string(m.path("vendor.pub")).unwrap();
        let b64 = text.lines().nth(1).unwrap();
        assert!(b64.starts_with("RW"));
        let key = load_minisign_key(b64).unwrap();
        assert_eq!(key.key_id(), id);
        assert_eq!(key.origin(), "given as a string");
        let sig = MinisignSignature::load(&sig_path).unwrap();
        assert!(minisign_verdict(&key, &sig, &m.data).valid());

        let mut broken = b64.to_string();
        broken.truncate(40);
        let err = load_minisign_key(&broken).unwrap_err();
        assert!(err.to_string().contains("given as a string"), "{err}");
    }

    #[test]
    fn minisign_key_errors_name_the_input() {
        let m = Minisign::new();
        m.keypair("vendor");
        let sig_path = m.sign("vendor", "release.tar.minisig", false);
        let missing = m.path("nope.pub");
        let err = load_minisign_key(missing.to_str().unwrap()).unwrap_err();
        assert!(matches!(err, SigError::Unreadable { .. }), "{err:?}");
        assert!(err.to_string().contains(&missing.display().to_string()));
        // Key and signature swapped.
        let err = load_minisign_key(sig_path.to_str().unwrap()).unwrap_err();
        assert!(err.to_string().contains("swapped"), "{err}");
    }

    /// A temp dir holding `release.tar`, an openssl P-256 key pair and its
    /// cosign-format signature (base64 of DER ECDSA over SHA-256).
    struct Cosign {
        dir: TempDir,
        data: Vec<u8>,
    }

    impl Cosign {
        fn new() -> Self {
            require_tool("openssl", "openssl");
            require_tool("base64", "coreutils");
            let dir = tempfile::tempdir().unwrap();
            let data = message();
            std::fs::write(dir.path().join("release.tar"), &data).unwrap();
            Cosign { dir, data }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        /// Writes `NAME.pem` (private) and `NAME.pub` (public), on `curve`.
        fn keypair(&self, name: &str, curve: &str) {
            let (k, p) = (format!("{name}.pem"), format!("{name}.pub"));
            let d = self.dir.path();
            run(
                d,
                "openssl",
                &["ecparam", "-name", curve, "-genkey", "-noout", "-out", &k],
            );
            run(d, "openssl", &["ec", "-in", &k, "-pubout", "-out", &p]);
        }

        /// Signs release.tar with `NAME.pem` into `release.tar.sig`.
        fn sign(&self, name: &str) -> PathBuf {
            let k = format!("{name}.pem");
            let d = self.dir.path();
            run(
                d,
                "openssl",
                &[
                    "dgst",
                    "-sha256",
                    "-sign",
                    &k,
                    "-out",
                    "sig.der",
                    "release.tar",
                ],
            );
            run(d, "sh", &["-c", "base64 -w0 sig.der > release.tar.sig"]);
            self.path("release.tar.sig")
        }
    }

    #[test]
    fn cosign_valid_signature_streams_in_small_chunks() {
        let c = Cosign::new();
        c.keypair("cosign", "prime256v1");
        let sig_path = c.sign("cosign");
        let key = load_cosign_key(&c.path("cosign.pub")).unwrap();
        let sig = CosignSignature::load(&sig_path).unwrap();
        let outcome = cosign_outcome(&key, &sig, &c.data);
        assert_eq!(outcome, CosignOutcome::Valid);
        assert_eq!(outcome.reason(), None);
    }

    #[test]
    fn cosign_tampered_blob_is_invalid() {
        let c = Cosign::new();
        c.keypair("cosign", "prime256v1");
        let sig_path = c.sign("cosign");
        let key = load_cosign_key(&c.path("cosign.pub")).unwrap();
        let sig = CosignSignature::load(&sig_path).unwrap();
        let mut tampered = c.data.clone();
        tampered[7] ^= 0x80;
        let outcome = cosign_outcome(&key, &sig, &tampered);
        assert_eq!(outcome, CosignOutcome::Invalid);
        assert!(outcome.reason().unwrap().contains("SHA-256"));
    }

    #[test]
    fn cosign_signature_from_another_key_is_invalid() {
        let c = Cosign::new();
        c.keypair("cosign", "prime256v1");
        c.keypair("attacker", "prime256v1");
        let sig_path = c.sign("attacker");
        let key = load_cosign_key(&c.path("cosign.pub")).unwrap();
        let sig = CosignSignature::load(&sig_path).unwrap();
        assert_eq!(cosign_outcome(&key, &sig, &c.data), CosignOutcome::Invalid);
        let attacker = load_cosign_key(&c.path("attacker.pub")).unwrap();
        assert_eq!(
            cosign_outcome(&attacker, &sig, &c.data),
            CosignOutcome::Valid
        );
    }

    #[test]
    fn cosign_malformed_signature_files_are_rejected_with_the_path() {
        let c = Cosign::new();
        c.keypair("cosign", "prime256v1");
        c.sign("cosign");
        let cases: [(&str, &[u8]); 5] = [
            ("notb64.sig", b"MEUCIQ**not base64**==\n"),
            ("empty.sig", b""),
            ("short.sig", b"AAAA"),
            ("bundle.sig", b"{\"base64Signature\":\"MEUC\"}"),
            ("raw.sig", &[0x30, 0x45, 0x02, 0x21, 0x00, 0xff, 0x80]),
        ];
        for (name, bytes) in cases {
            let path = c.path(name);
            std::fs::write(&path, bytes).unwrap();
            let err = CosignSignature::load(&path).unwrap_err();
            assert!(
                matches!(
                    err,
                    SigError::Malformed {
                        input: SigInput::CosignSignature,
                        ..
                    }
                ),
                "{name}: {err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains("cosign sign-blob"), "says what to give: {msg}");
            assert!(!msg.contains('\n'), "one line: {msg}");
        }
        // The real DER file, not base64-encoded.
        let err = CosignSignature::load(&c.path("sig.der")).unwrap_err();
        assert!(err.to_string().contains("base64"), "{err}");
        // Wrapped base64 (`base64` without -w0) is accepted.
        run(
            c.dir.path(),
            "sh",
            &["-c", "base64 -w 16 sig.der > wrapped.sig"],
        );
        let key = load_cosign_key(&c.path("cosign.pub")).unwrap();
        let sig = CosignSignature::load(&c.path("wrapped.sig")).unwrap();
        assert_eq!(cosign_outcome(&key, &sig, &c.data), CosignOutcome::Valid);
    }

    #[test]
    fn cosign_unusable_keys_are_rejected_with_the_path() {
        let c = Cosign::new();
        c.keypair("cosign", "prime256v1");
        c.keypair("p384", "secp384r1");
        let err = load_cosign_key(&c.path("cosign.pem")).unwrap_err();
        assert!(err.to_string().contains("private key"), "{err}");
        let err = load_cosign_key(&c.path("p384.pub")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("p384.pub")
                && msg.contains("is not an EC P-256 key (algorithm or curve OID 1.3.132.0.34)"),
            "{msg}"
        );
        let missing = c.path("absent.pub");
        let err = load_cosign_key(&missing).unwrap_err();
        assert!(matches!(
            err,
            SigError::Unreadable {
                input: SigInput::CosignKey,
                ..
            }
        ));
        assert!(err.to_string().contains(&missing.display().to_string()));
        let err = load_cosign_key(&c.path("release.tar")).unwrap_err();
        assert!(err.to_string().contains("too big"), "{err}");
    }

    #[test]
    fn verifiers_can_move_to_the_hashing_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<MinisignVerifier<'static>>();
        assert_send::<CosignVerifier>();
    }
}
