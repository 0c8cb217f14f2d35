/**
 * Timestamped Ed25519 cosignatures (c2sp.org/tlog-cosignature, note signature type 0x04).
 *
 * The signed message is `cosignature/v1\ntime <POSIX seconds>\n` followed by the whole cosigned
 * note text; the note signature bytes after the key ID are `timestamp (8, big-endian) || Ed25519
 * signature (64)`. `key ID = SHA-256(name || 0x0A || 0x04 || public key)[:4]`.
 */

import { concat, utf8 } from "./encoding.ts";
import { NoteError } from "./errors.ts";
import { checkKeyName, computeKeyId, decodeVkey, ed25519PublicKey, ed25519Verify, type Verifier } from "./note.ts";

export const COSIGNATURE_TYPE = 0x04;
export const MAX_TIMESTAMP = 2n ** 63n - 1n;
export const COSIGNATURE_SIZE = 8 + 64;

/** The bytes a v1 cosignature signs for note `text` at `timestamp`. */
export function cosignedMessage(text: Uint8Array, timestamp: bigint): Uint8Array {
  if (timestamp < 0n || timestamp > MAX_TIMESTAMP) throw new NoteError("cosignature timestamp out of range");
  return concat(utf8(`cosignature/v1\ntime ${timestamp}\n`), text);
}

/** The timestamp (POSIX seconds) of a type 0x04 signature (the bytes after the key ID). */
export function signatureTimestamp(signature: Uint8Array): bigint {
  if (signature.length !== COSIGNATURE_SIZE) throw new NoteError("cosignature must be 72 bytes after the key ID");
  const timestamp = new DataView(signature.buffer, signature.byteOffset, 8).getBigUint64(0, false);
  if (timestamp > MAX_TIMESTAMP) throw new NoteError("cosignature timestamp out of range");
  return timestamp;
}

/** Verifier for type 0x04 cosignatures by one cosigner key. */
export class CosignatureVerifier implements Verifier {
  readonly keyId: number;

  constructor(readonly name: string, readonly publicKey: Uint8Array) {
    checkKeyName(name);
    if (publicKey.length !== 32) throw new NoteError("Ed25519 public key must be 32 bytes");
    this.keyId = computeKeyId(name, COSIGNATURE_TYPE, publicKey);
  }

  static fromVkey(vkey: string): CosignatureVerifier {
    const material = decodeVkey(vkey);
    return new CosignatureVerifier(material.name, ed25519PublicKey(material, COSIGNATURE_TYPE));
  }

  verify(text: Uint8Array, signature: Uint8Array): boolean {
    try {
      const message = cosignedMessage(text, signatureTimestamp(signature));
      return ed25519Verify(this.publicKey, message, signature.subarray(8));
    } catch (e) {
      if (e instanceof NoteError) return false;
      throw e;
    }
  }
}
