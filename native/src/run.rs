//! The run checks of one chunk: indices, leaf hashes, the BLAKE3 chain, the RFC 6962 tree against
//! pending checkpoints, and the flat-entry payload digest check. Mirrors `RunVerifier.feed` and
//! `LogAudit._check_payload` of the Python package, which stays the reference: anything this code
//! does not accept is handed back whole (a "punt") so that Python raises its own error.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

const TYPE: &[u8] = b"\"type\":\"";
const DIGEST: &[u8] = b"\"payload_digest\":\"";

/// Where the run stands: the compact range (one hash per set bit of `size`, by level), the chain
/// value of the last entry, and how many pending checkpoints were matched.
#[derive(Clone)]
pub struct Run {
    pub by_level: Vec<Option<Hash>>,
    pub size: u64,
    pub prev: Hash,
    pub consumed: usize,
    pub good: u64,
    pub matched: u64,
}

impl Run {
    /// Set the compact range to `size` leaves with `hashes` (left to right, one per set bit).
    pub fn reset(&mut self, size: u64, hashes: &[Hash]) -> Result<(), String> {
        if hashes.len() != size.count_ones() as usize {
            return Err(format!(
                "a compact range of size {size} needs {} hashes",
                size.count_ones()
            ));
        }
        let levels = (64 - size.leading_zeros()) as usize;
        self.by_level = vec![None; levels];
        let mut it = hashes.iter();
        for level in (0..levels).rev() {
            if size >> level & 1 == 1 {
                self.by_level[level] = it.next().copied();
            }
        }
        self.size = size;
        Ok(())
    }

    fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut level = 0usize;
        let mut s = self.size;
        while s & 1 == 1 {
            let left = self.by_level[level].take().expect("a set bit has its hash");
            h = node(&left, &h);
            level += 1;
            s >>= 1;
        }
        if level == self.by_level.len() {
            self.by_level.push(None);
        }
        self.by_level[level] = Some(h);
        self.size += 1;
    }

    pub fn root(&self) -> Hash {
        let mut acc: Option<Hash> = None;
        for h in self.by_level.iter().flatten() {
            acc = Some(match acc {
                None => *h,
                Some(a) => node(h, &a),
            });
        }
        acc.unwrap_or_else(|| Sha256::digest(b"").into())
    }

    /// Compare the root with every pending checkpoint of the current size; false on a mismatch.
    fn check_due(&mut self, pending: &[(u64, Hash)]) -> bool {
        while self.consumed < pending.len() && pending[self.consumed].0 == self.size {
            if pending[self.consumed].1 != self.root() {
                return false;
            }
            self.good = self.size;
            self.matched += 1;
            self.consumed += 1;
        }
        true
    }

    /// The hashes of the compact range, left to right (largest subtree first).
    pub fn hashes(&self) -> Vec<Hash> {
        self.by_level.iter().rev().flatten().copied().collect()
    }
}

fn node(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

fn chain_next(prev: &Hash, leaf: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(leaf);
    *h.finalize().as_bytes()
}

/// An entry whose payload check needs the Python side (a nested or system entry, or no payload).
pub struct Special {
    pub index: u64,
    pub entry: Vec<u8>,
    pub chain: Hash,
    pub digest: Option<Vec<u8>>,
}

/// The outcome of a chunk that verified: how many payload digests matched here, and the entries
/// whose payload check is left to Python, in order.
pub struct Verified {
    pub present: u64,
    pub specials: Vec<Special>,
}

/// A chunk in progress: the run is advanced on a copy and committed only if every entry passes.
pub struct Chunk<'a> {
    run: Run,
    pending: &'a [(u64, Hash)],
    limit: u64,
    out: Verified,
}

impl<'a> Chunk<'a> {
    pub fn new(run: &Run, pending: &'a [(u64, Hash)], limit: u64) -> Self {
        Chunk {
            run: run.clone(),
            pending,
            limit,
            out: Verified {
                present: 0,
                specials: Vec::new(),
            },
        }
    }

    /// Check the next entry, whose leaf hash is `leaf`; false means the chunk must be handed
    /// back to Python.
    pub fn entry(&mut self, index: u64, entry: &[u8], leaf: Hash, chain: &Hash, digest: Option<&[u8]>) -> bool {
        let run = &mut self.run;
        if run.size >= self.limit || index != run.size {
            return false;
        }
        let next = chain_next(&run.prev, &leaf);
        if &next != chain {
            return false;
        }
        run.prev = next;
        run.push(leaf);
        if !run.check_due(self.pending) {
            return false;
        }
        self.payload(index, entry, chain, digest)
    }

    fn payload(&mut self, index: u64, entry: &[u8], chain: &Hash, digest: Option<&[u8]>) -> bool {
        match digest {
            Some(raw) if flat(entry) => {
                if !digest_matches(entry, raw) {
                    return false;
                }
                self.out.present += 1;
            }
            _ => self.out.specials.push(Special {
                index,
                entry: entry.to_vec(),
                chain: *chain,
                digest: digest.map(<[u8]>::to_vec),
            }),
        }
        true
    }

    pub fn finish(self) -> (Run, Verified) {
        (self.run, self.out)
    }
}

/// An entry with no nested object whose type is not `erasure` or `retention`, as the Python check
/// decides it (`rfind` of the type key, or position 7 when there is none).
fn flat(entry: &[u8]) -> bool {
    if entry.len() > 1 && memchr::memchr(b'{', &entry[1..]).is_some() {
        return false;
    }
    let at = memchr::memmem::rfind(entry, TYPE).map_or(TYPE.len() - 1, |p| p + TYPE.len());
    let rest = entry.get(at..).unwrap_or(&[]);
    !(rest.starts_with(b"erasure\"") || rest.starts_with(b"retention\""))
}

fn digest_matches(entry: &[u8], raw: &[u8]) -> bool {
    let Some(found) = memchr::memmem::find(entry, DIGEST) else {
        return false;
    };
    let at = found + DIGEST.len();
    entry[at..].starts_with(raw) && memchr::memchr(b'"', &entry[at..]) == Some(raw.len()) && !raw.contains(&b'\\')
}

/// The leaf hash of every entry, on two threads when there are enough of them to pay for one.
pub fn leaf_hashes<'e>(entries: impl ExactSizeIterator<Item = &'e [u8]>) -> Vec<Hash> {
    let entries: Vec<&[u8]> = entries.collect();
    let mut out = vec![[0u8; 32]; entries.len()];
    if entries.len() < PARALLEL_MIN {
        for (o, e) in out.iter_mut().zip(&entries) {
            *o = leaf_hash(e);
        }
        return out;
    }
    let half = entries.len() / 2;
    let (first, second) = out.split_at_mut(half);
    std::thread::scope(|s| {
        s.spawn(|| {
            for (o, e) in second.iter_mut().zip(&entries[half..]) {
                *o = leaf_hash(e);
            }
        });
        for (o, e) in first.iter_mut().zip(&entries[..half]) {
            *o = leaf_hash(e);
        }
    });
    out
}

const PARALLEL_MIN: usize = 256;
