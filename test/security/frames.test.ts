import type WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame } from '../../protocol/codec.js';
import { CloseCodes, ErrorCodes } from '../../protocol/error-codes.js';
import { FrameType, type Frame } from '../../protocol/frame-types.js';
import { agentEnv, faultTool, report, steadyLoad } from '../fault/fault-tool.js';
import { Cleanup } from '../helpers/cleanup.js';
import { send } from '../helpers/http-client.js';
import {
  createClient,
  logLines,
  startAgentProcess,
  startServerProcess,
  waitForLog,
  type Child,
  type LogLine,
  type ServerProc,
} from '../helpers/processes.js';
import { clientFrame, fakeServer, helloInfo, rawAgent, rawUpgrade, welcomeFrame, type Creds, type RawAgent } from '../helpers/raw-tunnel.js';
import { startUpstream } from '../helpers/upstream.js';
import { waitUntil, within } from '../helpers/wait.js';

/**
 * Abuse at the frame level, against real processes: hand-made agents flood,
 * garble and half-send frames at a real `postern server`, and a hand-made
 * server does the same to a real `postern agent`. Each abuse closes only the
 * offending connection, with the close code for it and a log line that says
 * why, while a well-behaved agent of another client keeps serving callers
 * (server side), and the attacked agent reconnects and serves (agent side).
 */

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const MiB = 1024 * 1024;
/** Over the default idle-frame budget (10 000 at once). */
const FLOOD = 20_000;
const HEARTBEAT_MS = 1_000;
const HANDSHAKE_TIMEOUT_MS = 1_000;

const f = (frame: Frame): Uint8Array => encodeFrame(frame);
const times = (n: number, frame: (i: number) => Frame): Uint8Array[] => Array.from({ length: n }, (_, i) => f(frame(i)));
const ping = (i: number): Frame => ({ type: FrameType.PING, id: i });
const pong = (i: number): Frame => ({ type: FrameType.PONG, id: 1_000_000 + i });
const req = (streamId: number): Frame => ({ type: FrameType.REQUEST, streamId, method: 'GET', path: '/small', headers: [], endStream: true });
const rst = (streamId: number): Frame => ({ type: FrameType.RESET, streamId, code: ErrorCodes.CANCEL.wire, message: '' });

interface Outcome {
  attack: string;
  closeCode: number;
  logged: string;
}

interface ServerStack {
  server: ServerProc;
  attacker: Creds;
}

/** Waits for the server's line about connection `connectionId` (or, before a handshake, about the attacker's client). */
function serverLine(stack: ServerStack, since: number, match: (o: LogLine) => boolean, count = 1): Promise<LogLine> {
  return waitForLog(stack.server.child, (o) => o.clientId === stack.attacker.clientId && match(o), { since, count, timeoutMs: 10_000 });
}

const disconnected = (raw: RawAgent) => (o: LogLine) => o.msg === 'agent disconnected' && o.connectionId === raw.connectionId;

/** An attack on the server by a connected raw agent: what it sends, the close code and log line it must get. */
interface SessionAttack {
  name: string;
  run: (raw: RawAgent, stack: ServerStack) => Promise<void> | void;
  closeCode: number;
  /** `code` field of the 'agent disconnected' line, and a pattern its `reason` must match. */
  code: string;
  reason: RegExp;
}

const SESSION_ATTACKS: SessionAttack[] = [
  {
    name: `${FLOOD} PINGs (ping flood)`,
    run: (raw) => raw.sendAll(times(FLOOD, ping)),
    closeCode: CloseCodes.FLOOD,
    code: ErrorCodes.FLOOD.code,
    reason: /^flood: .*\d+ PING$/,
  },
  {
    name: `${FLOOD} PONGs that answer no PING`,
    run: (raw) => raw.sendAll(times(FLOOD, pong)),
    closeCode: CloseCodes.FLOOD,
    code: ErrorCodes.FLOOD.code,
    reason: /^flood: .*\d+ PONG that answers no PING/,
  },
  {
    name: `a refused REQUEST, then ${FLOOD} WINDOW_UPDATEs for it`,
    run: (raw) => raw.sendAll([f(req(2)), ...times(FLOOD, () => ({ type: FrameType.WINDOW_UPDATE, streamId: 2, increment: 1 }))]),
    closeCode: CloseCodes.FLOOD,
    code: ErrorCodes.FLOOD.code,
    reason: /^flood: .*\d+ WINDOW_UPDATE for a closed stream/,
  },
  {
    name: `a refused REQUEST, then ${FLOOD} RESETs for it`,
    run: (raw) => raw.sendAll([f(req(2)), ...times(FLOOD, () => rst(2))]),
    closeCode: CloseCodes.FLOOD,
    code: ErrorCodes.FLOOD.code,
    reason: /^flood: .*\d+ RESET for a closed stream/,
  },
  {
    name: `${FLOOD} REQUESTs each reset at once (reset flood, Rapid Reset)`,
    run: (raw) => raw.sendAll(Array.from({ length: FLOOD / 2 }, (_, i) => [f(req(2 * i + 2)), f(rst(2 * i + 2))]).flat()),
    closeCode: CloseCodes.FLOOD,
    code: ErrorCodes.FLOOD.code,
    reason: /^flood: .*REQUEST refused at once/,
  },
  {
    name: `a caller's request answered with a head and ${FLOOD} empty DATA frames`,
    run: async (raw, stack) => {
      // Settles either way: a cut response, or no response at all (the head had not left yet).
      const caller = send(`${stack.server.ingressUrl}/t/${stack.attacker.clientId}/x`, { timeoutMs: 10_000 }).catch((err: Error) => err);
      const isRequest = (fr: Frame): fr is Extract<Frame, { type: typeof FrameType.REQUEST }> => fr.type === FrameType.REQUEST;
      await waitUntil(() => raw.frames.some(isRequest), 'the REQUEST at the raw agent');
      const id = raw.frames.find(isRequest)!.streamId;
      raw.sendAll([f({ type: FrameType.RESPONSE, streamId: id, status: 200, headers: [], endStream: false }), ...times(FLOOD, () => ({ type: FrameType.DATA, streamId: id, data: new Uint8Array(0) }))]);
      // The caller is cut off: never a response that looks complete, never a hang.
      const res = await within(caller, 10_000, "the caller's response");
      if (res instanceof Error) expect(res.message).toMatch(/socket hang up|ECONNRESET/);
      else expect([res.status, res.complete]).toStrictEqual([200, false]);
    },
    closeCode: CloseCodes.FLOOD,
    code: ErrorCodes.FLOOD.code,
    reason: /^flood: .*\d+ empty DATA$/,
  },
  {
    name: 'a garbage binary message',
    run: (raw) => raw.ws.send(Buffer.from('00ff13c1deadbeef', 'hex')),
    closeCode: CloseCodes.TUNNEL_PROTOCOL_ERROR,
    code: ErrorCodes.PROTOCOL.code,
    reason: /^frame is not plain msgpack/,
  },
  {
    name: 'a text message',
    run: (raw) => raw.ws.send('{"type":"PING"}'),
    closeCode: CloseCodes.TUNNEL_PROTOCOL_ERROR,
    code: ErrorCodes.PROTOCOL.code,
    reason: /^text message on the tunnel$/,
  },
  {
    name: 'a frame of 1 MiB + 1 byte (over POSTERN_MAX_FRAME_SIZE)',
    run: (raw) => raw.ws.send(Buffer.alloc(MiB + 1)),
    closeCode: 1009,
    code: ErrorCodes.TUNNEL_LOST.code,
    // The socket error ends the session at once (not when the socket finally closes), naming
    // what the peer did; the 'tunnel socket error' line (checked below) names the limit.
    reason: /socket error: Max payload size exceeded/,
  },
];

async function runSessionAttack(stack: ServerStack, attack: SessionAttack, cleanupRef: Cleanup): Promise<Outcome> {
  const raw = await rawAgent(cleanupRef, `http://127.0.0.1:${stack.server.port}`, stack.attacker);
  const since = Date.now();
  await attack.run(raw, stack);
  const closed = await within(raw.closed, 10_000, `the server to close the connection after ${attack.name}`);
  expect(closed.code, attack.name).toBe(attack.closeCode);
  const line = await serverLine(stack, since, disconnected(raw));
  expect(line.code, attack.name).toBe(attack.code);
  expect(line.reason, attack.name).toMatch(attack.reason);
  return { attack: attack.name, closeCode: closed.code, logged: `agent disconnected: ${String(line.reason)}` };
}

describe('a real server under frame-level abuse from an authenticated agent', () => {
  it("closes each abusive connection with the code for it and a log line that says why, while another client's agent keeps serving", async () => {
    const tool = await startUpstream(faultTool);
    cleanup.add(() => tool.close());
    const server = await startServerProcess(cleanup, {
      env: {
        POSTERN_HEARTBEAT_MS: String(HEARTBEAT_MS),
        POSTERN_HANDSHAKE_TIMEOUT_MS: String(HANDSHAKE_TIMEOUT_MS),
        POSTERN_AGENT_WAIT_MS: '1000',
      },
    });
    const attacker = await createClient(server, 'attacker');
    const bystander = await createClient(server, 'bystander');
    const agentB = await startAgentProcess(cleanup, server, bystander, tool.url, { name: 'agent-b', env: agentEnv, tunnels: 2 });
    const stack: ServerStack = { server, attacker };
    const load = steadyLoad(`${server.ingressUrl}/t/${bystander.clientId}/small`, 10);
    const outcomes: Outcome[] = [];

    for (const attack of SESSION_ATTACKS) outcomes.push(await runSessionAttack(stack, attack, cleanup));

    // The oversized frame also gets its own line from the socket, naming the limit and its value.
    expect(logLines(server.child, (o) => o.msg === 'tunnel socket error' && o.clientId === attacker.clientId)).toContainEqual(
      expect.objectContaining({ err: 'Max payload size exceeded', maxFrameSize: MiB }),
    );

    // Before the handshake: garbage instead of HELLO.
    {
      const since = Date.now();
      const raw = await rawAgent(cleanup, `http://127.0.0.1:${server.port}`, attacker, { handshake: false });
      raw.ws.send(Buffer.from('c1c1c1', 'hex'));
      const closed = await within(raw.closed, 10_000, 'close after a garbage HELLO');
      expect(closed.code).toBe(CloseCodes.HANDSHAKE_FAILED);
      const line = await serverLine(stack, since, (o) => o.msg === 'agent handshake failed');
      expect(line.err).toMatch(/^frame is not plain msgpack/);
      outcomes.push({ attack: 'garbage instead of HELLO', closeCode: closed.code, logged: `agent handshake failed: ${String(line.err)}` });
    }

    // Half-sent handshakes, side by side: WebSocket open and silence; HELLO's first fragment only; half a frame header.
    {
      const since = Date.now();
      const url = `http://127.0.0.1:${server.port}`;
      const hello = f({ type: FrameType.HELLO, ...helloInfo() });
      const silent = await rawUpgrade(cleanup, url, attacker);
      const fragment = await rawUpgrade(cleanup, url, attacker);
      fragment.socket.write(clientFrame(0x2, hello.subarray(0, 10), false));
      const halfHeader = await rawUpgrade(cleanup, url, attacker);
      halfHeader.socket.write(Buffer.from([0x82, 0xfe]));
      const codes = await within(
        Promise.all([silent.closeFrame, fragment.closeFrame, halfHeader.closeFrame]),
        HANDSHAKE_TIMEOUT_MS + 5_000,
        'close frames for the half-sent handshakes',
      );
      expect(codes).toStrictEqual([CloseCodes.HANDSHAKE_FAILED, CloseCodes.HANDSHAKE_FAILED, CloseCodes.HANDSHAKE_FAILED]);
      const line = await serverLine(stack, since, (o) => o.msg === 'agent sent no HELLO in time', 3);
      expect(line.timeoutMs).toBe(HANDSHAKE_TIMEOUT_MS);
      for (const name of ['WebSocket open, no HELLO', "HELLO's first fragment, never the rest", 'half a WebSocket frame header, then silence']) {
        outcomes.push({ attack: name, closeCode: CloseCodes.HANDSHAKE_FAILED, logged: `agent sent no HELLO in time (${HANDSHAKE_TIMEOUT_MS} ms)` });
      }
    }

    // After the handshake: half a frame header, then silence. The heartbeat drops it (no close handshake).
    {
      const since = Date.now();
      const raw = await rawUpgrade(cleanup, `http://127.0.0.1:${server.port}`, attacker);
      raw.socket.write(clientFrame(0x2, f({ type: FrameType.HELLO, ...helloInfo(HEARTBEAT_MS) })));
      const connected = await serverLine(stack, since, (o) => o.msg === 'agent connected');
      raw.socket.write(Buffer.from([0x82, 0xfe, 0x01]));
      await within(raw.ended, 2 * HEARTBEAT_MS + 5_000, 'the server to drop the silent connection');
      const line = await serverLine(stack, since, (o) => o.msg === 'agent disconnected' && o.connectionId === connected.connectionId);
      expect(line.code).toBe(ErrorCodes.HEARTBEAT_TIMEOUT.code);
      outcomes.push({ attack: 'after WELCOME: half a frame header, then silence', closeCode: 1006, logged: `agent disconnected: ${String(line.reason)}` });
    }

    const { results, errors } = await load.stop();
    expect(errors).toStrictEqual([]);
    expect(results.length).toBeGreaterThan(20);
    expect(results.filter((r) => r.status !== 200 || r.body.toString() !== 'ok')).toStrictEqual([]);
    // The bystander's tunnels never dropped.
    expect(logLines(server.child, (o) => o.msg === 'agent disconnected' && o.clientId === bystander.clientId)).toStrictEqual([]);
    expect(logLines(agentB, (o) => o.msg === 'tunnel down, reconnecting')).toStrictEqual([]);
    expect(server.child.exitInfo).toBeUndefined();
    printTable('server', outcomes, `bystander served ${results.length} requests throughout, all 200`);
  });
});

// ---- the agent side: a malicious server --------------------------------------

interface AgentAttack {
  name: string;
  /** Plays the server on one connection after its HELLO. */
  play: (ws: WebSocket) => void;
  closeCode: number;
  /** What the agent's 'tunnel down, reconnecting' line must give as the reason. */
  reason: RegExp;
}

const welcomeThen = (...messages: (Uint8Array | string)[]) => (ws: WebSocket) => {
  ws.send(welcomeFrame('evil'));
  for (const m of messages) ws.send(m);
};

const AGENT_ATTACKS: AgentAttack[] = [
  { name: 'garbage instead of WELCOME', play: (ws) => ws.send(Buffer.from('c1', 'hex')), closeCode: CloseCodes.HANDSHAKE_FAILED, reason: /^handshake failed: frame is not plain msgpack/ },
  { name: 'a garbage binary message', play: welcomeThen(Buffer.from('dd ffffffff 00'.replace(/ /g, ''), 'hex')), closeCode: CloseCodes.TUNNEL_PROTOCOL_ERROR, reason: /^frame is not plain msgpack/ },
  { name: 'a text message', play: welcomeThen('hello'), closeCode: CloseCodes.TUNNEL_PROTOCOL_ERROR, reason: /^text message on the tunnel$/ },
  { name: `${FLOOD} PINGs (ping flood)`, play: welcomeThen(...times(FLOOD, ping)), closeCode: CloseCodes.FLOOD, reason: /^flood: .*\d+ PING$/ },
  {
    // Only the RESETs count here (a REQUEST is work), and the budget refills while the agent works through them.
    name: `${FLOOD} REQUESTs each reset at once (Rapid Reset)`,
    play: welcomeThen(...Array.from({ length: FLOOD }, (_, i) => [f(req(2 * i + 1)), f(rst(2 * i + 1))]).flat()),
    closeCode: CloseCodes.FLOOD,
    reason: /^flood: .*REQUEST reset by its sender before the answer/,
  },
  {
    name: `a REQUEST, then ${FLOOD} empty DATA frames on it`,
    play: welcomeThen(
      f({ type: FrameType.REQUEST, streamId: 1, method: 'POST', path: '/slow?ms=5000', headers: [], endStream: false }),
      ...times(FLOOD, () => ({ type: FrameType.DATA, streamId: 1, data: new Uint8Array(0) })),
    ),
    closeCode: CloseCodes.FLOOD,
    reason: /^flood: .*\d+ empty DATA$/,
  },
  { name: 'a frame of 1 MiB + 1 byte', play: welcomeThen(Buffer.alloc(MiB + 1)), closeCode: 1009, reason: /^Max payload size exceeded$/ },
];

/** After the attacks, an honest server: one GET through the agent to the tool. */
function honest(ws: WebSocket, answered: (frames: Frame[]) => void): void {
  const frames: Frame[] = [];
  ws.on('message', (data: Buffer) => {
    const frame = decodeFrame(data, 64 * MiB);
    if (frame.type === FrameType.PING) ws.send(f({ type: FrameType.PONG, id: frame.id }));
    frames.push(frame);
    if (frame.type === FrameType.END || (frame.type === FrameType.RESPONSE && frame.endStream)) answered(frames);
  });
  ws.send(welcomeFrame('honest'));
  ws.send(f(req(1)));
}

describe('a real agent under frame-level abuse from a malicious server', () => {
  it('closes the tunnel with the code for it, logs why, reconnects, and serves an honest server after', async () => {
    const tool = await startUpstream(faultTool);
    cleanup.add(() => tool.close());
    let answered!: (frames: Frame[]) => void;
    const answer = new Promise<Frame[]>((resolve) => (answered = resolve));
    const fake = await fakeServer(cleanup, (ws, n) => {
      const attack = AGENT_ATTACKS[n];
      if (attack) attack.play(ws);
      else if (n === AGENT_ATTACKS.length) honest(ws, answered);
    });
    // The agent dials the fake server: startAgentProcess needs no real server when proxyUrl is given.
    const noServer = { port: 0 } as unknown as ServerProc;
    const agent: Child = await startAgentProcess(cleanup, noServer, { clientId: 'victim', clientToken: 'not-checked' }, tool.url, {
      name: 'agent',
      proxyUrl: fake.url,
      tunnels: 0,
      env: { POSTERN_CONNECTIONS: '1', POSTERN_RECONNECT_BASE_MS: '50', POSTERN_RECONNECT_MAX_MS: '200', POSTERN_AUDIT_LOG: 'off' },
    });

    const outcomes: Outcome[] = [];
    for (const [n, attack] of AGENT_ATTACKS.entries()) {
      const closed = await within(
        (async () => {
          await waitUntil(() => fake.closes.length > n, `connection ${n + 1} from the agent`, 15_000);
          return fake.closes[n]!;
        })(),
        20_000,
        `the agent to close the tunnel after ${attack.name}`,
      );
      expect(closed.code, attack.name).toBe(attack.closeCode);
      const line = await waitForLog(agent, (o) => o.msg === 'tunnel down, reconnecting', { count: n + 1, timeoutMs: 10_000 });
      expect(line.reason, attack.name).toMatch(attack.reason);
      outcomes.push({ attack: attack.name, closeCode: closed.code, logged: `tunnel down, reconnecting: ${String(line.reason)}` });
    }

    const frames = await within(answer, 15_000, 'the agent to answer an honest server');
    const head = frames.find((fr) => fr.type === FrameType.RESPONSE);
    expect(head).toMatchObject({ type: FrameType.RESPONSE, streamId: 1, status: 200 });
    const body = Buffer.concat(frames.flatMap((fr) => (fr.type === FrameType.DATA ? [fr.data] : []))).toString();
    expect(body).toBe('ok');
    expect(agent.exitInfo).toBeUndefined();
    printTable('agent', outcomes, 'then served GET /small from an honest server: 200 "ok"; the agent process never exited');
  });
});

function printTable(side: string, rows: Outcome[], footer: string): void {
  report(`frame abuse against the ${side}:`);
  const short = (s: string): string => s.replace(/flood: the peer sent more frames that do no work than allowed \([^)]*\)/, 'flood');
  for (const r of rows) report(`  ${r.attack.padEnd(66)} close ${String(r.closeCode).padEnd(5)} ${short(r.logged)}`);
  report(`  ${footer}`);
}
