//! The entries of the chunk being formed from bundle lines, decoded, in one buffer.

pub struct Rec {
    pub index: u64,
    entry: (usize, usize),
    chain: (usize, usize),
    digest: Option<(usize, usize)>,
}

#[derive(Default)]
pub struct Store {
    bytes: Vec<u8>,
    pub recs: Vec<Rec>,
}

impl Store {
    fn put(&mut self, data: &[u8]) -> (usize, usize) {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(data);
        (at, self.bytes.len())
    }

    /// Append an entry whose entry bytes were decoded into the end of the buffer already
    /// (from `from`), with its chain value and digest.
    pub fn push_decoded(&mut self, index: u64, from: usize, chain: &[u8], digest: Option<&[u8]>) {
        let entry = (from, self.bytes.len());
        let chain = self.put(chain);
        let digest = digest.map(|d| self.put(d));
        self.recs.push(Rec {
            index,
            entry,
            chain,
            digest,
        });
    }

    pub fn push(&mut self, index: u64, entry: &[u8], chain: &[u8], digest: Option<&[u8]>) {
        let from = self.bytes.len();
        self.bytes.extend_from_slice(entry);
        self.push_decoded(index, from, chain, digest);
    }

    /// The buffer, for decoding an entry's bytes straight onto its end.
    pub fn bytes_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    pub fn entry(&self, r: &Rec) -> &[u8] {
        &self.bytes[r.entry.0..r.entry.1]
    }

    pub fn chain(&self, r: &Rec) -> &[u8] {
        &self.bytes[r.chain.0..r.chain.1]
    }

    pub fn digest(&self, r: &Rec) -> Option<&[u8]> {
        r.digest.map(|(a, b)| &self.bytes[a..b])
    }

    pub fn len(&self) -> usize {
        self.recs.len()
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.recs.clear();
    }
}
