/** Byte functions shared by the verifiers: strict base64, hex, UTF-8 and comparisons. */

import { NoteError } from "./errors.ts";

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/** Standard base64 with padding (RFC 4648 §4). */
export function b64encode(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64");
}

/**
 * Decode canonical standard base64; anything else throws {@link NoteError} naming `what`.
 * Non-canonical spellings (stray padding bits) are refused, as the Python core does, so that one
 * byte string has exactly one textual form.
 */
export function b64decode(text: string, what: string): Uint8Array {
  if (!B64.test(text)) throw new NoteError(`${what} is not valid base64`);
  const data = new Uint8Array(Buffer.from(text, "base64"));
  if (b64encode(data) !== text) throw new NoteError(`${what} is not canonical base64`);
  return data;
}

export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Decode UTF-8 strictly; invalid bytes throw {@link NoteError} naming `what`. */
export function fromUtf8(data: Uint8Array, what: string): string {
  try {
    return strictDecoder.decode(data);
  } catch {
    throw new NoteError(`${what} is not valid UTF-8`);
  }
}

export function toHex(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("hex");
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

/** A uint32 as 4 big-endian bytes. */
export function uint32be(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value >>> 0, false);
  return out;
}

export function readUint32be(data: Uint8Array, offset = 0): number {
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(offset, false);
}

/** Text that is a string or UTF-8 bytes, as a string. */
export function asText(data: string | Uint8Array, what: string): string {
  return typeof data === "string" ? data : fromUtf8(data, what);
}
