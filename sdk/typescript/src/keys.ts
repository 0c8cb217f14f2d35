/** Reading the verifier keys a deployment publishes at `GET /v1/keys`. */

import { InvalidInputError } from "./errors.ts";
import { Ed25519Verifier } from "./note.ts";

/** One published key: its purpose (`receipt`, `checkpoint`, `cosign`, ...), vkey and validity window. */
export interface PublishedKey {
  purpose: string;
  vkey: string;
  notBefore: number | null;
  notAfter: number | null;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const window = (v: unknown, where: string): number | null => {
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isSafeInteger(v)) throw new InvalidInputError(`${where} must be POSIX seconds or null`);
  return v;
};

/**
 * The keys of a `GET /v1/keys` answer: `{"keys": [{purpose, vkey, not_before, not_after}]}` from
 * `sealtrail serve` or the query API, or `{"receipt": [{vkey}]}` from ingest on its own. Anything
 * else throws {@link InvalidInputError} naming the field.
 */
export function publishedKeys(body: unknown): PublishedKey[] {
  if (isObject(body) && Array.isArray(body.keys)) {
    return body.keys.map((k: unknown, i) => {
      if (!isObject(k) || typeof k.purpose !== "string" || typeof k.vkey !== "string") {
        throw new InvalidInputError(`/keys/${i} needs a purpose and a vkey string`);
      }
      return { purpose: k.purpose, vkey: k.vkey, notBefore: window(k.not_before, `/keys/${i}/not_before`), notAfter: window(k.not_after, `/keys/${i}/not_after`) };
    });
  }
  if (isObject(body) && Array.isArray(body.receipt)) {
    return body.receipt.map((k: unknown, i) => {
      if (!isObject(k) || typeof k.vkey !== "string") throw new InvalidInputError(`/receipt/${i} needs a vkey string`);
      return { purpose: "receipt", vkey: k.vkey, notBefore: null, notAfter: null };
    });
  }
  throw new InvalidInputError("not a published key list: expected {\"keys\": [...]} or {\"receipt\": [...]}");
}

/** The receipt verifiers of a `GET /v1/keys` answer, from `sealtrail serve`, the query API or ingest. */
export function receiptVerifiers(body: unknown): Ed25519Verifier[] {
  const vkeys = publishedKeys(body).filter((k) => k.purpose === "receipt").map((k) => k.vkey);
  if (!vkeys.length) throw new InvalidInputError("the published keys hold no receipt key");
  return vkeys.map((v) => Ed25519Verifier.fromVkey(v));
}
