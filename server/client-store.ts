/** A client: one customer installation, authenticated by id + token. */
export interface ClientRecord {
  clientId: string;
  name: string;
  createdAt: string;
  /** ISO time of the last token rotation, if any. */
  rotatedAt: string | null;
}

/**
 * Where clients live. The embedded implementation is SqliteClientStore; a
 * PostgreSQL one can slot in for cluster mode (see SPEC "Later").
 */
export interface ClientStore {
  /** Creates a client and returns it with its token (shown this once). */
  create(name: string): ClientRecord & { clientToken: string };
  list(): ClientRecord[];
  get(clientId: string): ClientRecord | undefined;
  /** Checks a token in constant time; false for unknown or revoked clients. */
  verify(clientId: string, token: string): boolean;
  /** Deletes the client; returns false if it did not exist. */
  revoke(clientId: string): boolean;
  /** Replaces the token; returns the new one, or undefined if no such client. */
  rotate(clientId: string): string | undefined;
  close(): void;
}
