import type { AgentConnection } from './agent-connection.js';

/**
 * Which agent connections each client has. In-process; cluster mode would
 * put a Redis-backed implementation behind the same methods.
 */
export class TunnelRegistry {
  private readonly byClient = new Map<string, Set<AgentConnection>>();
  private readonly waiters = new Map<string, Set<(conn: AgentConnection) => void>>();
  private picks = 0;

  add(conn: AgentConnection): void {
    let set = this.byClient.get(conn.clientId);
    if (!set) this.byClient.set(conn.clientId, (set = new Set()));
    set.add(conn);
    const waiting = this.waiters.get(conn.clientId);
    if (waiting) {
      this.waiters.delete(conn.clientId);
      for (const wake of waiting) wake(conn);
    }
  }

  remove(conn: AgentConnection): void {
    const set = this.byClient.get(conn.clientId);
    if (!set) return;
    set.delete(conn);
    if (set.size === 0) this.byClient.delete(conn.clientId);
  }

  /** Whether the client has any connection (no copy: the ingress asks per request). */
  has(clientId: string): boolean {
    return this.byClient.has(clientId);
  }

  /** Connections of a client (live or draining). */
  connections(clientId: string): AgentConnection[] {
    return [...(this.byClient.get(clientId) ?? [])];
  }

  /** How many connections each client with any has (for a metrics scrape; no array of connections is built). */
  *countsByClient(): Generator<[clientId: string, connections: number]> {
    for (const [clientId, set] of this.byClient) yield [clientId, set.size];
  }

  all(): AgentConnection[] {
    const out: AgentConnection[] = [];
    for (const set of this.byClient.values()) out.push(...set);
    return out;
  }

  /**
   * The live, non-draining connection with the fewest open streams; among
   * equals, the one picked longest ago. Without the tie-break, requests
   * sent one after another (never two open at once) would all go to the
   * same tunnel, and its siblings would sit idle until the first failed.
   */
  pick(clientId: string, exclude?: AgentConnection): AgentConnection | undefined {
    let best: AgentConnection | undefined;
    for (const conn of this.byClient.get(clientId) ?? []) {
      if (conn === exclude || conn.session.closed || conn.session.goingAway) continue;
      if (
        !best ||
        conn.session.activeStreams < best.session.activeStreams ||
        (conn.session.activeStreams === best.session.activeStreams && conn.lastPick < best.lastPick)
      ) {
        best = conn;
      }
    }
    if (best) best.lastPick = ++this.picks;
    return best;
  }

  /**
   * Resolves with a usable connection as soon as one exists, or undefined
   * after `timeoutMs` or when `signal` aborts.
   */
  waitFor(clientId: string, timeoutMs: number, signal?: AbortSignal): Promise<AgentConnection | undefined> {
    const now = this.pick(clientId);
    if (now || timeoutMs <= 0 || signal?.aborted) return Promise.resolve(now);
    return new Promise((resolve) => {
      let set = this.waiters.get(clientId);
      if (!set) this.waiters.set(clientId, (set = new Set()));
      const done = (conn: AgentConnection | undefined): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        set.delete(wake);
        if (set.size === 0 && this.waiters.get(clientId) === set) this.waiters.delete(clientId);
        resolve(conn);
      };
      const wake = (conn: AgentConnection): void => done(conn);
      const onAbort = (): void => done(undefined);
      const timer = setTimeout(() => done(this.pick(clientId)), timeoutMs);
      set.add(wake);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Closes every connection of a client (revoke, rotate). */
  closeClient(clientId: string, code: number, reason: string): number {
    const conns = this.connections(clientId);
    for (const conn of conns) conn.close(code, reason);
    return conns.length;
  }
}
