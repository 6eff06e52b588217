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
});
