/**
 * A bounded, crash-safe on-disk spool of event batches, in the format of the Python SDK's
 * `sealtrail/sdk/spool.py` (either SDK reads the other's spool):
 *
 * - `<seq>.seg`: append-only segment of records, `seq` a 20-digit counter. A record is `STS1`, the
 *   body length and the CRC-32 of the body (big-endian uint32 each), then the body
 *   `{"events":[...]}` as JSON. Every append is fsync'd before {@link Spool.append} returns.
 * - `<seq>.ack`: append-only big-endian uint64 end offsets of the records already delivered.
 * - `LOCK`: the pid of the process that holds the spool (created exclusively; a lock whose
 *   process is gone is taken over).
 *
 * A crash can leave a torn record at the end of a segment or a torn offset at the end of an ack
 * file; opening the spool drops such tails. A crash between delivery and the ack write makes the
 * batch go out again after restart with the same event ids, which ingest and the ledger tolerate.
 * Segments are deleted once every record in them is acknowledged. Not safe for concurrent use
 * by two callers: the client serialises access.
 */

import * as fs from "node:fs";
import * as path from "node:path";
import { crc32 } from "node:zlib";

import { SpoolFullError, SpoolLockedError } from "./errors.ts";

export const MAGIC = Buffer.from("STS1", "ascii");
export const HEADER_SIZE = 12;
export const DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024;
const LOCK = "LOCK";
type Events = Record<string, unknown>[];

/** Records read from one segment, to be acknowledged together. */
export interface SpooledBatch {
  segment: number;
  /** The end offset of the last record taken. */
  end: number;
  events: Events;
}

export function encodeRecord(events: Events): Buffer {
  const body = Buffer.from(JSON.stringify({ events }), "utf8");
  const header = Buffer.alloc(HEADER_SIZE);
  MAGIC.copy(header, 0);
  header.writeUInt32BE(body.length, 4);
  header.writeUInt32BE(crc32(body), 8);
  return Buffer.concat([header, body]);
}

/** The (start, end) offsets of the intact records of a segment, and where the intact part ends. */
export function readRecords(data: Buffer): { spans: [number, number][]; intact: number } {
  const spans: [number, number][] = [];
  let pos = 0;
  while (pos + HEADER_SIZE <= data.length) {
    const length = data.readUInt32BE(pos + 4);
    const end = pos + HEADER_SIZE + length;
    if (!data.subarray(pos, pos + 4).equals(MAGIC) || end > data.length
        || crc32(data.subarray(pos + HEADER_SIZE, end)) !== data.readUInt32BE(pos + 8)) break;
    spans.push([pos, end]);
    pos = end;
  }
  return { spans, intact: pos };
}

function fsyncPath(p: string, flags: string): void {
  const fd = fs.openSync(p, flags);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function appendDurably(p: string, data: Uint8Array): void {
  const fd = fs.openSync(p, "a");
  try {
    let off = 0;
    while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export interface SpoolOptions {
  maxBytes: number;
  segmentBytes?: number;
}

/** Batches on disk, delivered oldest first. */
export class Spool {
  readonly directory: string;
  readonly maxBytes: number;
  readonly segmentBytes: number;
  private readonly sizes = new Map<number, number>();
  private readonly acked = new Map<number, number>();
  private locked = false;

  constructor(directory: string, options: SpoolOptions) {
    this.directory = directory;
    this.maxBytes = options.maxBytes;
    this.segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    fs.mkdirSync(directory, { recursive: true, mode: 0o700 });
    this.lock();
    this.recover();
  }

  /** Release the lock; the spool's contents stay for the next open. */
  close(): void {
    if (!this.locked) return;
    this.locked = false;
    fs.rmSync(path.join(this.directory, LOCK), { force: true });
  }

  get sizeBytes(): number {
    let n = 0;
    for (const size of this.sizes.values()) n += size;
    return n;
  }

  /** Whether some batch awaits delivery. */
  get pending(): boolean {
    for (const [seq, size] of this.sizes) if ((this.acked.get(seq) ?? 0) < size) return true;
    return false;
  }

  /** Add a batch durably (fsync'd); throws {@link SpoolFullError} past `maxBytes`. */
  append(events: Events): void {
    const record = encodeRecord(events);
    if (this.sizeBytes + record.length > this.maxBytes) {
      throw new SpoolFullError(`spool ${this.directory} is full (${this.maxBytes} bytes)`);
    }
    let seq = Math.max(0, ...this.sizes.keys());
    if (seq === 0 || this.sizes.get(seq)! + record.length > this.segmentBytes) {
      if (seq && (this.acked.get(seq) ?? 0) >= this.sizes.get(seq)!) this.drop(seq);
      seq += 1;
      this.sizes.set(seq, 0);
      appendDurably(this.segment(seq), new Uint8Array(0));
      fsyncPath(this.directory, "r");
    }
    appendDurably(this.segment(seq), record);
    this.sizes.set(seq, this.sizes.get(seq)! + record.length);
  }

  /**
   * The oldest records not yet acknowledged, from one segment, as one batch of at most
   * `maxEvents` events (always at least one record); null when nothing is pending.
   */
  peek(maxEvents = Number.POSITIVE_INFINITY): SpooledBatch | null {
    for (const seq of [...this.sizes.keys()].sort((a, b) => a - b)) {
      const start = this.acked.get(seq) ?? 0;
      const size = this.sizes.get(seq)!;
      if (start >= size) continue;
      const data = this.readRange(seq, start, size);
      const events: Events = [];
      let pos = 0;
      while (pos < data.length) {
        const length = data.readUInt32BE(pos + 4);
        const body = JSON.parse(data.subarray(pos + HEADER_SIZE, pos + HEADER_SIZE + length).toString("utf8")) as { events: Events };
        if (events.length && events.length + body.events.length > maxEvents) break;
        events.push(...body.events);
        pos += HEADER_SIZE + length;
      }
      return { segment: seq, end: start + pos, events };
    }
    return null;
  }

  /** Record `batch` as delivered (fsync'd); delete its segment once fully delivered. */
  ack(batch: SpooledBatch): void {
    const offset = Buffer.alloc(8);
    offset.writeBigUInt64BE(BigInt(batch.end));
    appendDurably(this.ackPath(batch.segment), offset);
    this.acked.set(batch.segment, batch.end);
    const newest = Math.max(...this.sizes.keys());
    if (batch.end >= this.sizes.get(batch.segment)! && batch.segment !== newest) this.drop(batch.segment);
  }

  private readRange(seq: number, start: number, end: number): Buffer {
    const fd = fs.openSync(this.segment(seq), "r");
    try {
      const data = Buffer.alloc(end - start);
      let off = 0;
      while (off < data.length) {
        const n = fs.readSync(fd, data, off, data.length - off, start + off);
        if (n === 0) break;
        off += n;
      }
      return data.subarray(0, off);
    } finally {
      fs.closeSync(fd);
    }
  }

  private lock(): void {
    const lockPath = path.join(this.directory, LOCK);
    for (let tries = 0; tries < 3; tries++) {
      try {
        fs.writeFileSync(lockPath, `${process.pid}\n`, { flag: "wx", mode: 0o600 });
        this.locked = true;
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      const holder = Number.parseInt(fs.readFileSync(lockPath, "utf8").trim(), 10);
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
        throw new SpoolLockedError(`spool ${this.directory} is in use by process ${holder}`);
      }
      fs.rmSync(lockPath, { force: true }); // its holder is gone: a crash left it behind
    }
    throw new SpoolLockedError(`spool ${this.directory}: could not take its lock`);
  }

  private recover(): void {
    const names = fs.readdirSync(this.directory);
    for (const name of names.filter((n) => /^\d{20}\.seg$/.test(n)).sort()) {
      const seq = Number(name.slice(0, 20));
      const data = fs.readFileSync(this.segment(seq));
      const { intact } = readRecords(data);
      if (intact < data.length) {
        fs.truncateSync(this.segment(seq), intact);
        fsyncPath(this.segment(seq), "r+");
      }
      this.sizes.set(seq, intact);
      this.acked.set(seq, Math.min(this.readAck(seq), intact));
    }
    const newest = Math.max(0, ...this.sizes.keys());
    for (const seq of [...this.sizes.keys()]) {
      if (seq !== newest && this.acked.get(seq)! >= this.sizes.get(seq)!) this.drop(seq);
    }
    for (const name of names.filter((n) => /^\d{20}\.ack$/.test(n))) {
      if (!this.sizes.has(Number(name.slice(0, 20)))) fs.rmSync(path.join(this.directory, name), { force: true });
    }
  }

  private readAck(seq: number): number {
    let data: Buffer;
    try {
      data = fs.readFileSync(this.ackPath(seq));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return 0;
      throw e;
    }
    const whole = data.length - (data.length % 8);
    return whole ? Number(data.readBigUInt64BE(whole - 8)) : 0;
  }

  private drop(seq: number): void {
    fs.rmSync(this.segment(seq), { force: true });
    fs.rmSync(this.ackPath(seq), { force: true });
    this.sizes.delete(seq);
    this.acked.delete(seq);
  }

  private segment(seq: number): string {
    return path.join(this.directory, `${String(seq).padStart(20, "0")}.seg`);
  }

  private ackPath(seq: number): string {
    return path.join(this.directory, `${String(seq).padStart(20, "0")}.ack`);
  }
}
