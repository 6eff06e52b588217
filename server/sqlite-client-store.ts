import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { customAlphabet } from 'nanoid';
import type { ClientRecord, ClientStore } from './client-store.js';
import { generateToken, hashToken, tokenMatches } from './secrets.js';

/**
 * Client ids: 22 letters and digits (~131 bits). No '-' or '_': an id that
 * starts with '-' reads as an option to `postern status <id>` and other CLIs,
 * and the id appears in URLs, shell lines and logs.
 */
const newClientId = customAlphabet('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', 22);

interface Row {
  client_id: string;
  name: string;
  token_hash: string;
  created_at: string;
  rotated_at: string | null;
}

/**
 * ClientStore on node:sqlite (built into Node 22.13+/24, no native addon),
 * one file `postern.db` in the data directory. Only token hashes are stored.
 */
export class SqliteClientStore implements ClientStore {
  private readonly db: DatabaseSync;
  private readonly stmts: {
    insert: StatementSync;
    list: StatementSync;
    get: StatementSync;
    del: StatementSync;
    rotate: StatementSync;
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
    `);
    this.stmts = {
      insert: this.db.prepare('INSERT INTO clients (client_id, name, token_hash, created_at) VALUES (?, ?, ?, ?)'),
      list: this.db.prepare('SELECT * FROM clients ORDER BY created_at, client_id'),
      get: this.db.prepare('SELECT * FROM clients WHERE client_id = ?'),
      del: this.db.prepare('DELETE FROM clients WHERE client_id = ?'),
      rotate: this.db.prepare('UPDATE clients SET token_hash = ?, rotated_at = ? WHERE client_id = ?'),
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
    return Number(this.stmts.del.run(clientId).changes) > 0;
  }

  rotate(clientId: string): string | undefined {
    const token = generateToken();
    const changed = Number(this.stmts.rotate.run(hashToken(token), new Date().toISOString(), clientId).changes);
    return changed > 0 ? token : undefined;
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }
}

function toRecord(row: Row): ClientRecord {
  return { clientId: row.client_id, name: row.name, createdAt: row.created_at, rotatedAt: row.rotated_at };
}
