/**
 * Chunk identity and change detection.
 *
 *   chunk id     sha256("<topology>\0<entity type>\0<entity key>\0<chunk index>"), first 128 bits
 *                as 32 hex chars. Stable across replays and re-deploys; never contains the raw key
 *                (entity keys can be e-mail addresses, and chunk ids end up in audit records).
 *   content hash sha256 hex of the chunk text (after formatting): the embedding-cache key.
 *   fingerprint  content hash + everything else that is emitted with the chunk (metadata,
 *                classification, tenant, …): a chunk is re-emitted only when its fingerprint changes.
 */
import { hash } from 'node:crypto'
import { canonicalJson } from '../cdc/keys.ts'

// One-shot digests (crypto.hash): the same bytes as createHash(…).update(…).digest(…), without a Hash object per call.
export function chunkId(topology: string, entityType: string, entityKey: string, index: number): string {
  return hash('sha256', `${topology}\0${entityType}\0${entityKey}\0${index}`, 'hex').slice(0, 32)
}

export function contentHash(text: string): string {
  return hash('sha256', text, 'hex')
}

/** 128-bit base64url digest of the content hash and the chunk's other emitted attributes (key order does not matter). */
export function chunkFingerprint(contentHashHex: string, attributes: unknown): string {
  // One string hashed is the same as its parts updated in turn (UTF-8 of a concatenation is the concatenation).
  return hash('sha256', `${contentHashHex}\0${canonicalJson(attributes ?? null)}`, 'buffer')
    .subarray(0, 16)
    .toString('base64url')
}
