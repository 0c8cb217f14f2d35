//! Taking entries apart: bundle lines (`{"index":N,"entry":"b64","chain":"b64","payload_digest":..}`
//! exactly as the exporter writes them) and binary entry pages (`STE1`). Only the usual form is
//! accepted here; `None` means "not this form", and the Python side then parses the line or page
//! itself, with its own checks and messages.

use base64_simd::STANDARD;

use crate::run::Hash;

pub struct Line<'a> {
    pub index: u64,
    pub entry: &'a [u8],
    pub chain: &'a [u8],
    pub digest: Option<&'a [u8]>,
}

/// The fields of one bundle line in the exporter's exact form (base64 still encoded).
pub fn line(line: &[u8]) -> Option<Line<'_>> {
    let rest = line.strip_prefix(b"{\"index\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 || (digits > 1 && rest[0] == b'0') {
        return None;
    }
    let index = std::str::from_utf8(&rest[..digits]).ok()?.parse::<u64>().ok()?;
    let rest = rest[digits..].strip_prefix(b",\"entry\":\"")?;
    let (entry, rest) = quoted(rest)?;
    let rest = rest.strip_prefix(b",\"chain\":\"")?;
    let (chain, rest) = quoted(rest)?;
    let rest = rest.strip_prefix(b",\"payload_digest\":")?;
    let (digest, rest) = if let Some(rest) = rest.strip_prefix(b"null") {
        (None, rest)
    } else {
        let (value, rest) = quoted(rest.strip_prefix(b"\"")?)?;
        if !value.iter().all(|&b| (0x20..0x7f).contains(&b) && b != b'\\') {
            return None;
        }
        (Some(value), rest)
    };
    if rest != b"}" {
        return None;
    }
    Some(Line {
        index,
        entry,
        chain,
        digest,
    })
}

/// The bytes up to the next quote, and what follows that quote.
fn quoted(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = memchr::memchr(b'"', s)?;
    Some((&s[..end], &s[end + 1..]))
}

/// Strict standard base64 (canonical padding and trailing bits) into `out`; false if not.
pub fn base64_into(text: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    STANDARD.decode_append(text, out).is_ok()
}

/// Strict standard base64 appended to `out`; false if not (`out` may then hold part of it).
pub fn base64_append(text: &[u8], out: &mut Vec<u8>) -> bool {
    STANDARD.decode_append(text, out).is_ok()
}

pub fn chain32(bytes: &[u8]) -> Option<Hash> {
    bytes.try_into().ok()
}

pub const MAGIC: &[u8] = b"STE1";

pub struct Record<'a> {
    pub index: u64,
    pub entry: &'a [u8],
    pub chain: Hash,
    pub digest: Option<[u8; 71]>,
}

/// The records of a binary entries page; None when it is malformed or truncated.
pub fn page(data: &[u8]) -> Option<Vec<Record<'_>>> {
    let mut pos = data.strip_prefix(MAGIC).map(|_| MAGIC.len())?;
    let mut out = Vec::new();
    while pos < data.len() {
        let head = data.get(pos..pos + 13)?;
        let index = u64::from_be_bytes(head[..8].try_into().ok()?);
        let size = u32::from_be_bytes(head[8..12].try_into().ok()?) as usize;
        let flags = head[12];
        let body = pos + 13;
        let chain_at = body.checked_add(size)?;
        let mut stop = chain_at + 32;
        let entry = data.get(body..chain_at)?;
        let chain: Hash = data.get(chain_at..stop)?.try_into().ok()?;
        let mut digest = None;
        if flags & 1 == 1 {
            let raw = data.get(stop..stop + 32)?;
            digest = Some(digest_text(raw));
            stop += 32;
        }
        out.push(Record {
            index,
            entry,
            chain,
            digest,
        });
        pos = stop;
    }
    Some(out)
}

/// `"blake3:" + lowercase hex`, as the Python decoder spells a stored digest.
fn digest_text(raw: &[u8]) -> [u8; 71] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 71];
    out[..7].copy_from_slice(b"blake3:");
    for (i, b) in raw.iter().enumerate() {
        out[7 + 2 * i] = HEX[(b >> 4) as usize];
        out[8 + 2 * i] = HEX[(b & 15) as usize];
    }
    out
}
