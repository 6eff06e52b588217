import { writeFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { rawHeaderValues, send, sendJson } from '../helpers/http-client.js';
import { tempDataDir } from '../helpers/start-server.js';
import { startTunnel } from '../helpers/tunnel-fixture.js';
import type { EchoBody } from '../helpers/upstream.js';
import type { ErrorBody } from '../../server/http-errors.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** Writes a POSTERN_ALLOW rules file in a temp dir removed after the test. */
async function rulesFile(rules: unknown): Promise<string> {
  const dir = await tempDataDir();
  cleanup.add(() => dir.remove());
  const file = `${dir.dir}/allow.json`;
  await writeFile(file, JSON.stringify(rules));
  return file;
}

describe('agent policy (POSTERN_ALLOW)', () => {
  it('lets through what a rule allows and refuses everything else with 403 forbidden_by_agent', async () => {
    const allow = await rulesFile({ rules: [{ name: 'read api', methods: ['GET'], path: '/api/**' }] });
    const t = await startTunnel(cleanup, { agentEnv: { POSTERN_ALLOW: allow } });

    const allowed = await sendJson<EchoBody>(t.url('/api/v4/projects?page=2'));
    expect(allowed.status).toBe(200);
    expect(allowed.json.url).toBe('/api/v4/projects?page=2');

    const post = await sendJson<ErrorBody>(t.url('/api/v4/projects'), { method: 'POST', json: { name: 'x' } });
    expect(post.status).toBe(403);
    expect(post.json.error).toBe('forbidden_by_agent');
    expect(post.json.requestId).toBe(post.headers['x-postern-request-id']);

    const outside = await sendJson<ErrorBody>(t.url('/admin/users'));
    expect(outside.status).toBe(403);
    expect(outside.json.error).toBe('forbidden_by_agent');

    // Only the allowed request ever reached the tool.
    expect(t.upstream.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /api/v4/projects?page=2']);
    expect(t.agent.agent.status().policyDenials).toBe(2);
  });

  it('refuses path traversal, plain or percent-encoded, before it reaches the tool', async () => {
    const allow = await rulesFile({ rules: [{ methods: ['GET'], path: '/api/**' }] });
    const t = await startTunnel(cleanup, { toolPath: '/gitlab', agentEnv: { POSTERN_ALLOW: allow } });
    const attempts = [
      '/%2e%2e/secret',
      '/api/%2e%2e/%2e%2e/secret',
      '/api/..%2f..%2fsecret',
      '/api/%252e%252e/secret',
      '/api/../../secret',
      '/api/%2E%2e/secret',
    ];
    for (const path of attempts) {
      const res = await sendJson<ErrorBody>(t.url(path));
      expect(res.status, path).toBe(403);
      expect(res.json.error, path).toBe('forbidden_by_agent');
    }
    expect(t.upstream.requests).toHaveLength(0);
  });

  it('refuses traversal even without allow rules (confinement to TOOL_URL)', async () => {
    const t = await startTunnel(cleanup, { toolPath: '/gitlab' });
    const res = await sendJson<ErrorBody>(t.url('/%2e%2e/secret'));
    expect(res.status).toBe(403);
    expect(res.json.error).toBe('forbidden_by_agent');
    expect((await send(t.url('/ok'))).status).toBe(200);
    expect(t.upstream.requests.map((r) => r.url)).toEqual(['/gitlab/ok']);
  });
});

describe('agent policy with a built-in preset', () => {
  it('answers 403 with the rule outcome, counts each denial in the agent status and lets reads through', async () => {
    const t = await startTunnel(cleanup, {
      toolPath: '/gitlab',
      agentEnv: { TOOL_TYPE: 'gitlab', POSTERN_ALLOW: 'preset', POSTERN_STATUS_PORT: '0' },
    });

    const read = await sendJson<EchoBody>(t.url('/api/v4/projects/group%2Fproject/merge_requests?state=opened'));
    expect(read.status).toBe(200);
    expect(read.json.url).toBe('/gitlab/api/v4/projects/group%2Fproject/merge_requests?state=opened');
    const hook = await sendJson<EchoBody>(t.url('/api/v4/projects/42/hooks'), { method: 'POST', json: { url: 'https://saas.example/hook' } });
    expect(hook.status).toBe(200);

    const denials: [string, string, Record<string, string>, string][] = [
      ['DELETE', '/api/v4/projects/1', {}, 'no rule allows DELETE /api/v4/projects/1; closest rule "project": method DELETE is not one of GET, HEAD'],
      ['GET', '/api/v4/users?per_page=100', {}, 'no rule allows GET /api/v4/users'],
      ['GET', '/api/v4/projects/42', { sudo: 'root' }, 'no rule allows GET /api/v4/projects/42; closest rule "project": header "sudo" must be absent'],
      ['GET', '/api/v4/projects/42?sudo=root', {}, 'no rule allows GET /api/v4/projects/42; closest rule "project": query parameter "sudo" must be absent'],
      ['GET', '/api/v4/projects/42/variables', {}, 'no rule allows GET /api/v4/projects/42/variables'],
    ];
    for (const [method, path, headers, message] of denials) {
      const res = await sendJson<ErrorBody>(t.url(path), { method, headers });
      expect(res.status, path).toBe(403);
      expect(res.json.error, path).toBe('forbidden_by_agent');
      expect(res.json.message, path).toBe(message);
    }

    expect(t.upstream.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'GET /gitlab/api/v4/projects/group%2Fproject/merge_requests?state=opened',
      'POST /gitlab/api/v4/projects/42/hooks',
    ]);
    expect(t.agent.agent.status().policyDenials).toBe(denials.length);
    const status = await sendJson<{ policyDenials: number; requests: number }>(`http://127.0.0.1:${t.agent.agent.statusPort}/status`);
    expect(status.json.policyDenials).toBe(denials.length);
    expect(status.json.requests).toBe(2);
  });

  it('refuses to start with an unknown preset or a TOOL_TYPE without one', async () => {
    await expect(startTunnel(cleanup, { agentEnv: { POSTERN_ALLOW: 'preset:nexus' } })).rejects.toThrow(/POSTERN_ALLOW: unknown preset "nexus"/);
    await expect(startTunnel(cleanup, { agentEnv: { POSTERN_ALLOW: 'preset', TOOL_TYPE: 'bearer' } })).rejects.toThrow(/TOOL_TYPE=bearer has no preset/);
  });
});

describe('confinement through the real ingress', () => {
  it('refuses crafted paths before the tool and passes the allowed ones byte for byte', async () => {
    const t = await startTunnel(cleanup, { toolPath: '/gitlab' });
    const refused: [string, RegExp][] = [
      ['//evil.example/x', /empty segment/],
      ['/http://evil.example/x', /empty segment/],
      ['/api//v4', /empty segment/],
      ['/api/%2F%2Fevil.example', /empty segment/],
      ['/api/..;/admin', /dot segment/],
      ['/api/%2e%2e%3b/admin', /dot segment/],
      ['/api/%EF%BC%8E%EF%BC%8E/admin', /dot segment/],
      ['/api/.../admin', /dot segment/],
      ['/api/%c0%ae%c0%ae/admin', /not valid UTF-8/],
      ['/api/%25252e%25252e/admin', /dot segment/],
      ['/api%5c..%5cadmin', /backslash/],
      ['/api%00/x', /control character/],
      ['/api/%0d%0aX-Injected:%201', /control character/],
      ['/api/%zz', /malformed/],
    ];
    for (const [path, reason] of refused) {
      const res = await sendJson<ErrorBody>(t.url(path));
      expect(res.status, path).toBe(403);
      expect(res.json.error, path).toBe('forbidden_by_agent');
      expect(res.json.message, path).toMatch(reason);
    }
    const allowed = ['/api/v4/projects/group%2Fproject', '/npm/@scope%2fname', '/a/..b/c.', '/branches/100%25', '/job/x/', '/a?path=../../etc&x=%2e%2e'];
    for (const path of allowed) {
      const res = await sendJson<EchoBody>(t.url(path));
      expect(res.status, path).toBe(200);
      expect(res.json.url, path).toBe(`/gitlab${path}`);
    }
    expect(t.upstream.requests).toHaveLength(allowed.length);
  });
});

describe("the tool's credential (TOOL_SECRET)", () => {
  it('sends PRIVATE-TOKEN for TOOL_TYPE=gitlab and replaces, never duplicates, caller-supplied credentials', async () => {
    const t = await startTunnel(cleanup, { agentEnv: { TOOL_TYPE: 'gitlab', TOOL_SECRET: 'glpat-tool-secret' } });
    const res = await sendJson<EchoBody>(t.url('/api/v4/user'), {
      headers: [
        'PRIVATE-TOKEN',
        'caller-token',
        'Private-Token',
        'second-caller-token',
        'Authorization',
        'Bearer caller-bearer',
        'X-Other',
        'kept',
      ],
    });
    expect(res.status).toBe(200);
    const seen = res.json.rawHeaders;
    expect(rawHeaderValues(seen, 'private-token')).toEqual(['glpat-tool-secret']);
    expect(rawHeaderValues(seen, 'authorization')).toEqual([]);
    expect(rawHeaderValues(seen, 'x-other')).toEqual(['kept']);
  });

  it('sends Authorization: Bearer for the default type, replacing the caller’s', async () => {
    const t = await startTunnel(cleanup, { agentEnv: { TOOL_SECRET: 'ghp-tool-secret' } });
    const res = await sendJson<EchoBody>(t.url('/user'), { headers: { authorization: 'Bearer caller' } });
    expect(res.status).toBe(200);
    expect(rawHeaderValues(res.json.rawHeaders, 'authorization')).toEqual(['Bearer ghp-tool-secret']);
  });
});
