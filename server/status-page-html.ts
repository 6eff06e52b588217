import { summarize, type ClientStatus, type ConnectionStatus, type ServerStatus } from './server-status.js';
import { formatBytes } from './human-units.js';

/**
 * The status page's HTML (`/ui` on the private listener), rendered from
 * `serverStatus()`: pure functions, no I/O. Every interpolated value goes
 * through the `html` tag, which escapes it: client names come from API
 * callers and must never become markup.
 */

/** HTML that is already escaped (made only by the `html` tag). */
export class SafeHtml {
  constructor(readonly value: string) {}

  toString(): string {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for an element body or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ESCAPES[ch]!);
}

function interpolate(value: unknown): string {
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return value.map(interpolate).join('');
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(String(value));
}

/**
 * Template tag: the literal parts are trusted markup, every `${value}` is
 * escaped unless it is SafeHtml (arrays are joined, null/undefined/false
 * render nothing).
 */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += interpolate(values[i]) + strings[i + 1]!;
  return new SafeHtml(out);
}

/**
 * Why a client is degraded or offline, in words, for the page; empty when
 * it is connected. The health itself is `ClientStatus.health`
 * (`clientHealth()` in server-status.ts), the same as in `postern status`.
 */
export function healthReasons(client: ClientStatus): string[] {
  if (client.health === 'offline') {
    return [client.connections.length === 0 ? 'no agent connected' : 'every connection is draining'];
  }
  const reasons: string[] = [];
  const draining = client.connections.filter((c) => c.draining).length;
  if (draining > 0) reasons.push(`${draining} ${plural(draining, 'connection')} draining`);
  if (client.failuresLastMinute > 0) {
    reasons.push(`${client.failuresLastMinute} failed ${plural(client.failuresLastMinute, 'request')} in the last minute`);
  }
  return reasons;
}

function plural(n: number, word: string): string {
  return n === 1 ? word : `${word}s`;
}


/** `42s`, `3m 07s`, `5h 02m`, `2d 03h`; `?` for a time that is not a number. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.floor(seconds));
  const pad = (n: number): string => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d ${pad(Math.floor((s % 86_400) / 3600))}h`;
}

/** `2025-06-01 12:00:00 UTC` from an ISO time (anything else as it is). */
export function formatTime(iso: string): string {
  return iso.replace(/^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?Z$/, '$1 $2 UTC');
}

function ago(iso: string, now: number): SafeHtml {
  const seconds = (now - Date.parse(iso)) / 1000;
  return html`<time datetime="${iso}" title="${iso}">${formatDuration(seconds)} ago</time>`;
}

function rtt(ms: number): SafeHtml {
  // 0 until the first heartbeat is answered: not a measurement.
  if (ms <= 0) return html`<span class="muted" title="no heartbeat answered yet">–</span>`;
  return html`${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}

function connectionRow(conn: ConnectionStatus, now: number): SafeHtml {
  const state = conn.draining ? 'draining' : 'connected';
  return html`<tr data-connection-id="${conn.connectionId}" data-state="${state}">
<td><code>${conn.connectionId}</code></td>
<td><span class="badge ${state}">${state}</span></td>
<td>${conn.agentVersion}</td>
<td><code>${conn.remoteAddress}</code></td>
<td>${ago(conn.connectedSince, now)}</td>
<td class="num">${rtt(conn.rttMs)}</td>
<td class="num">${conn.streams}</td>
<td class="num">${formatBytes(conn.bytesIn)}</td>
<td class="num">${formatBytes(conn.bytesOut)}</td>
</tr>`;
}

function connectionsTable(client: ClientStatus, now: number): SafeHtml {
  if (client.connections.length === 0) return html`<p class="none">No agent connected.</p>`;
  return html`<table>
<thead><tr><th>Connection</th><th>State</th><th>Agent</th><th>Remote address</th><th>Connected</th><th class="num">RTT</th><th class="num">Streams</th><th class="num">Bytes in</th><th class="num">Bytes out</th></tr></thead>
<tbody>${client.connections.map((c) => connectionRow(c, now))}</tbody>
</table>`;
}

function clientSection(client: ClientStatus, now: number): SafeHtml {
  const health = client.health;
  const reasons = healthReasons(client);
  const n = client.connections.length;
  return html`<section class="client ${health}" data-client-id="${client.clientId}" data-health="${health}">
<header>
<h2>${client.name}</h2>
<code class="id">${client.clientId}</code>
<span class="badge ${health}">${health}</span>
${reasons.length > 0 ? html`<span class="reasons">${reasons.join('; ')}</span>` : ''}
</header>
<dl>
<div><dt>Connections</dt><dd>${n}</dd></div>
<div><dt>Streams in flight</dt><dd>${client.streamsInFlight}</dd></div>
<div><dt>Requests / last min</dt><dd>${client.requestsLastMinute}</dd></div>
<div><dt>Errors / last min</dt><dd class="${client.failuresLastMinute > 0 ? 'bad' : ''}">${client.errorsLastMinute}</dd></div>
<div><dt>Requests (total)</dt><dd>${client.requests}</dd></div>
<div><dt>Bytes in / out</dt><dd>${formatBytes(client.bytesIn)} / ${formatBytes(client.bytesOut)}</dd></div>
<div><dt>Last error</dt><dd>${client.lastError === null ? html`<span class="muted">none</span>` : html`<code>${client.lastError}</code>`}</dd></div>
</dl>
${connectionsTable(client, now)}
</section>`;
}

/**
 * The live part of the page (`/ui/fragment`, swapped in every refresh):
 * the server line, the summary and one section per client.
 */
export function renderStatusFragment(status: ServerStatus, now = Date.now()): SafeHtml {
  const s = summarize(status);
  const total = status.clients.length;
  const server = html`<p class="server">Postern <strong>${status.version}</strong> · up <strong>${formatDuration(status.uptimeSeconds)}</strong> (since <time datetime="${status.startedAt}">${formatTime(status.startedAt)}</time>)</p>`;
  if (total === 0) {
    return html`${server}
<p class="summary" data-summary="empty">No clients yet.</p>
<p class="none">Create one with <code>postern client create --name &lt;name&gt;</code> (or <code>POST /v1/clients</code>), then start its agent.</p>`;
  }
  const online = s.connected + s.degraded;
  return html`${server}
<p class="summary" data-connected="${online}" data-offline="${s.offline}"><strong>${total} ${plural(total, 'client')}</strong>: <span class="connected">${online} connected</span>${s.degraded > 0 ? html` (<span class="degraded">${s.degraded} degraded</span>)` : ''}, <span class="${s.offline > 0 ? 'offline' : ''}">${s.offline} offline</span> · ${s.connections} ${plural(s.connections, 'connection')} · ${s.streams} ${plural(s.streams, 'stream')} in flight</p>
${status.clients.map((c) => clientSection(c, now))}`;
}

export interface PageRenderOptions {
  /** The CSP nonce of this response's inline style and script. */
  nonce: string;
  /** How often the script fetches the fragment, ms. */
  refreshMs: number;
  /** Full-page reload period without JavaScript (`<noscript>` meta refresh), seconds. */
  noscriptRefreshSeconds: number;
  now?: number;
}

/**
 * The whole page: the fragment plus inline style, an inline script that
 * swaps in `<this path>/fragment` every `refreshMs`, and a `<noscript>`
 * meta refresh. Nothing is loaded from anywhere else.
 */
export function renderStatusPage(status: ServerStatus, opts: PageRenderOptions): string {
  const now = opts.now ?? Date.now();
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Postern status</title>
<noscript><meta http-equiv="refresh" content="${opts.noscriptRefreshSeconds}"></noscript>
<style nonce="${opts.nonce}">${new SafeHtml(STYLE)}</style>
</head>
<body data-refresh-ms="${opts.refreshMs}">
<div class="top">
<h1>Postern status</h1>
<p id="live" class="live" role="status" aria-live="polite">Updated <time datetime="${new Date(now).toISOString()}">${formatTime(new Date(now).toISOString())}</time><noscript> · reloads every ${opts.noscriptRefreshSeconds} s</noscript></p>
</div>
<main id="status">${renderStatusFragment(status, now)}</main>
<script nonce="${opts.nonce}">${new SafeHtml(SCRIPT)}</script>
</body>
</html>
`.value;
}

/** Plain text: system fonts only (no web fonts), light and dark. */
const STYLE = `
:root{color-scheme:light dark;--fg:#1b1f24;--muted:#6a737d;--bg:#f6f8fa;--card:#fff;--line:#d8dee4;--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#8d96a0;--bg:#0d1117;--card:#161b22;--line:#30363d;--ok:#3fb950;--warn:#d29922;--bad:#f85149}}
*{box-sizing:border-box}
body{margin:0;padding:16px 24px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",Arial,sans-serif;color:var(--fg);background:var(--bg)}
code,.id{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px}
h1{font-size:20px;margin:0}
h2{font-size:16px;margin:0;overflow-wrap:anywhere}
.top{display:flex;flex-wrap:wrap;align-items:baseline;gap:8px 16px;justify-content:space-between}
.live{margin:0;color:var(--muted)}
body.disconnected .live{color:#fff;background:var(--bad);padding:2px 10px;border-radius:4px;font-weight:600}
body.disconnected main{opacity:.55}
.server,.summary{margin:8px 0}
.muted,.none{color:var(--muted)}
.client{background:var(--card);border:1px solid var(--line);border-left:4px solid var(--ok);border-radius:6px;padding:12px 14px;margin:12px 0}
.client.degraded{border-left-color:var(--warn)}
.client.offline{border-left-color:var(--bad)}
.client header{display:flex;flex-wrap:wrap;align-items:center;gap:6px 12px}
.client .id{color:var(--muted)}
.reasons{color:var(--warn)}
.client.offline .reasons{color:var(--bad)}
.badge{display:inline-block;padding:0 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;background:var(--ok)}
.badge.degraded,.badge.draining{background:var(--warn)}
.badge.offline{background:var(--bad)}
.summary .connected{color:var(--ok)}.summary .degraded{color:var(--warn)}.summary .offline{color:var(--bad)}
dl{display:flex;flex-wrap:wrap;gap:4px 24px;margin:10px 0}
dl div{min-width:110px}
dt{color:var(--muted);font-size:12px}
dd{margin:0;font-variant-numeric:tabular-nums}
dd.bad{color:var(--bad);font-weight:600}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{text-align:left;padding:4px 8px;border-top:1px solid var(--line);white-space:nowrap}
th{color:var(--muted);font-weight:600;font-size:12px}
.num{text-align:right}
.none{margin:6px 0 0}
`;

/**
 * Refreshes the page in place: fetches `<path>/fragment` (Basic credentials
 * are resent by the browser), swaps it into <main>, keeps the scroll
 * position; on failure says so and keeps retrying. One fetch at a time.
 * Holds no secret: the browser owns the credentials.
 */
const SCRIPT = `
(() => {
  const main = document.getElementById('status');
  const live = document.getElementById('live');
  const every = Number(document.body.dataset.refreshMs) || 2000;
  const url = location.pathname.replace(/\\/+$/, '') + '/fragment';
  let lastOk = Date.now();
  const clock = (t) => new Date(t).toLocaleTimeString();
  const show = (ok, text) => {
    document.body.classList.toggle('disconnected', !ok);
    live.textContent = text;
  };
  async function refresh() {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), Math.max(2 * every, 5000));
    try {
      const res = await fetch(url, { cache: 'no-store', credentials: 'same-origin', signal: abort.signal });
      if (!res.ok) throw new Error(res.status === 401 ? 'not authorized: reload to log in' : 'HTTP ' + res.status);
      const text = await res.text();
      const x = window.scrollX, y = window.scrollY;
      main.innerHTML = text;
      window.scrollTo(x, y);
      lastOk = Date.now();
      show(true, 'Live · last updated ' + clock(lastOk));
    } catch (err) {
      const why = err && err.name === 'AbortError' ? 'timed out' : (err && err.message) || 'network error';
      show(false, 'Disconnected from server (' + why + ') · last updated ' + clock(lastOk) + ' · retrying');
    } finally {
      clearTimeout(timer);
      setTimeout(refresh, every);
    }
  }
  show(true, 'Live · last updated ' + clock(lastOk));
  setTimeout(refresh, every);
})();
`;
