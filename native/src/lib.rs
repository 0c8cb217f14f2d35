//! `sealtrail_native`: the per-entry hot loops of `sealtrail verify` (bundle lines and binary entry
//! pages in, run and payload checks done a chunk at a time). The Python verifier is the reference:
//! a chunk this module cannot verify, for whatever reason, is handed back untouched, and Python
//! verifies it and raises exactly the error it always raised.

mod decode;
mod lines;
mod run;
mod store;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::lines::LineBuffer;
use crate::run::{Chunk, Hash, Run, Verified};
use crate::store::Store;

fn hash32(bytes: &[u8], what: &str) -> PyResult<Hash> {
    bytes
        .try_into()
        .map_err(|_| PyValueError::new_err(format!("{what} must be 32 bytes")))
}

/// The native side of one audit: the run state, the pending checkpoints and, for bundles, the
/// lines read but not yet verified.
#[pyclass(module = "sealtrail_native")]
struct Engine {
    run: Run,
    pending: Vec<(u64, Hash)>,
    limit: u64,
    chunk: usize,
    lines: LineBuffer,
    store: Store,
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (size, hashes, prev, pending, good, matched, limit, chunk, max_line))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        size: u64,
        hashes: Vec<Vec<u8>>,
        prev: Vec<u8>,
        pending: Vec<(u64, Vec<u8>)>,
        good: u64,
        matched: u64,
        limit: u64,
        chunk: usize,
        max_line: usize,
    ) -> PyResult<Self> {
        let mut run = Run {
            by_level: Vec::new(),
            size: 0,
            prev: hash32(&prev, "prev")?,
            consumed: 0,
            good,
            matched,
        };
        run.reset(
            size,
            &hashes
                .iter()
                .map(|h| hash32(h, "a tree hash"))
                .collect::<PyResult<Vec<_>>>()?,
        )
        .map_err(PyValueError::new_err)?;
        let pending = pending
            .into_iter()
            .map(|(s, r)| Ok((s, hash32(&r, "a checkpoint root")?)))
            .collect::<PyResult<Vec<_>>>()?;
        if chunk == 0 {
            return Err(PyValueError::new_err("chunk must be positive"));
        }
        Ok(Engine {
            run,
            pending,
            limit,
            chunk,
            lines: LineBuffer::new(max_line),
            store: Store::default(),
        })
    }

    /// Where the run stands: (size, hashes left to right, chain value, checkpoints matched from
    /// the pending list, last matched size, matched count).
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let hashes = PyList::new(py, self.run.hashes().iter().map(|h| PyBytes::new(py, h)))?;
        (
            self.run.size,
            hashes,
            PyBytes::new(py, &self.run.prev),
            self.run.consumed,
            self.run.good,
            self.run.matched,
        )
            .into_pyobject(py)
    }

    /// Carry on from a state reached by the Python verifier (after it verified a chunk itself).
    fn resync(
        &mut self,
        size: u64,
        hashes: Vec<Vec<u8>>,
        prev: Vec<u8>,
        consumed: usize,
        good: u64,
        matched: u64,
    ) -> PyResult<()> {
        let hashes = hashes
            .iter()
            .map(|h| hash32(h, "a tree hash"))
            .collect::<PyResult<Vec<_>>>()?;
        if consumed > self.pending.len() {
            return Err(PyValueError::new_err("more checkpoints consumed than pending"));
        }
        let mut run = Run {
            by_level: Vec::new(),
            size: 0,
            prev: hash32(&prev, "prev")?,
            consumed,
            good,
            matched,
        };
        run.reset(size, &hashes).map_err(PyValueError::new_err)?;
        self.run = run;
        Ok(())
    }

    /// Verify one binary entries page: `(present, specials)`, or None to hand it to Python.
    fn feed_page<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Option<Bound<'py, PyTuple>>> {
        // the interpreter is released meanwhile, for a caller that verifies on a thread of its own
        let verified = py.allow_threads(|| {
            let records = decode::page(data)?;
            let leaves = run::leaf_hashes(records.iter().map(|r| r.entry));
            let mut chunk = Chunk::new(&self.run, &self.pending, self.limit);
            for (r, leaf) in records.iter().zip(leaves) {
                if !chunk.entry(r.index, r.entry, leaf, &r.chain, r.digest.as_ref().map(|d| &d[..])) {
                    return None;
                }
            }
            Some(chunk.finish())
        });
        match self.commit(py, verified)? {
            Some(out) => Ok(Some(out.into_pyobject(py)?)),
            None => Ok(None),
        }
    }

    /// Append one block read from `entries.jsonl` (split into lines as the Python reader does).
    fn push(&mut self, block: &[u8]) {
        self.lines.push(block);
    }

    /// The end of `entries.jsonl` was reached.
    fn end(&mut self) {
        self.lines.end();
    }

    /// Lines split so far (the Python reader's count, for its "cut short after line n" message).
    #[getter]
    fn lines_read(&self) -> u64 {
        self.lines.seen
    }

    /// The next step over the buffered lines, in line order: None (more input needed, or done);
    /// `("ok", present, specials)` for a chunk verified here; `("entries", [(index, entry, chain,
    /// digest), ...])` for a chunk Python must feed itself; `("odd", n, line)` for a line not in the
    /// usual form, which Python parses and gives back with :meth:`put` (or refuses); `("long", n)`
    /// for a line longer than the limit.
    fn step<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        loop {
            if self.store.len() == self.chunk || (self.lines.done() && self.store.len() > 0) {
                return self.verify_chunk(py).map(Some);
            }
            let Some((n, line)) = self.lines.peek() else {
                if let Some(n) = self.lines.long() {
                    self.store.clear();
                    return Ok(Some(("long", n).into_pyobject(py)?));
                }
                return Ok(None);
            };
            if !parse_into(&mut self.store, line) {
                return Ok(Some(("odd", n, PyBytes::new(py, line)).into_pyobject(py)?));
            }
            self.lines.take();
        }
    }

    /// The entry Python parsed from the line the last `("odd", ...)` step showed.
    #[pyo3(signature = (index, entry, chain, digest))]
    fn put(&mut self, index: u64, entry: &[u8], chain: &[u8], digest: Option<&[u8]>) {
        self.store.push(index, entry, chain, digest);
        self.lines.take();
    }
}

/// Decode one line in the usual form into the chunk store; false (store unchanged) if it is not.
fn parse_into(store: &mut Store, text: &[u8]) -> bool {
    let Some(l) = decode::line(text) else { return false };
    let mut chain = Vec::with_capacity(33);
    if !decode::base64_into(l.chain, &mut chain) {
        return false;
    }
    let from = store.bytes_mut().len();
    if !decode::base64_append(l.entry, store.bytes_mut()) {
        store.bytes_mut().truncate(from);
        return false;
    }
    store.push_decoded(l.index, from, &chain, l.digest);
    true
}

impl Engine {
    fn verify_chunk<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let verified = (|| {
            let store = &self.store;
            let leaves = run::leaf_hashes(store.recs.iter().map(|r| store.entry(r)));
            let mut chunk = Chunk::new(&self.run, &self.pending, self.limit);
            for (r, leaf) in store.recs.iter().zip(leaves) {
                let chain = decode::chain32(store.chain(r))?;
                if !chunk.entry(r.index, store.entry(r), leaf, &chain, store.digest(r)) {
                    return None;
                }
            }
            Some(chunk.finish())
        })();
        let out = match self.commit(py, verified)? {
            Some((present, specials)) => ("ok", present, specials).into_pyobject(py)?,
            None => {
                let list = PyList::empty(py);
                for r in &self.store.recs {
                    let digest = self.store.digest(r).map(text).transpose()?;
                    list.append((
                        r.index,
                        PyBytes::new(py, self.store.entry(r)),
                        PyBytes::new(py, self.store.chain(r)),
                        digest,
                    ))?;
                }
                ("entries", list).into_pyobject(py)?
            }
        };
        self.store.clear();
        Ok(out)
    }

    fn commit<'py>(
        &mut self,
        py: Python<'py>,
        verified: Option<(Run, Verified)>,
    ) -> PyResult<Option<(u64, Bound<'py, PyList>)>> {
        let Some((run, out)) = verified else { return Ok(None) };
        self.run = run;
        let specials = PyList::empty(py);
        for s in &out.specials {
            let digest = s.digest.as_deref().map(text).transpose()?;
            specials.append((s.index, PyBytes::new(py, &s.entry), PyBytes::new(py, &s.chain), digest))?;
        }
        Ok(Some((out.present, specials)))
    }
}

fn text(bytes: &[u8]) -> PyResult<&str> {
    std::str::from_utf8(bytes).map_err(|e| PyValueError::new_err(e.to_string()))
}

#[pymodule]
fn sealtrail_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Engine>()?;
    m.add("ABI", 1)?;
    Ok(())
}
