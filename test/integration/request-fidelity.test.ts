import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { rawHeaderValues, send, sendJson } from '../helpers/http-client.js';
import { startTunnel } from '../helpers/tunnel-fixture.js';
import type { EchoBody } from '../helpers/upstream.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const GITLAB_PATH = '/api/v4/projects/group%2Fproject/repository/files/a%2Fb.txt?ref=main&x=%20y';

describe('ingress → tool request fidelity', () => {
  it('passes the path after the client id and the query byte for byte, without decoding', async () => {
    const t = await startTunnel(cleanup);
    const res = await sendJson<EchoBody>(t.url(GITLAB_PATH));
    expect(res.status).toBe(200);
    expect(res.json.url).toBe(GITLAB_PATH);
    expect(t.upstream.requests.map((r) => r.url)).toEqual([GITLAB_PATH]);
  });

  it('keeps unusual but legal path bytes as sent (%-case, encoded specials, empty query values)', async () => {
    const t = await startTunnel(cleanup);
    const paths = ['/a%2fb/%7Euser/c%3Bd;e=f', '/q?a=&b=%2B+c&a=2', '/?', '/x/%E2%9C%93?%C3%A9=1'];
    for (const path of paths) {
      const res = await sendJson<EchoBody>(t.url(path));
      expect(res.status, path).toBe(200);
      expect(res.json.url, path).toBe(path);
    }
  });

  it('maps a bare /t/<id> and /t/<id>?query to the root of the tool', async () => {
    const t = await startTunnel(cleanup);
    const bare = await sendJson<EchoBody>(`${t.server.ingressUrl}/t/${t.clientId}`);
    expect(bare.status).toBe(200);
    expect(bare.json.url).toBe('/');
    const query = await sendJson<EchoBody>(`${t.server.ingressUrl}/t/${t.clientId}?a=1&b=%2F`);
    expect(query.status).toBe(200);
    expect(query.json.url).toBe('/?a=1&b=%2F');
  });

  it("prepends TOOL_URL's path prefix and still passes the rest untouched", async () => {
    const t = await startTunnel(cleanup, { toolPath: '/gitlab' });
    const res = await sendJson<EchoBody>(t.url(GITLAB_PATH));
    expect(res.status).toBe(200);
    expect(res.json.url).toBe(`/gitlab${GITLAB_PATH}`);
  });

  it('delivers custom and repeated request headers in order and with their values', async () => {
    const t = await startTunnel(cleanup);
    const res = await sendJson<EchoBody>(t.url('/headers'), {
      headers: ['X-Foo', 'bar baz', 'X-Multi', 'one', 'X-Multi', 'two', 'Accept', 'application/json', 'X-Multi', 'three'],
    });
    expect(res.status).toBe(200);
    const seen = res.json.rawHeaders;
    expect(rawHeaderValues(seen, 'x-foo')).toEqual(['bar baz']);
    expect(rawHeaderValues(seen, 'x-multi')).toEqual(['one', 'two', 'three']);
    expect(rawHeaderValues(seen, 'accept')).toEqual(['application/json']);
    // Host is the tool's own, set by the agent's connection, never the ingress host.
    expect(rawHeaderValues(seen, 'host')).toEqual([`127.0.0.1:${t.upstream.port}`]);
  });

  it('removes hop-by-hop request headers, including those named in Connection', async () => {
    const t = await startTunnel(cleanup);
    const res = await sendJson<EchoBody>(t.url('/hop'), {
      headers: [
        'Connection',
        'keep-alive, X-Hop-A, x-hop-b',
        'X-Hop-A',
        'secret-a',
        'X-Hop-B',
        'secret-b',
        'Keep-Alive',
        'timeout=5',
        'Proxy-Authorization',
        'Basic cHJveHk6cHJveHk=',
        'TE',
        'trailers',
        'X-End-To-End',
        'kept',
      ],
    });
    expect(res.status).toBe(200);
    const names = res.json.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(names).not.toContain('x-hop-a');
    expect(names).not.toContain('x-hop-b');
    expect(names).not.toContain('proxy-authorization');
    expect(names).not.toContain('te');
    expect(names).not.toContain('keep-alive');
    expect(rawHeaderValues(res.json.rawHeaders, 'connection')).not.toContain('keep-alive, X-Hop-A, x-hop-b');
    expect(rawHeaderValues(res.json.rawHeaders, 'x-end-to-end')).toEqual(['kept']);
  });

  it('returns multi-value response headers as separate fields: three Set-Cookie stay three', async () => {
    const t = await startTunnel(cleanup, {
      handler: ({ res }) => {
        res.setHeader('set-cookie', ['a=1; Path=/', 'b=2; HttpOnly', 'c=3; Secure']);
        res.setHeader('x-tool', 'yes');
        res.setHeader('connection', 'keep-alive, x-resp-hop');
        res.setHeader('x-resp-hop', 'must-not-cross');
        res.end('ok');
      },
    });
    const res = await send(t.url('/cookies'));
    expect(res.status).toBe(200);
    expect(rawHeaderValues(res.rawHeaders, 'set-cookie')).toEqual(['a=1; Path=/', 'b=2; HttpOnly', 'c=3; Secure']);
    expect(rawHeaderValues(res.rawHeaders, 'x-tool')).toEqual(['yes']);
    expect(rawHeaderValues(res.rawHeaders, 'x-resp-hop')).toEqual([]);
    expect(rawHeaderValues(res.rawHeaders, 'x-postern-request-id')).toHaveLength(1);
    expect(res.body.toString()).toBe('ok');
  });
});

describe('status codes and bodiless responses', () => {
  it('passes status codes through with their bodies and does not follow redirects', async () => {
    const t = await startTunnel(cleanup, {
      handler: ({ req, res }) => {
        const status = Number(req.url!.slice(1));
        const headers: Record<string, string> = { 'content-type': 'text/plain' };
        if (status === 301) headers.location = '/moved-here';
        res.writeHead(status, headers);
        res.end(`tool says ${status}`);
      },
    });
    for (const status of [200, 201, 301, 400, 404, 418, 500, 503]) {
      const res = await send(t.url(`/${status}`));
      expect(res.status, `status ${status}`).toBe(status);
      expect(res.body.toString(), `body of ${status}`).toBe(`tool says ${status}`);
      expect(res.complete).toBe(true);
      expect(res.headers['x-postern-request-id']).toMatch(/\S/);
      if (status === 301) expect(res.headers.location).toBe('/moved-here');
    }
    // The 301 was handed back, not followed: the tool never saw /moved-here.
    expect(t.upstream.requests.map((r) => r.url)).not.toContain('/moved-here');
  });

  it('answers HEAD, 204 and 304 with a head and no body', async () => {
    const t = await startTunnel(cleanup, {
      handler: ({ req, res }) => {
        if (req.method === 'HEAD') {
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '1234' });
          res.end();
        } else if (req.url === '/no-content') {
          res.writeHead(204, { 'x-kind': 'no-content' });
          res.end();
        } else if (req.url === '/not-modified') {
          res.writeHead(304, { etag: '"v1"' });
          res.end();
        } else {
          res.end('unexpected');
        }
      },
    });
    const head = await send(t.url('/file.bin'), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe('1234');
    expect(head.bytes).toBe(0);
    expect(head.complete).toBe(true);

    const noContent = await send(t.url('/no-content'), { method: 'DELETE' });
    expect(noContent.status).toBe(204);
    expect(noContent.headers['x-kind']).toBe('no-content');
    expect(noContent.bytes).toBe(0);
    expect(noContent.complete).toBe(true);

    const notModified = await send(t.url('/not-modified'), { headers: { 'if-none-match': '"v1"' } });
    expect(notModified.status).toBe(304);
    expect(notModified.headers.etag).toBe('"v1"');
    expect(notModified.bytes).toBe(0);
    expect(notModified.complete).toBe(true);
    expect(t.upstream.requests.map((r) => r.method)).toEqual(['HEAD', 'DELETE', 'GET']);
  });
});
