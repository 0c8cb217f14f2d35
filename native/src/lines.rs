//! Lines of `entries.jsonl`, split and grouped exactly as the Python reader does: blocks in, lines
//! cut at `\n`, a line longer than the limit refused after the lines before it, lines out one at
//! a time in order.

pub struct LineBuffer {
    max_line: usize,
    /// Complete lines, each followed by `\n`; `ends` holds the position of each `\n`.
    buf: Vec<u8>,
    ends: Vec<usize>,
    rest: Vec<u8>,
    /// Lines split so far (the Python reader's `n`).
    pub seen: u64,
    /// Lines taken so far, and where the next one starts.
    taken: u64,
    head: usize,
    start: usize,
    long: Option<u64>,
    ended: bool,
}

impl LineBuffer {
    pub fn new(max_line: usize) -> Self {
        LineBuffer {
            max_line,
            buf: Vec::new(),
            ends: Vec::new(),
            rest: Vec::new(),
            seen: 0,
            taken: 0,
            head: 0,
            start: 0,
            long: None,
            ended: false,
        }
    }

    pub fn push(&mut self, block: &[u8]) {
        if self.long.is_some() || self.ended {
            return;
        }
        let mut start = 0;
        for p in memchr::memchr_iter(b'\n', block) {
            if self.rest.len() + (p - start) > self.max_line.saturating_sub(1) {
                self.long = Some(self.seen + 1);
                self.rest.clear();
                return;
            }
            self.buf.extend_from_slice(&self.rest);
            self.rest.clear();
            self.buf.extend_from_slice(&block[start..p]);
            self.ends.push(self.buf.len());
            self.buf.push(b'\n');
            self.seen += 1;
            start = p + 1;
        }
        self.rest.extend_from_slice(&block[start..]);
        if self.rest.len() > self.max_line {
            self.long = Some(self.seen + 1);
        }
    }

    pub fn end(&mut self) {
        if self.long.is_some() || self.ended {
            return;
        }
        self.ended = true;
        if !self.rest.is_empty() {
            let rest = std::mem::take(&mut self.rest);
            self.buf.extend_from_slice(&rest);
            self.ends.push(self.buf.len());
            self.buf.push(b'\n');
        }
    }

    /// The next raw line not yet taken: its number (from 1) and bytes; None if none is buffered.
    pub fn peek(&self) -> Option<(u64, &[u8])> {
        let end = *self.ends.get(self.head)?;
        Some((self.taken + 1, &self.buf[self.start..end]))
    }

    /// Take the line :meth:`peek` showed.
    pub fn take(&mut self) {
        self.start = self.ends[self.head] + 1;
        self.head += 1;
        self.taken += 1;
        if self.head == self.ends.len() {
            self.buf.clear();
            self.ends.clear();
            self.head = 0;
            self.start = 0;
        } else if self.head >= 4096 {
            let cut = self.start;
            self.buf.drain(..cut);
            self.ends.drain(..self.head);
            for e in &mut self.ends {
                *e -= cut;
            }
            self.head = 0;
            self.start = 0;
        }
    }

    /// Line `n` was longer than the limit (once every line before it was taken).
    pub fn long(&self) -> Option<u64> {
        if self.head == self.ends.len() {
            self.long
        } else {
            None
        }
    }

    /// Every line was split and taken: the input ended.
    pub fn done(&self) -> bool {
        self.ended && self.head == self.ends.len()
    }
}
