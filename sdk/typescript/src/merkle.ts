/**
 * RFC 6962 / RFC 9162 Merkle trees over SHA-256: leaf and node hashes, roots, and inclusion and
 * consistency proof verification, step for step as `sealtrail/core/merkle.py`.
 */

import { sha256 } from "@noble/hashes/sha2.js";

import { bytesEqual, concat } from "./encoding.ts";
import { InvalidProofError } from "./errors.ts";

export const HASH_SIZE = 32;
const LEAF = Uint8Array.of(0);
const NODE = Uint8Array.of(1);

/** `SHA-256(0x00 || data)`. */
export function leafHash(data: Uint8Array): Uint8Array {
  return sha256(concat(LEAF, data));
}

/** `SHA-256(0x01 || left || right)`. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(concat(NODE, left, right));
}

/** The root of the empty tree: `SHA-256("")`. */
export function emptyRoot(): Uint8Array {
  return sha256(new Uint8Array(0));
}

/** The RFC 6962 root of the given leaf hashes (adjacent pairs hashed, a trailing odd node moves up). */
export function rootOf(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return emptyRoot();
  let level = [...leaves];
  while (level.length > 1) {
    const up: Uint8Array[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) up.push(nodeHash(level[i]!, level[i + 1]!));
    if (level.length % 2) up.push(level[level.length - 1]!);
    level = up;
  }
  return level[0]!;
}

type Size = number | bigint;

function big(value: Size, what: string): bigint {
  if (typeof value === "number" && !Number.isSafeInteger(value)) {
    throw new InvalidProofError(`${what} must be an integer`);
  }
  return BigInt(value);
}

function checkHashes(hashes: readonly Uint8Array[], what: string): void {
  if (hashes.some((h) => h.length !== HASH_SIZE)) throw new InvalidProofError(`${what} must be 32 bytes`);
}

/**
 * Check that `leaf` is leaf `index` of the tree of `size` with `root` (RFC 9162 §2.1.3.2).
 * Throws {@link InvalidProofError} when it is not, or when the inputs are malformed.
 */
export function verifyInclusion(
  leaf: Uint8Array, index: Size, size: Size, proof: readonly Uint8Array[], root: Uint8Array,
): void {
  const idx = big(index, "leaf index");
  const n = big(size, "tree size");
  if (!(idx >= 0n && idx < n)) throw new InvalidProofError(`leaf index ${idx} is outside a tree of size ${n}`);
  checkHashes([leaf, ...proof], "leaf and proof hashes");
  let fn = idx;
  let sn = n - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new InvalidProofError("inclusion proof is too long");
    if (fn & 1n || fn === sn) {
      r = nodeHash(p, r);
      while (!(fn & 1n) && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new InvalidProofError("inclusion proof is too short");
  if (!bytesEqual(r, root)) throw new InvalidProofError("inclusion proof does not lead to the root");
}

/**
 * Check that the tree of `size1` with `root1` is a prefix of the tree of `size2` with `root2`
 * (RFC 9162 §2.1.4.2). Equal sizes need an empty proof and equal roots.
 */
export function verifyConsistency(
  size1: Size, size2: Size, proof: readonly Uint8Array[], root1: Uint8Array, root2: Uint8Array,
): void {
  const n1 = big(size1, "size1");
  const n2 = big(size2, "size2");
  if (!(n1 > 0n && n1 <= n2)) {
    throw new InvalidProofError(`no consistency proof exists from size ${n1} to size ${n2}`);
  }
  if (n1 === n2) {
    if (proof.length) throw new InvalidProofError("consistency proof between equal sizes must be empty");
    if (!bytesEqual(root1, root2)) throw new InvalidProofError("roots differ at the same size");
    return;
  }
  if (!proof.length || proof.some((p) => p.length !== HASH_SIZE)) {
    throw new InvalidProofError("consistency proof is empty or holds hashes that are not 32 bytes");
  }
  const path = (n1 & (n1 - 1n)) === 0n ? [root1, ...proof] : [...proof];
  let fn = n1 - 1n;
  let sn = n2 - 1n;
  while (fn & 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new InvalidProofError("consistency proof is too long");
    if (fn & 1n || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!(fn & 1n) && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new InvalidProofError("consistency proof is too short");
  if (!bytesEqual(fr, root1) || !bytesEqual(sr, root2)) {
    throw new InvalidProofError("consistency proof does not lead to both roots");
  }
}
