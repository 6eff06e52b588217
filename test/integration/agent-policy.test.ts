import { writeFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup } from '../helpers/cleanup.js';
import { rawHeaderValues, send, sendJson } from '../helpers/http-client.js';
import { tempDataDir } from '../helpers/start-server.js';
import { startTunnel } from '../helpers/tunnel-fixture.js';
import type { EchoBody } from '../helpers/upstream.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

interface ErrorBody {
  error: string;
  message: string;
  requestId: string;
}

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
