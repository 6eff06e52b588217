import type { ClientStore } from './client-store.js';
import { tokenMatchesAny } from './secrets.js';

/** Header a caller presents its client's ingress API key in; the ingress strips it before forwarding. */
export const API_KEY_HEADER = 'x-postern-api-key';

/**
 * Outcome of the ingress's key check: `open` (the client has no keys and
 * keys are not required), `ok`, or a refusal (`missing`, `wrong`, or `none`:
 * keys are required server-wide and this client has none).
 */
export type ApiKeyOutcome = 'open' | 'ok' | 'missing' | 'wrong' | 'none';

const NO_KEYS: readonly Buffer[] = Object.freeze([]);

/**
 * The ingress's view of per-client API keys: each client's key hashes are
 * read from the store once and kept; the admin API calls `invalidate` when
 * a key is created or revoked, or the client is. A request for a client
 * without keys costs one map lookup.
 *
 * The cache is this process's: with several server replicas on one shared
 * store, a revoked key keeps working on the others until they restart
 * (the embedded SQLite store is single-replica anyway).
 */
export class IngressApiKeys {
  private readonly hashes = new Map<string, readonly Buffer[]>();

  /** @param required POSTERN_REQUIRE_API_KEYS: clients without keys are closed, not open. */
  constructor(
    private readonly store: ClientStore,
    readonly required: boolean,
  ) {}

  /** Checks the key a request presents for an existing client. */
  check(clientId: string, presented: string | string[] | undefined): ApiKeyOutcome {
    const hashes = this.hashesOf(clientId);
    if (hashes.length === 0) return this.required ? 'none' : 'open';
    if (typeof presented !== 'string' || presented === '') return 'missing';
    return tokenMatchesAny(presented, hashes) ? 'ok' : 'wrong';
  }

  /** Forgets what is known of a client's keys (they changed, or it was revoked). */
  invalidate(clientId: string): void {
    this.hashes.delete(clientId);
  }

  private hashesOf(clientId: string): readonly Buffer[] {
    let hashes = this.hashes.get(clientId);
    if (!hashes) {
      const stored = this.store.apiKeyHashes(clientId);
      hashes = stored.length === 0 ? NO_KEYS : stored.map((h) => Buffer.from(h, 'hex'));
      this.hashes.set(clientId, hashes);
    }
    return hashes;
  }
}
