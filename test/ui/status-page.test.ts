import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page, type Response } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { STATUS_PAGE_CHALLENGE } from '../../server/status-page.js';
import { Cleanup } from '../helpers/cleanup.js';
import { send, sendJson, type SendResult } from '../helpers/http-client.js';
import { startAgent, type StartedAgent } from '../helpers/start-agent.js';
import { startServer, TEST_ADMIN_TOKEN, type StartedServer } from '../helpers/start-server.js';
import { startUpstream } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/wait.js';

/**
 * The status page (`/ui`) in a real browser: Debian's Chromium driven by
 * playwright-core, against an in-process server and agents on 127.0.0.1
 * with the real sqlite store. POSTERN_UPDATE_SCREENSHOT=1 rewrites
 * docs/status-page.png from the first render.
 */

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = join(import.meta.dirname, '..', '..', 'docs', 'status-page.png');
/** Two refreshes (2 s each) and room for a loaded CI box. */
const UPDATE_TIMEOUT_MS = 8_000;

const cleanup = new Cleanup();
let browser: Browser | undefined;

beforeAll(async () => {
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, timeout: 20_000 });
  } catch (err) {
    throw new Error(
      `could not start Chromium at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium) ` +
        `— the status page test needs it and is not skipped. Cause: ${(err as Error).message}`,
    );
  }
});
afterEach(() => cleanup.run());
afterAll(async () => {
  await browser?.close();
});

async function newContext(opts: Parameters<Browser['newContext']>[0] = {}): Promise<BrowserContext> {
  if (!browser) throw new Error('Chromium did not start (see beforeAll)');
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...opts });
  cleanup.add(() => context.close());
  return context;
}

async function createClient(server: StartedServer, name: string): Promise<string> {
  const res = await sendJson<{ clientId: string }>(`${server.ingressUrl}/v1/clients`, {
    method: 'POST',
    token: TEST_ADMIN_TOKEN,
    json: { name },
  });
  expect(res.status).toBe(201);
  return res.json.clientId;
}

/** The `data-health` of a client's section, or null while it is not on the page. */
async function health(page: Page, clientId: string): Promise<string | null> {
  // Client ids are nanoids (A-Z a-z 0-9 _ -): safe inside a quoted selector.
  const section = page.locator(`section[data-client-id="${clientId}"]`);
  return (await section.count()) === 0 ? null : section.getAttribute('data-health');
}

/** Waits, without navigating, until the page shows the client in that state. */
async function waitForHealth(page: Page, clientId: string, state: string): Promise<void> {
  await page.waitForSelector(`section[data-client-id="${clientId}"][data-health="${state}"]`, { timeout: UPDATE_TIMEOUT_MS });
}

/**
 * The page's window as the callbacks below use it. (They run in the
 * browser; the project's TypeScript has no DOM library.)
 */
type PageWindow = { marker?: string; pwned?: number; getComputedStyle(e: unknown): { color: string; backgroundColor: string } };

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

function expectSecurityHeaders(res: Pick<SendResult, 'headers'>): void {
  expect(res.headers['x-content-type-options']).toBe('nosniff');
  expect(res.headers['referrer-policy']).toBe('no-referrer');
  expect(res.headers['cache-control']).toBe('no-store');
  expect(res.headers['x-frame-options']).toBe('DENY');
  const csp = String(res.headers['content-security-policy']);
  expect(csp).toContain("default-src 'none'");
  expect(csp).toContain("frame-ancestors 'none'");
}

describe('status page in Chromium', () => {
  it('shows clients, connections and health, and updates in place as agents come and go', async () => {
    const tool = await startUpstream();
    cleanup.add(() => tool.close());
    // A tool that drops every connection: its requests fail (upstream_unreachable), so its client is degraded.
    const brokenTool = await startUpstream(({ req }) => void req.socket.destroy());
    cleanup.add(() => brokenTool.close());
    // Heartbeats every 300 ms: RTTs are measured before the first render.
    const server = await startServer({ env: { POSTERN_HEARTBEAT_MS: '300' } });
    cleanup.add(() => server.close());
    const store = server.server.store;
    const acme = store.create('acme-gitlab');
    const globex = store.create('globex-jira');
    const initech = store.create('initech-jenkins');

    const agentFor = async (client: { clientId: string; clientToken: string }, toolUrl: string, connections: number): Promise<StartedAgent> => {
      const agent = await startAgent({
        clientId: client.clientId,
        clientToken: client.clientToken,
        proxyUrl: server.publicUrl,
        toolUrl,
        env: { POSTERN_CONNECTIONS: String(connections), POSTERN_HEARTBEAT_MS: '300' },
      });
      cleanup.add(() => agent.stop());
      return agent;
    };
    await agentFor(acme, tool.url, 2);
    const globexAgent = await agentFor(globex, brokenTool.url, 1);
    await waitUntil(() => server.server.registry.connections(acme.clientId).length === 2, 'both acme tunnels');

    // Some traffic, so the counters are not all zero.
    for (let i = 0; i < 5; i++) expect((await send(`${server.ingressUrl}/t/${acme.clientId}/api/v4/projects?page=${i}`)).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await send(`${server.ingressUrl}/t/${globex.clientId}/rest/api/2/issue`)).status).toBeGreaterThanOrEqual(500);
    await waitUntil(
      () => server.server.registry.all().every((c) => c.session.rttMs() > 0),
      'an RTT on every tunnel',
    );

    const context = await newContext({ httpCredentials: { username: 'ops', password: TEST_ADMIN_TOKEN } });
    const page = await context.newPage();
    const requested: string[] = [];
    page.on('request', (r) => requested.push(r.url()));
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    let navigations = 0;
    page.on('framenavigated', (f) => {
      if (f === page.mainFrame()) navigations++;
    });

    const url = `${server.ingressUrl}/ui`;
    const res = await page.goto(url);
    expect(res?.status()).toBe(200);
    const headers = res!.headers();
    expectSecurityHeaders({ headers });
    const nonce = /script-src 'nonce-([A-Za-z0-9+/=]+)'/.exec(headers['content-security-policy']!)?.[1];
    expect(nonce).toBeDefined();
    expect(headers['content-security-policy']).toContain(`style-src 'nonce-${nonce}'`);
    expect(headers['content-security-policy']).toContain("connect-src 'self'");

    // The first render: three clients, one with two connections, one degraded, one offline.
    expect(await health(page, acme.clientId)).toBe('connected');
    expect(await health(page, globex.clientId)).toBe('degraded');
    expect(await health(page, initech.clientId)).toBe('offline');
    const acmeSection = page.locator(`section[data-client-id="${acme.clientId}"]`);
    expect(await acmeSection.locator('tr[data-connection-id]').count()).toBe(2);
    expect(await acmeSection.locator('h2').textContent()).toBe('acme-gitlab');
    const firstRow = await acmeSection.locator('tr[data-connection-id]').first().innerText();
    expect(firstRow).toContain('127.0.0.1');
    expect(firstRow).toMatch(/\d+(\.\d)? ms/);
    expect(await page.locator(`section[data-client-id="${globex.clientId}"] .reasons`).textContent()).toContain('failed requests in the last minute');
    expect(await page.locator('.summary').textContent()).toContain('3 clients: 2 connected (1 degraded), 1 offline');
    // The inline script ran (CSP allowed it) and says the page is live.
    await expect.poll(() => page.locator('#live').textContent()).toContain('Live · last updated');
    // The inline style applied (CSP allowed it): the offline badge is white on red.
    const badge = page.locator(`section[data-client-id="${initech.clientId}"] .badge`);
    expect(await badge.evaluate((e) => (globalThis as unknown as PageWindow).getComputedStyle(e).color)).toBe('rgb(255, 255, 255)');
    expect(await badge.evaluate((e) => (globalThis as unknown as PageWindow).getComputedStyle(e).backgroundColor)).toBe('rgb(207, 34, 46)');

    if (process.env.POSTERN_UPDATE_SCREENSHOT === '1') {
      // As tall as the content (fullPage grows past the viewport, never shrinks below it).
      await page.setViewportSize({ width: 1280, height: 400 });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
    }

    // Changes made now must show up without a navigation: the marker survives.
    await page.evaluate(() => ((globalThis as unknown as PageWindow).marker = 'kept'));
    const hostileName = `<img src=x onerror="window.pwned=1">"&' ops`;
    const created = await createClient(server, hostileName);
    await agentFor(initech, tool.url, 1);
    await globexAgent.stop();

    await page.waitForSelector(`section[data-client-id="${created}"]`, { timeout: UPDATE_TIMEOUT_MS });
    await waitForHealth(page, initech.clientId, 'connected');
    await waitForHealth(page, globex.clientId, 'offline');
    expect(await page.locator(`section[data-client-id="${created}"] h2`).textContent()).toBe(hostileName);
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as unknown as PageWindow).marker)).toBe('kept');
    expect(await page.evaluate(() => (globalThis as unknown as PageWindow).pwned)).toBeUndefined();
    expect(page.url()).toBe(url);
    expect(navigations).toBe(1);
    expect(await page.locator('.summary').textContent()).toContain('4 clients: 2 connected, 2 offline');

    // Only this server was asked for anything, and the updates came by fetch.
    expect(requested.filter((u) => new URL(u).origin !== server.ingressUrl)).toEqual([]);
    expect(requested.filter((u) => u.endsWith('/ui/fragment')).length).toBeGreaterThanOrEqual(1);
    expect(problems).toEqual([]);

    // The server goes away: the page says so, keeps what it last had, and keeps trying.
    await server.close();
    await page.waitForSelector('body.disconnected', { timeout: UPDATE_TIMEOUT_MS });
    expect(await page.locator('#live').textContent()).toMatch(/^Disconnected from server \(.+\) · last updated .+ · retrying$/);
    expect(await page.locator(`section[data-client-id="${created}"]`).count()).toBe(1);
    expect(page.url()).toBe(url);
  });

  it('refuses the browser without credentials or with a wrong token, and works without JavaScript', async () => {
    const server = await startServer();
    cleanup.add(() => server.close());
    const id = await createClient(server, 'acme-gitlab');
    const url = `${server.ingressUrl}/ui`;

    // Headless Chromium has no login prompt: the navigation either fails
    // (ERR_INVALID_AUTH_CREDENTIALS) or shows the 401's text. Either way the
    // server said 401 and nothing of the status reached the page.
    const refusedWith = async (opts: Parameters<Browser['newContext']>[0]): Promise<Response> => {
      const page = await (await newContext(opts)).newPage();
      const answer = page.waitForEvent('response', { predicate: (r) => r.url() === url, timeout: 10_000 });
      const outcome = await page.goto(url).then(
        (r) => `HTTP ${r?.status()}`,
        (err: Error) => err.message,
      );
      expect(outcome).toMatch(/HTTP 401|ERR_INVALID_AUTH_CREDENTIALS/);
      expect(await page.locator('section').count()).toBe(0);
      return answer;
    };
    const anonymous = await refusedWith({});
    expect(anonymous.status()).toBe(401);
    expect(anonymous.headers()['www-authenticate']).toBe(STATUS_PAGE_CHALLENGE);
    expect(await anonymous.text()).not.toContain('acme');
    const wrong = await refusedWith({ httpCredentials: { username: 'ops', password: 'not-the-token' } });
    expect(wrong.status()).toBe(401);

    // Without JavaScript: the same page, readable, reloaded by <noscript>'s meta refresh.
    const noJs = await (await newContext({ javaScriptEnabled: false, httpCredentials: { username: '', password: TEST_ADMIN_TOKEN } })).newPage();
    expect((await noJs.goto(url))?.status()).toBe(200);
    expect(await noJs.locator(`section[data-client-id="${id}"]`).getAttribute('data-health')).toBe('offline');
    expect(await noJs.locator('.summary').textContent()).toContain('1 client: 0 connected, 1 offline');
    expect(await noJs.locator('#live').textContent()).toContain('reloads every 5 s');
  });
});

describe('status page over HTTP', () => {
  it('takes the admin token as a Basic password (any user) or a Bearer token, and nothing else', async () => {
    const server = await startServer();
    cleanup.add(() => server.close());
    const get = (path: string, authorization?: string): Promise<SendResult> =>
      send(`${server.ingressUrl}${path}`, authorization === undefined ? {} : { headers: { authorization } });

    for (const authorization of [
      basic('ops', TEST_ADMIN_TOKEN),
      basic('', TEST_ADMIN_TOKEN),
      `basic ${Buffer.from(`x:${TEST_ADMIN_TOKEN}`).toString('base64')}`,
      `Bearer ${TEST_ADMIN_TOKEN}`,
    ]) {
      const ok = await get('/ui', authorization);
      expect(ok.status, authorization).toBe(200);
      expect(ok.headers['content-type']).toBe('text/html; charset=utf-8');
      expectSecurityHeaders(ok);
      expect(ok.body.toString()).not.toContain(TEST_ADMIN_TOKEN);
    }
    // A fresh nonce per page, on the style and the script.
    const [a, b] = await Promise.all([get('/ui', basic('ops', TEST_ADMIN_TOKEN)), get('/ui/', basic('ops', TEST_ADMIN_TOKEN))]);
    const nonceOf = (r: SendResult): string => /'nonce-([^']+)'/.exec(String(r.headers['content-security-policy']))![1]!;
    expect(nonceOf(a)).not.toBe(nonceOf(b));
    expect(a.body.toString()).toContain(`<script nonce="${nonceOf(a)}">`);
    expect(a.body.toString()).toContain(`<style nonce="${nonceOf(a)}">`);

    const fragment = await get('/ui/fragment', `Bearer ${TEST_ADMIN_TOKEN}`);
    expect(fragment.status).toBe(200);
    expect(fragment.body.toString()).toContain('No clients yet.');
    expect(fragment.body.toString()).not.toContain('<script');
    // Nothing may load in a fragment opened on its own.
    expect(fragment.headers['content-security-policy']).toBe("default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");

    for (const authorization of [
      undefined,
      basic('ops', 'wrong'),
      basic('ops', `${TEST_ADMIN_TOKEN}x`),
      `Bearer wrong`,
      `Basic ${Buffer.from(TEST_ADMIN_TOKEN).toString('base64')}`, // no colon: no password
      `Token ${TEST_ADMIN_TOKEN}`,
    ]) {
      for (const path of ['/ui', '/ui/fragment']) {
        const no = await get(path, authorization);
        expect(no.status, `${path} ${authorization}`).toBe(401);
        expect(no.headers['www-authenticate']).toBe(STATUS_PAGE_CHALLENGE);
        expectSecurityHeaders(no);
        expect(no.body.toString()).not.toContain('acme');
      }
    }
  });

  it("counts wrong tokens in the admin API's per-address limit, but not a browser's first request without credentials", async () => {
    const server = await startServer({ env: { POSTERN_AUTH_FAILURE_LIMIT: '4', POSTERN_AUTH_BLOCK_MS: '60000' } });
    cleanup.add(() => server.close());
    const ui = `${server.ingressUrl}/ui`;
    const status = `${server.ingressUrl}/v1/status`;
    // A browser's challenge round trip is no guess: many of them block nothing.
    for (let i = 0; i < 6; i++) expect((await send(ui)).status).toBe(401);
    expect((await send(ui, { headers: { authorization: basic('ops', TEST_ADMIN_TOKEN) } })).status).toBe(200);

    // Three wrong tokens on the page and one on the admin API reach the limit of 4 together.
    for (let i = 0; i < 3; i++) expect((await send(ui, { headers: { authorization: basic('ops', `guess-${i}`) } })).status).toBe(401);
    expect((await send(status, { headers: { authorization: 'Bearer guess-3' } })).status).toBe(401);
    const blockedPage = await send(ui, { headers: { authorization: basic('ops', TEST_ADMIN_TOKEN) } });
    expect(blockedPage.status).toBe(429);
    expect(Number(blockedPage.headers['retry-after'])).toBeGreaterThan(0);
    expectSecurityHeaders(blockedPage);
    expect((await send(status, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } })).status).toBe(429);
  });
});
