/** A client: one customer installation, authenticated by id + token. */
export interface ClientRecord {
  clientId: string;
  name: string;
  createdAt: string;
  /** ISO time of the last token rotation, if any. */
  rotatedAt: string | null;
}

/** An ingress API key of a client, as listed (the key itself is never stored). */
export interface ApiKeyRecord {
  keyId: string;
  clientId: string;
  /** A label for people ("ci", "billing service"); not secret. */
  name: string;
  createdAt: string;
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
  /** Deletes the client and its API keys; returns false if it did not exist. */
  revoke(clientId: string): boolean;
  /** Replaces the token; returns the new one, or undefined if no such client. */
  rotate(clientId: string): string | undefined;
  /**
   * Adds an ingress API key to a client and returns it with the key (shown
   * this once); undefined if no such client.
   */
  createApiKey(clientId: string, name: string): (ApiKeyRecord & { apiKey: string }) | undefined;
  /** The client's API keys (never the keys themselves), oldest first. */
  listApiKeys(clientId: string): ApiKeyRecord[];
  /** SHA-256 hashes (hex) of the client's API keys, for the ingress's check. */
  apiKeyHashes(clientId: string): string[];
  /** Deletes one API key of a client; false if there was no such key. */
  revokeApiKey(clientId: string, keyId: string): boolean;
  /**
   * Throws (with a reason fit for /readyz) when the store cannot serve a
   * read now: closed, or its file gone bad. Cheap: called per readiness probe.
   */
  ping(): void;
  close(): void;
}
