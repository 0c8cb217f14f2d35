/**
 * RFC 8785 (JCS) canonical JSON, the bytes Sealtrail stores, hashes and signs; used here for the
 * tool definition hash (`sha256:` + hex SHA-256 of the canonical JSON of the whole tool object).
 */

import { sha256 } from "@noble/hashes/sha2.js";

import { toHex, utf8 } from "./encoding.ts";
import { InvalidInputError } from "./errors.ts";

const LONE_SURROGATE = /\p{Surrogate}/u;

function serialize(value: unknown, depth: number): string {
  if (depth > 1000) throw new InvalidInputError("value nests too deeply for canonical JSON");
  if (value === null || typeof value === "boolean") return JSON.stringify(value);
  if (typeof value === "string") {
    if (LONE_SURROGATE.test(value)) throw new InvalidInputError("value has no RFC 8785 canonical form: lone surrogate");
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new InvalidInputError("value has no RFC 8785 canonical form: non-finite number");
    return JSON.stringify(value); // ECMAScript Number-to-String is exactly what RFC 8785 prescribes
  }
  if (Array.isArray(value)) return `[${value.map((v) => serialize(v, depth + 1)).join(",")}]`;
  if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)); // UTF-16 code unit order
    return `{${entries.map(([k, v]) => `${serialize(k, depth + 1)}:${serialize(v, depth + 1)}`).join(",")}}`;
  }
  throw new InvalidInputError(`value has no RFC 8785 canonical form: ${typeof value}`);
}

/** The RFC 8785 canonical UTF-8 bytes of a JSON value. */
export function canonicalJson(value: unknown): Uint8Array {
  return utf8(serialize(value, 0));
}

/** `sha256:` + lowercase hex of SHA-256 over the canonical JSON of a tool definition as received. */
export function toolDefHash(tool: unknown): string {
  return `sha256:${toHex(sha256(canonicalJson(tool)))}`;
}
