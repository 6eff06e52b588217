import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { customAlphabet } from 'nanoid';
import type { ApiKeyRecord, ClientRecord, ClientStore } from './client-store.js';
import { generateToken, hashToken, tokenMatches } from './secrets.js';

/**
 * Client ids: 22 letters and digits (~131 bits). No '-' or '_': an id that
 * starts with '-' reads as an option to `postern status <id>` and other CLIs,
 * and the id appears in URLs, shell lines and logs.
 */
const newClientId = customAlphabet('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', 22);

/** API key ids: 12 of the same characters; they are labels in URLs and CLI lines, not secrets. */
const newKeyId = customAlphabet('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', 12);

interface KeyRow {
  key_id: string;
  client_id: string;
  name: string;
  key_hash: string;
  created_at: string;
}

interface Row {
  client_id: string;
  name: string;
  token_hash: string;
  created_at: string;
  rotated_at: string | null;
}

/**
 * ClientStore on node:sqlite (built into Node 22.13+/24, no native addon),
 * one file `postern.db` in the data directory. Only hashes of client tokens
 * and API keys are stored.
 */
export class SqliteClientStore implements ClientStore {
  private readonly db: DatabaseSync;
  private readonly stmts: {
    insert: StatementSync;
    list: StatementSync;
    get: StatementSync;
    del: StatementSync;
    rotate: StatementSync;
    insertKey: StatementSync;
    listKeys: StatementSync;
    delKey: StatementSync;
    delKeys: StatementSync;
    ping: StatementSync;
  };

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    this.db = new DatabaseSync(join(dataDir, 'postern.db'));
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS clients (
        client_id  TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        token_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        rotated_at TEXT
      );
      CREATE TABLE IF NOT EXISTS api_keys (
        key_id     TEXT PRIMARY KEY,
        client_id  TEXT NOT NULL,
        name       TEXT NOT NULL,
        key_hash   TEXT NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS api_keys_by_client ON api_keys (client_id);
    `);
    this.stmts = {
      insert: this.db.prepare('INSERT INTO clients (client_id, name, token_hash, created_at) VALUES (?, ?, ?, ?)'),
      list: this.db.prepare('SELECT * FROM clients ORDER BY created_at, client_id'),
      ping: this.db.prepare('SELECT 1 FROM clients LIMIT 1'),
      get: this.db.prepare('SELECT * FROM clients WHERE client_id = ?'),
      del: this.db.prepare('DELETE FROM clients WHERE client_id = ?'),
      rotate: this.db.prepare('UPDATE clients SET token_hash = ?, rotated_at = ? WHERE client_id = ?'),
      insertKey: this.db.prepare('INSERT INTO api_keys (key_id, client_id, name, key_hash, created_at) VALUES (?, ?, ?, ?, ?)'),
      listKeys: this.db.prepare('SELECT * FROM api_keys WHERE client_id = ? ORDER BY rowid'),
      delKey: this.db.prepare('DELETE FROM api_keys WHERE client_id = ? AND key_id = ?'),
      delKeys: this.db.prepare('DELETE FROM api_keys WHERE client_id = ?'),
    };
  }

  create(name: string): ClientRecord & { clientToken: string } {
    const clientId = newClientId();
    const clientToken = generateToken();
    const createdAt = new Date().toISOString();
    this.stmts.insert.run(clientId, name, hashToken(clientToken), createdAt);
    return { clientId, clientToken, name, createdAt, rotatedAt: null };
  }

  list(): ClientRecord[] {
    return (this.stmts.list.all() as unknown as Row[]).map(toRecord);
  }

  get(clientId: string): ClientRecord | undefined {
    const row = this.stmts.get.get(clientId) as unknown as Row | undefined;
    return row ? toRecord(row) : undefined;
  }

  verify(clientId: string, token: string): boolean {
    const row = this.stmts.get.get(clientId) as unknown as Row | undefined;
    // Hash anyway when the client is unknown so both paths cost the same.
    return tokenMatches(token, row?.token_hash ?? '0'.repeat(64)) && row !== undefined;
  }

  revoke(clientId: string): boolean {
    this.db.exec('BEGIN');
    try {
      this.stmts.delKeys.run(clientId);
      const existed = Number(this.stmts.del.run(clientId).changes) > 0;
      this.db.exec('COMMIT');
      return existed;
    } catch (err) {
      this.db.exec('ROLLBACK');
      throw err;
    }
  }

  rotate(clientId: string): string | undefined {
    const token = generateToken();
    const changed = Number(this.stmts.rotate.run(hashToken(token), new Date().toISOString(), clientId).changes);
    return changed > 0 ? token : undefined;
  }

  createApiKey(clientId: string, name: string): (ApiKeyRecord & { apiKey: string }) | undefined {
    if (!this.get(clientId)) return undefined;
    const keyId = newKeyId();
    const apiKey = generateToken();
    const createdAt = new Date().toISOString();
    this.stmts.insertKey.run(keyId, clientId, name, hashToken(apiKey), createdAt);
    return { keyId, clientId, name, createdAt, apiKey };
  }

  listApiKeys(clientId: string): ApiKeyRecord[] {
    return (this.stmts.listKeys.all(clientId) as unknown as KeyRow[]).map((r) => ({
      keyId: r.key_id,
      clientId: r.client_id,
      name: r.name,
      createdAt: r.created_at,
    }));
  }

  apiKeyHashes(clientId: string): string[] {
    return (this.stmts.listKeys.all(clientId) as unknown as KeyRow[]).map((r) => r.key_hash);
  }

  revokeApiKey(clientId: string, keyId: string): boolean {
    return Number(this.stmts.delKey.run(clientId, keyId).changes) > 0;
  }

  ping(): void {
    if (!this.db.isOpen) throw new Error('the store is closed');
    // A read through SQLite proper, not just the handle: a deleted or
    // corrupted database file fails here.
    this.stmts.ping.get();
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }
}

function toRecord(row: Row): ClientRecord {
  return { clientId: row.client_id, name: row.name, createdAt: row.created_at, rotatedAt: row.rotated_at };
}
