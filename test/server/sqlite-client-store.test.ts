import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteClientStore } from '../../server/sqlite-client-store.js';

const stores: SqliteClientStore[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});

function open(): { store: SqliteClientStore; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'postern-store-'));
  const store = new SqliteClientStore(dir);
  stores.push(store);
  return { store, dir };
}

describe('SqliteClientStore', () => {
  it('makes client ids of letters and digits only, so none reads as a CLI option', () => {
    const { store } = open();
    for (let i = 0; i < 300; i++) expect(store.create(`c${i}`).clientId).toMatch(/^[0-9A-Za-z]{22}$/);
  });

  it('verifies, rotates and revokes, keeping only hashes on disk', () => {
    const { store, dir } = open();
    const c = store.create('acme');
    expect(store.verify(c.clientId, c.clientToken)).toBe(true);
    expect(store.verify(c.clientId, `${c.clientToken}x`)).toBe(false);
    expect(store.verify('nope', c.clientToken)).toBe(false);
    const next = store.rotate(c.clientId)!;
    expect(store.verify(c.clientId, c.clientToken)).toBe(false);
    expect(store.verify(c.clientId, next)).toBe(true);
    store.close();
    const bytes = Buffer.concat(
      ['postern.db', 'postern.db-wal'].map((f) => {
        try {
          return readFileSync(join(dir, f));
        } catch {
          return Buffer.alloc(0);
        }
      }),
    );
    expect(bytes.includes(next)).toBe(false);
    expect(bytes.includes(c.clientToken)).toBe(false);
    const again = new SqliteClientStore(dir);
    stores.push(again);
    expect(again.verify(c.clientId, next)).toBe(true);
    expect(again.revoke(c.clientId)).toBe(true);
    expect(again.revoke(c.clientId)).toBe(false);
    expect(again.get(c.clientId)).toBeUndefined();
  });

  it('adds, lists and revokes API keys per client, keeping only their hashes, and drops them with the client', () => {
    const { store, dir } = open();
    const a = store.create('a');
    const b = store.create('b');
    expect(store.createApiKey('nope', 'x')).toBeUndefined();
    expect(store.apiKeyHashes(a.clientId)).toEqual([]);
    const k1 = store.createApiKey(a.clientId, 'ci')!;
    const k2 = store.createApiKey(a.clientId, 'billing')!;
    const kb = store.createApiKey(b.clientId, 'other')!;
    expect(k1.keyId).toMatch(/^[0-9A-Za-z]{12}$/);
    expect(k1.apiKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(k1.apiKey).not.toBe(k2.apiKey);
    const listed = store.listApiKeys(a.clientId);
    expect(listed.map((k) => k.name)).toEqual(['ci', 'billing']);
    expect(JSON.stringify(listed)).not.toContain(k1.apiKey);
    expect(store.apiKeyHashes(a.clientId)).toHaveLength(2);
    expect(store.apiKeyHashes(a.clientId)).not.toContain(k1.apiKey);
    // A key id of another client does not revoke anything here.
    expect(store.revokeApiKey(a.clientId, kb.keyId)).toBe(false);
    expect(store.revokeApiKey(a.clientId, k1.keyId)).toBe(true);
    expect(store.listApiKeys(a.clientId).map((k) => k.keyId)).toEqual([k2.keyId]);
    store.close();
    const bytes = Buffer.concat(
      ['postern.db', 'postern.db-wal'].map((f) => {
        try {
          return readFileSync(join(dir, f));
        } catch {
          return Buffer.alloc(0);
        }
      }),
    );
    for (const k of [k1, k2, kb]) expect(bytes.includes(k.apiKey)).toBe(false);
    const again = new SqliteClientStore(dir);
    stores.push(again);
    expect(again.listApiKeys(a.clientId)).toHaveLength(1);
    expect(again.revoke(a.clientId)).toBe(true);
    expect(again.listApiKeys(a.clientId)).toEqual([]);
    expect(again.apiKeyHashes(b.clientId)).toHaveLength(1);
  });
});
