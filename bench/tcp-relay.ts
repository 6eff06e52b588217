import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/** What one direction of a relayed connection does with the bytes it reads. */
type PipeMode = 'flow' | 'stall' | 'blackhole';

/**
 * One direction (src → dst) of a relayed connection. `src` is read only
 * while its bytes can go somewhere: paused while `dst` is over its
 * high-water mark (backpressure) and while stalled; always read when
 * black-holed, so the sender sees a path that takes everything and delivers
 * nothing.
 */
class Pipe {
  mode: PipeMode = 'flow';
  /** Bytes read while stalled (or queued behind those), in order. */
  private held: Buffer[] = [];
  /** `dst` refused the last write; waiting for its 'drain'. */
  private blocked = false;
  private srcEnded = false;
  private endSent = false;

  constructor(
    private readonly src: Socket,
    private readonly dst: Socket,
  ) {
    src.on('data', (chunk: Buffer) => this.onData(chunk));
    src.on('end', () => {
      this.srcEnded = true;
      this.update();
    });
    dst.on('drain', () => {
      this.blocked = false;
      this.update();
    });
    this.update();
  }

  setMode(mode: PipeMode): void {
    if (this.mode === 'blackhole') return; // a dropped NAT mapping does not come back
    this.mode = mode;
    if (mode === 'blackhole') this.held = [];
    this.update();
  }

  private onData(chunk: Buffer): void {
    if (this.mode === 'blackhole') return;
    this.held.push(chunk);
    this.update();
  }

  /** Forwards what it may, then pauses or resumes `src` to match. */
  private update(): void {
    if (this.mode === 'flow') {
      while (!this.blocked && this.held.length > 0 && !this.dst.destroyed) {
        if (!this.dst.write(this.held.shift()!)) this.blocked = true;
      }
      if (this.srcEnded && this.held.length === 0 && !this.endSent && !this.dst.destroyed) {
        this.endSent = true;
        this.dst.end();
      }
    }
    const read = this.mode === 'blackhole' || (this.mode === 'flow' && !this.blocked && this.held.length === 0);
    if (this.src.destroyed) return;
    if (read) this.src.resume();
    else this.src.pause();
  }
}

/** Both directions of one accepted connection and its dialled twin. */
class RelayedConnection {
  private readonly up: Pipe;
  private readonly down: Pipe;
  private blackholed = false;

  constructor(
    private readonly client: Socket,
    private readonly upstream: Socket,
    onGone: () => void,
  ) {
    for (const s of [client, upstream]) s.setNoDelay(true);
    this.up = new Pipe(client, upstream);
    this.down = new Pipe(upstream, client);
    let closed = 0;
    for (const [s, other] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      // A reset or error on one side is passed on as a drop of the other,
      // unless the path is black-holed: then neither side learns anything.
      s.on('error', () => {
        if (!this.blackholed) other.destroy();
      });
      s.on('end', () => {
        if (this.blackholed) s.destroy();
      });
      s.on('close', () => {
        if (!this.blackholed) other.destroy();
        if (++closed === 2) onGone();
      });
    }
  }

  stall(): void {
    this.up.setMode('stall');
    this.down.setMode('stall');
  }

  resume(): void {
    this.up.setMode('flow');
    this.down.setMode('flow');
  }

  blackhole(): void {
    this.blackholed = true;
    this.up.setMode('blackhole');
    this.down.setMode('blackhole');
  }

  drop(): void {
    for (const s of [this.client, this.upstream]) {
      if (s.destroyed) continue;
      // RST rather than FIN: what a middlebox that drops the connection sends.
      if (s.connecting) s.destroy();
      else s.resetAndDestroy();
    }
  }
}

/**
 * A controllable TCP relay on 127.0.0.1 for fault-injection tests: a
 * stand-in for the network path (NAT box, load balancer) between an agent
 * and the server. Importable from tests and from the compiled bench, so it
 * depends on node only.
 *
 * Faults apply to the connections open when they are injected; a
 * connection accepted later is relayed normally (a fresh NAT mapping),
 * which is what lets a peer that gave up on a dead path reconnect through
 * the same relay. Both directions respect backpressure: the source is not
 * read while the destination's buffer is full, so the relay holds at most a
 * socket read per direction.
 */
export class TcpRelay {
  private target: number;
  private readonly conns = new Set<RelayedConnection>();

  private constructor(
    private readonly server: Server,
    targetPort: number,
  ) {
    this.target = targetPort;
  }

  /** Listens on 127.0.0.1, port picked by the OS, relaying to 127.0.0.1:targetPort. */
  static async start(targetPort: number): Promise<TcpRelay> {
    // allowHalfOpen: one side's FIN is forwarded as a FIN, the other
    // direction keeps flowing until its own end.
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
    const relay = new TcpRelay(server, targetPort);
    server.on('connection', (client) => relay.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return relay;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Relayed connections whose sockets are not both closed yet. */
  get connections(): number {
    return this.conns.size;
  }

  /** New connections go to 127.0.0.1:port; existing ones stay where they are. */
  setTarget(port: number): void {
    this.target = port;
  }

  /** Existing connections stop forwarding both ways; bytes are held, not lost. */
  stall(): void {
    for (const c of this.conns) c.stall();
  }

  /** Stalled connections forward what was held, in order, and carry on. */
  resume(): void {
    for (const c of this.conns) c.resume();
  }

  /**
   * Existing connections silently discard every byte both ways from now on,
   * and neither side's FIN or reset reaches the other: a half-open path, as
   * after a NAT box dropped its state. Each side's socket stays open until
   * that side closes it. Cannot be resumed.
   */
  blackhole(): void {
    for (const c of this.conns) c.blackhole();
  }

  /** Resets every relayed connection at once (both sides see ECONNRESET). */
  dropAll(): void {
    for (const c of this.conns) c.drop();
  }

  /** Stops listening and drops every connection. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.dropAll();
    await closed;
  }

  private accept(client: Socket): void {
    const upstream = connect({ port: this.target, host: '127.0.0.1', allowHalfOpen: true });
    const conn = new RelayedConnection(client, upstream, () => this.conns.delete(conn));
    this.conns.add(conn);
  }
}
