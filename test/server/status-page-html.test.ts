import { describe, expect, it } from 'vitest';
import { formatBytes } from '../../server/human-units.js';
import { clientHealth, summarize, type ClientStatus, type ConnectionStatus, type ServerStatus } from '../../server/server-status.js';
import {
  escapeHtml,
  formatDuration,
  formatTime,
  healthReasons,
  html,
  renderStatusFragment,
  renderStatusPage,
} from '../../server/status-page-html.js';

const NOW = Date.parse('2025-06-01T12:00:00.000Z');

function conn(overrides: Partial<ConnectionStatus> = {}): ConnectionStatus {
  return {
    connectionId: 'conn-1',
    remoteAddress: '203.0.113.7',
    agentVersion: '0.1.0',
    connectedSince: '2025-06-01T11:57:53.000Z',
    rttMs: 1.25,
    streams: 2,
    draining: false,
    bytesIn: 2048,
    bytesOut: 1_572_864,
    ...overrides,
  };
}

/** A client as serverStatus() makes it: `connected` and `health` follow from the rest. */
function client(overrides: Partial<Omit<ClientStatus, 'connected' | 'health'>> = {}): ClientStatus {
  const connections = overrides.connections ?? [conn()];
  const failuresLastMinute = overrides.failuresLastMinute ?? 0;
  return {
    clientId: 'client-1',
    name: 'acme-gitlab',
    connected: connections.some((c) => !c.draining),
    health: clientHealth({ connections, failuresLastMinute }),
    connections,
    streamsInFlight: 2,
    requests: 120,
    errors: 0,
    requestsLastMinute: 17,
    errorsLastMinute: 0,
    failuresLastMinute: 0,
    bytesIn: 4096,
    bytesOut: 9000,
    lastError: null,
    ...overrides,
  };
}

function status(clients: ClientStatus[]): ServerStatus {
  return { version: '0.1.0', startedAt: '2025-06-01T10:00:00.000Z', uptimeSeconds: 7200, clients };
}

/** The data-health of each client section, in order. */
function healthOf(markup: string): string[] {
  return [...markup.matchAll(/<section [^>]*data-health="([^"]*)"/g)].map((m) => m[1]!);
}

const PAGE = { nonce: 'bm9uY2Utb2YtdGVzdA==', refreshMs: 2000, noscriptRefreshSeconds: 5, now: NOW };

describe('escaping', () => {
  it('escapes the five characters that matter in element bodies and quoted attributes', () => {
    expect(escapeHtml(`<a href="x" title='y'>&amp;</a>`)).toBe('&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;');
  });

  it('the html tag escapes every interpolated value but not nested html or the template itself', () => {
    const inner = html`<b>${'<i>'}</b>`;
    expect(html`<p title="${'"x"'}">${inner}${['<', html`<br>`]}${null}${undefined}${false}${0}</p>`.value).toBe(
      '<p title="&quot;x&quot;"><b>&lt;i&gt;</b>&lt;<br>0</p>',
    );
  });

  it('renders hostile values in every string field as text: no element, no attribute break-out', () => {
    const evil = `<script>alert(1)</script>"' onmouseover="alert(2)" &amp; </td></table>`;
    const hostile = client({
      clientId: evil,
      name: evil,
      lastError: evil,
      errorsLastMinute: 1,
      connections: [conn({ connectionId: evil, remoteAddress: evil, agentVersion: evil, connectedSince: evil })],
    });
    const s = { ...status([hostile]), version: evil, startedAt: evil };
    for (const out of [renderStatusFragment(s, NOW).value, renderStatusPage(s, PAGE)]) {
      expect(out).not.toContain('<script>alert');
      expect(out).not.toContain('" onmouseover');
      expect(out).not.toContain("' onmouseover");
      expect(out).not.toContain('</td></table>');
      // The raw text survives, escaped, in each place it was put.
      const escaped = escapeHtml(evil);
      expect(out.split(escaped).length - 1).toBeGreaterThanOrEqual(9);
    }
    // The page's only script element is its own.
    const page = renderStatusPage(s, PAGE);
    expect(page.match(/<script/g)).toHaveLength(1);
    expect(page).toContain(`<script nonce="${PAGE.nonce}">`);
  });

  it('keeps a name with quotes and ampersands readable', () => {
    const out = renderStatusFragment(status([client({ name: `Tom & Jerry's "lab"` })]), NOW).value;
    expect(out).toContain('<h2>Tom &amp; Jerry&#39;s &quot;lab&quot;</h2>');
  });
});

describe('health as shown', () => {
  const shown = (c: ClientStatus): [string, string[]] => [c.health, healthReasons(c)];

  it('connected: a live connection and no failed request in the last minute', () => {
    expect(shown(client())).toEqual(['connected', []]);
  });

  it('degraded: some connection draining', () => {
    expect(shown(client({ connections: [conn(), conn({ connectionId: 'conn-2', draining: true })] }))).toEqual([
      'degraded',
      ['1 connection draining'],
    ]);
  });

  it('degraded: requests failed in the last minute on our or the tool\'s side; older failures and the caller\'s own errors do not count', () => {
    expect(shown(client({ errors: 50, errorsLastMinute: 3, failuresLastMinute: 3 }))).toEqual(['degraded', ['3 failed requests in the last minute']]);
    expect(shown(client({ errors: 50, errorsLastMinute: 0, lastError: 'upstream_unreachable' }))).toEqual(['connected', []]);
    // Policy denials, wrong API keys: errors, but the caller's.
    expect(shown(client({ errors: 5, errorsLastMinute: 5, failuresLastMinute: 0, lastError: 'forbidden_by_agent' }))).toEqual(['connected', []]);
  });

  it('offline: no connection, or only draining ones', () => {
    expect(shown(client({ connections: [] }))).toEqual(['offline', ['no agent connected']]);
    expect(shown(client({ connections: [conn({ draining: true })] }))).toEqual(['offline', ['every connection is draining']]);
  });

  it('renders the state as the section class, data-health and badge, with the reasons', () => {
    const out = renderStatusFragment(status([client({ clientId: 'x', errorsLastMinute: 1, failuresLastMinute: 1 })]), NOW).value;
    expect(out).toContain('<section class="client degraded" data-client-id="x" data-health="degraded">');
    expect(out).toContain('<span class="badge degraded">degraded</span>');
    expect(out).toContain('<span class="reasons">1 failed request in the last minute</span>');
  });
});

describe('renderStatusFragment', () => {
  const mixed = status([
    client({ clientId: 'c-ok', name: 'acme-gitlab', connections: [conn({ connectionId: 'a1' }), conn({ connectionId: 'a2', rttMs: 0 })] }),
    client({
      clientId: 'c-deg',
      name: 'globex-jira',
      connections: [conn({ connectionId: 'b1' }), conn({ connectionId: 'b2', draining: true })],
      errorsLastMinute: 2,
      failuresLastMinute: 2,
      lastError: 'upstream_unreachable',
    }),
    client({ clientId: 'c-off', name: 'initech-jenkins', connections: [], streamsInFlight: 0 }),
  ]);

  it('shows each client with its health, connections and counters', () => {
    const out = renderStatusFragment(mixed, NOW).value;
    expect(healthOf(out)).toEqual(['connected', 'degraded', 'offline']);
    expect(out).toContain('Postern <strong>0.1.0</strong> · up <strong>2h 00m</strong> (since <time datetime="2025-06-01T10:00:00.000Z">2025-06-01 10:00:00 UTC</time>)');
    // Summary: degraded clients are connected ones.
    expect(out).toContain('data-connected="2" data-offline="1"');
    expect(out).toMatch(/3 clients<\/strong>: <span class="connected">2 connected<\/span> \(<span class="degraded">1 degraded<\/span>\)/);
    expect(out).toContain('4 connections · 4 streams in flight');
    // Connection rows: state, agent, remote, age, RTT, streams, bytes.
    expect(out.match(/<tr data-connection-id=/g)).toHaveLength(4);
    expect(out).toContain('<tr data-connection-id="b2" data-state="draining">');
    expect(out).toContain('<code>203.0.113.7</code>');
    expect(out).toContain('>2m 07s ago</time>');
    expect(out).toContain('1.3 ms');
    expect(out).toContain('title="no heartbeat answered yet"');
    expect(out).toContain('2.0 KiB');
    expect(out).toContain('1.5 MiB');
    // Client counters and reasons.
    expect(out).toContain('<dt>Requests / last min</dt><dd>17</dd>');
    expect(out).toContain('<dt>Errors / last min</dt><dd class="bad">2</dd>');
    expect(out).toContain('<code>upstream_unreachable</code>');
    expect(out).toContain('1 connection draining; 2 failed requests in the last minute');
    expect(out).toContain('No agent connected.');
  });

  it('says so when there are no clients', () => {
    const out = renderStatusFragment(status([]), NOW).value;
    expect(out).toContain('No clients yet.');
    expect(out).toContain('postern client create --name &lt;name&gt;');
    expect(out).not.toContain('<section');
    expect(summarize(status([]))).toEqual({ connected: 0, degraded: 0, offline: 0, connections: 0, streams: 0 });
  });
});

describe('renderStatusPage', () => {
  it('is self-contained: nonce on its inline style and script, no URL to load, a noscript refresh', () => {
    const page = renderStatusPage(status([client()]), PAGE);
    expect(page.startsWith('<!doctype html>')).toBe(true);
    expect(page).toContain(`<style nonce="${PAGE.nonce}">`);
    expect(page).toContain('<noscript><meta http-equiv="refresh" content="5"></noscript>');
    expect(page).toContain('data-refresh-ms="2000"');
    expect(page).toContain('<main id="status">');
    // Nothing to fetch: no src/href/url()/@import, no other origin.
    expect(page).not.toMatch(/\s(src|href|action)=/i);
    expect(page).not.toMatch(/url\(|@import|https?:\/\//i);
    expect(page).toContain(`/fragment'`);
  });
});

describe('formatting', () => {
  it('formats durations and byte counts', () => {
    expect([0, 59, 60, 187, 3600, 7260, 86_400 * 2 + 3 * 3600, -5, Number.NaN].map(formatDuration)).toEqual([
      '0s',
      '59s',
      '1m 00s',
      '3m 07s',
      '1h 00m',
      '2h 01m',
      '2d 03h',
      '0s',
      '?',
    ]);
    expect(formatTime('2025-06-01T12:00:00.123Z')).toBe('2025-06-01 12:00:00 UTC');
    expect(formatTime('not a time')).toBe('not a time');
    expect([0, 1023, 1024, 1_572_864, 5 * 1024 ** 4].map(formatBytes)).toEqual(['0 B', '1023 B', '1.0 KiB', '1.5 MiB', '5.0 TiB']);
  });
});
