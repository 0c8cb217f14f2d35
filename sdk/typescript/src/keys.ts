/** Reading the verifier keys a deployment publishes at `GET /v1/keys`. */

import { InvalidInputError } from "./errors.ts";
import { Ed25519Verifier } from "./note.ts";

type PublishedKeys =
  | { keys: { purpose: string; vkey: string }[] }   // the query API and `sealtrail serve`
  | { receipt: { vkey: string }[] };                 // ingest on its own

/** The receipt verifiers of a `GET /v1/keys` answer, from `sealtrail serve`, the query API or ingest. */
export function receiptVerifiers(body: PublishedKeys): Ed25519Verifier[] {
  const vkeys = "keys" in body ? body.keys.filter((k) => k.purpose === "receipt").map((k) => k.vkey)
    : "receipt" in body ? body.receipt.map((k) => k.vkey) : [];
  if (!vkeys.length) throw new InvalidInputError("the published keys hold no receipt key");
  return vkeys.map((v) => Ed25519Verifier.fromVkey(v));
}
