import type { TunnelSession } from '../protocol/tunnel-session.js';

/** One live agent tunnel as the server sees it. */
export interface AgentConnection {
  /** Server-assigned id, sent to the agent in WELCOME. */
  readonly id: string;
  readonly clientId: string;
  readonly session: TunnelSession;
  readonly remoteAddress: string;
  readonly agentVersion: string;
  /** ISO time the handshake completed. */
  readonly connectedAt: string;
  /** When the registry last gave it a request (its pick sequence number): ties go to the longest unused. */
  lastPick: number;
  /** Closes the tunnel with a WebSocket close code. */
  close(code: number, reason: string): void;
}
