import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAllowPolicy, PRESET_NAMES, presetsDir } from '../../agent/allow-policy.js';

const repo = join(import.meta.dirname, '..', '..');

/** [method, path relative to TOOL_URL, rule that allows it, or null for denied]. */
type Case = [string, string, string | null];

const cases: Record<(typeof PRESET_NAMES)[number], Case[]> = {
  gitlab: [
    ['GET', '/api/v4/version', 'instance version'],
    ['GET', '/api/v4/user', 'token owner'],
    ['GET', '/api/v4/projects?membership=true&per_page=100', 'list projects'],
    ['GET', '/api/v4/projects/group%2Fproject', 'project'],
    ['GET', '/api/v4/groups/acme/projects?include_subgroups=true', 'group projects'],
    ['GET', '/api/v4/projects/42/repository/branches?per_page=100', 'branches'],
    ['GET', '/api/v4/projects/42/repository/branches/feature%2Flogin', 'branch'],
    ['GET', '/api/v4/projects/42/repository/commits?ref_name=main&since=2024-01-01T00:00:00Z', 'commits'],
    ['GET', '/api/v4/projects/42/repository/commits/0a1b2c3d/diff', 'commit details'],
    ['GET', '/api/v4/projects/42/repository/commits/0a1b2c3d/statuses', 'commit details'],
    ['GET', '/api/v4/projects/42/merge_requests?state=opened', 'merge requests'],
    ['GET', '/api/v4/projects/group%2Fproject/merge_requests/7/changes', 'merge request details'],
    ['GET', '/api/v4/groups/acme/merge_requests?state=merged', 'group merge requests'],
    ['GET', '/api/v4/projects/42/pipelines?ref=main', 'pipelines'],
    ['GET', '/api/v4/projects/42/pipelines/1001/jobs', 'pipeline jobs'],
    ['GET', '/api/v4/projects/42/jobs/555/trace', 'job log'],
    ['GET', '/api/v4/projects/42/hooks', 'project webhooks'],
    ['POST', '/api/v4/projects/42/hooks', 'project webhooks'],
    ['PUT', '/api/v4/projects/42/hooks/9', 'project webhook'],
    ['DELETE', '/api/v4/projects/42/hooks/9', 'project webhook'],
    ['POST', '/api/v4/groups/acme/hooks', 'group webhooks'],
    ['DELETE', '/api/v4/projects/1', null],
    ['PUT', '/api/v4/projects/1', null],
    ['POST', '/api/v4/projects', null],
    ['DELETE', '/api/v4/projects/42/repository/branches/main', null],
    ['PUT', '/api/v4/projects/42/merge_requests/7/merge', null],
    ['POST', '/api/v4/projects/42/pipeline?ref=main', null],
    ['GET', '/api/v4/users', null],
    ['GET', '/api/v4/users/1/impersonation_tokens', null],
    ['POST', '/api/v4/users/1/personal_access_tokens', null],
    ['GET', '/api/v4/personal_access_tokens', null],
    ['GET', '/api/v4/application/settings', null],
    ['GET', '/api/v4/admin/ci/variables', null],
    ['GET', '/api/v4/projects/42/variables', null],
    ['GET', '/api/v4/groups/acme/variables', null],
    ['GET', '/api/v4/projects/42/deploy_tokens', null],
    ['GET', '/api/v4/projects/42/pipelines/1001/variables', null],
    ['GET', '/api/v4/projects/42/jobs/555/artifacts', null],
    ['GET', '/api/v4/projects/42?sudo=root', null],
    ['POST', '/api/graphql', null],
  ],
  github: [
    ['GET', '/user', 'token owner'],
    ['GET', '/user/repos?per_page=100&affiliation=owner', 'my repositories'],
    ['GET', '/orgs/acme/repos', 'organisation repositories'],
    ['GET', '/repos/acme/api', 'repository'],
    ['GET', '/repos/acme/api/branches?protected=false', 'branches'],
    ['GET', '/repos/acme/api/branches/feature/login', 'branch'],
    ['GET', '/repos/acme/api/commits?sha=main&since=2024-01-01T00:00:00Z', 'commits'],
    ['GET', '/repos/acme/api/commits/abc123/check-runs', 'commit details'],
    ['GET', '/repos/acme/api/commits/abc123/status', 'commit details'],
    ['GET', '/repos/acme/api/compare/main...feature', 'compare'],
    ['GET', '/repos/acme/api/pulls?state=open', 'pull requests'],
    ['GET', '/repos/acme/api/pulls/12/files', 'pull request details'],
    ['GET', '/repos/acme/api/actions/runs?branch=main', 'workflow runs'],
    ['GET', '/repos/acme/api/actions/runs/99/jobs', 'workflow run details'],
    ['GET', '/repos/acme/api/actions/jobs/5/logs', 'workflow jobs'],
    ['GET', '/repos/acme/api/hooks', 'repository webhooks'],
    ['POST', '/repos/acme/api/hooks', 'repository webhooks'],
    ['PATCH', '/repos/acme/api/hooks/1', 'repository webhook'],
    ['DELETE', '/repos/acme/api/hooks/1', 'repository webhook'],
    ['POST', '/repos/acme/api/hooks/1/pings', 'ping repository webhook'],
    ['POST', '/orgs/acme/hooks', 'organisation webhooks'],
    ['DELETE', '/repos/acme/api', null],
    ['PATCH', '/repos/acme/api', null],
    ['POST', '/user/repos', null],
    ['GET', '/users/octocat', null],
    ['POST', '/admin/users', null],
    ['GET', '/repos/acme/api/actions/secrets', null],
    ['GET', '/repos/acme/api/actions/variables', null],
    ['GET', '/repos/acme/api/keys', null],
    ['PUT', '/repos/acme/api/collaborators/mallory', null],
    ['PUT', '/repos/acme/api/pulls/12/merge', null],
    ['DELETE', '/repos/acme/api/git/refs/heads/main', null],
  ],
  bitbucket: [
    ['GET', '/rest/api/1.0/application-properties', 'application properties'],
    ['GET', '/rest/api/1.0/projects?limit=100', 'list projects'],
    ['GET', '/rest/api/1.0/projects/ACME/repos', 'project repositories'],
    ['GET', '/rest/api/1.0/projects/ACME/repos/api', 'repository'],
    ['GET', '/rest/api/1.0/projects/ACME/repos/api/branches?details=true', 'branches'],
    ['GET', '/rest/api/1.0/projects/ACME/repos/api/default-branch', 'default branch'],
    ['GET', '/rest/api/1.0/projects/ACME/repos/api/commits?until=main', 'commits'],
    ['GET', '/rest/api/1.0/projects/ACME/repos/api/commits/abc123/changes', 'commit details'],
    ['GET', '/rest/api/1.0/projects/ACME/repos/api/pull-requests?state=OPEN', 'pull requests'],
    ['GET', '/rest/api/1.0/projects/ACME/repos/api/pull-requests/12/activities', 'pull request details'],
    ['GET', '/rest/build-status/1.0/commits/abc123', 'build statuses'],
    ['GET', '/rest/api/1.0/projects/ACME/repos/api/webhooks', 'repository webhooks'],
    ['POST', '/rest/api/1.0/projects/ACME/repos/api/webhooks', 'repository webhooks'],
    ['PUT', '/rest/api/1.0/projects/ACME/repos/api/webhooks/3', 'repository webhook'],
    ['DELETE', '/rest/api/1.0/projects/ACME/repos/api/webhooks/3', 'repository webhook'],
    ['POST', '/rest/api/1.0/projects/ACME/webhooks', 'project webhooks'],
    ['DELETE', '/rest/api/1.0/projects/ACME/repos/api', null],
    ['POST', '/rest/api/1.0/projects/ACME/repos/api/pull-requests/12/merge', null],
    ['GET', '/rest/api/1.0/users', null],
    ['GET', '/rest/api/1.0/admin/users', null],
    ['GET', '/rest/api/1.0/projects/ACME/permissions/users', null],
    ['GET', '/rest/access-tokens/1.0/users/alice', null],
    ['GET', '/rest/ssh/1.0/keys', null],
    ['GET', '/rest/api/latest/projects', null],
  ],
  azuredevops: [
    ['GET', '/_apis/connectionData', 'connection data'],
    ['GET', '/_apis/projects?api-version=7.0', 'list projects'],
    ['GET', '/Fabrikam/_apis/git/repositories?api-version=7.0', 'project repositories'],
    ['GET', '/Fabrikam/_apis/git/repositories/api/refs?filter=heads/&api-version=7.0', 'refs'],
    ['GET', '/Fabrikam/_apis/git/repositories/api/commits?searchCriteria.itemVersion.version=main&api-version=7.0', 'commits'],
    ['GET', '/Fabrikam/_apis/git/repositories/api/commits/abc123/changes?api-version=7.0', 'commit details'],
    ['GET', '/Fabrikam/_apis/git/repositories/api/pullrequests?searchCriteria.status=active&api-version=7.0', 'pull requests'],
    ['GET', '/Fabrikam/_apis/git/repositories/api/pullrequests/12/threads?api-version=7.0', 'pull request details'],
    ['GET', '/Fabrikam/_apis/build/builds?definitions=3&api-version=7.0', 'builds'],
    ['GET', '/Fabrikam/_apis/build/builds/77/timeline?api-version=7.0', 'build details'],
    ['GET', '/Fabrikam/_apis/pipelines/3/runs?api-version=7.0', 'pipeline details'],
    ['GET', '/_apis/hooks/subscriptions?api-version=7.0', 'service hook subscriptions'],
    ['POST', '/_apis/hooks/subscriptions?api-version=7.0', 'service hook subscriptions'],
    ['PUT', '/_apis/hooks/subscriptions/8dea9aba-3a9a-4ad0-860f-2a5c7379e3eb?api-version=7.0', 'service hook subscription'],
    ['DELETE', '/_apis/hooks/subscriptions/8dea9aba-3a9a-4ad0-860f-2a5c7379e3eb?api-version=7.0', 'service hook subscription'],
    ['DELETE', '/_apis/projects/6ce954b1?api-version=7.0', null],
    ['POST', '/Fabrikam/_apis/build/builds?api-version=7.0', null],
    ['PATCH', '/Fabrikam/_apis/git/repositories/api/pullrequests/12?api-version=7.0', null],
    ['POST', '/Fabrikam/_apis/git/repositories/api/pushes?api-version=7.0', null],
    ['GET', '/_apis/graph/users?api-version=7.0-preview', null],
    ['GET', '/_apis/identities?searchFilter=General&filterValue=x', null],
    ['GET', '/Fabrikam/_apis/distributedtask/variablegroups?api-version=7.0', null],
    ['GET', '/Fabrikam/_apis/serviceendpoint/endpoints?api-version=7.0', null],
    ['GET', '/_apis/tokens/pats?api-version=7.0-preview', null],
    ['POST', '/Fabrikam/_apis/wit/workitems/$Task?api-version=7.0', null],
  ],
  jenkins: [
    ['GET', '/api/json?tree=jobs[name,url,color]', 'root'],
    ['GET', '/job/api/api/json', 'job'],
    ['GET', '/job/my%20job/lastBuild/api/json', 'build'],
    ['GET', '/job/api/42/consoleText', 'build log'],
    ['GET', '/job/api/42/wfapi/describe', 'build stages'],
    ['GET', '/job/acme/job/api/api/json', 'job in folder'],
    ['GET', '/job/acme/job/api/job/main/api/json', 'job two folders deep'],
    ['GET', '/job/acme/job/api/job/main/7/api/json', 'build two folders deep'],
    ['GET', '/job/acme/job/api/job/PR-12/lastBuild/consoleText', 'build log two folders deep'],
    ['GET', '/queue/api/json', 'queue'],
    ['GET', '/queue/item/12/api/json', 'queue item'],
    ['POST', '/scriptText', null],
    ['GET', '/script', null],
    ['POST', '/job/api/build', null],
    ['POST', '/job/api/buildWithParameters?x=1', null],
    ['POST', '/job/api/doDelete', null],
    ['POST', '/job/api/42/stop', null],
    ['GET', '/job/api/config.xml', null],
    ['GET', '/credentials/store/system/domain/_/api/json', null],
    ['GET', '/computer/api/json', null],
    ['GET', '/manage', null],
    ['GET', '/user/admin/api/json', null],
    ['GET', '/pluginManager/api/json', null],
    ['GET', '/securityRealm/user/admin/descriptorByName/org.jenkinsci.plugins.scriptsecurity.sandbox.groovy.SecureGroovyScript/checkScript?sandbox=true&value=x', null],
    ['GET', '/job/a/job/b/job/c/job/d/job/e/api/json', null],
  ],
};

/** What each preset is for: every kind needs an allowed case above whose path matches. */
const kinds: Record<(typeof PRESET_NAMES)[number], Record<string, RegExp>> = {
  gitlab: {
    repositories: /\/projects(\/[^/?]+)?(\?|$)/,
    branches: /\/branches/,
    commits: /\/commits/,
    'merge requests': /\/merge_requests/,
    'pipelines and jobs': /\/pipelines|\/jobs/,
    webhooks: /\/hooks/,
  },
  github: {
    repositories: /\/repos(\?|$)|\/repos\/[^/]+\/[^/]+$/,
    branches: /\/branches/,
    commits: /\/commits/,
    'pull requests': /\/pulls/,
    'actions runs': /\/actions\//,
    webhooks: /\/hooks/,
  },
  bitbucket: {
    repositories: /\/repos(\/[^/?]+)?(\?|$)/,
    branches: /branch/,
    commits: /\/commits/,
    'pull requests': /\/pull-requests/,
    builds: /build-status/,
    webhooks: /\/webhooks/,
  },
  azuredevops: {
    repositories: /\/git\/repositories(\?|$)/,
    branches: /\/refs/,
    commits: /\/commits/,
    'pull requests': /\/pullrequests/,
    'builds and pipelines': /\/build\/builds|\/pipelines/,
    webhooks: /\/hooks\/subscriptions/,
  },
  jenkins: {
    jobs: /^\/job\/[^/]+\/api\/json/,
    builds: /\/(lastBuild|\d+)\/api\/json/,
    'build logs': /consoleText/,
    'pipeline stages': /wfapi/,
    'multibranch branches and pull requests': /\/job\/[^/]+\/job\/[^/]+\/job\/(main|PR-\d+)\//,
    queue: /^\/queue\//,
  },
};

describe('built-in presets', () => {
  it('ship in the npm package and the agent image, and are found from the sources', () => {
    const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { files: string[] };
    expect(pkg.files).toContain('presets');
    expect(readFileSync(join(repo, 'Dockerfile.agent'), 'utf8')).toMatch(/^COPY presets \.\/presets$/m);
    expect(presetsDir()).toBe(join(repo, 'presets'));
  });

  for (const name of PRESET_NAMES) {
    describe(name, () => {
      const policy = loadAllowPolicy(`preset:${name}`, undefined);
      const doc = JSON.parse(readFileSync(join(repo, 'presets', `${name}.json`), 'utf8')) as { description?: string; rules: { name?: string; methods?: string[]; path: string }[] };

      it('parses, describes itself, names every rule once and lists methods on every rule', () => {
        expect(policy.source).toBe(`preset:${name}`);
        expect(doc.description).toMatch(/TOOL_TYPE=/);
        const names = doc.rules.map((r) => r.name);
        expect(names.every((n) => typeof n === 'string' && n.length > 0)).toBe(true);
        expect(new Set(names).size).toBe(names.length);
        expect(doc.rules.every((r) => Array.isArray(r.methods) && r.methods.length > 0)).toBe(true);
      });

      it('writes only to webhook endpoints', () => {
        const reads = new Set(['GET', 'HEAD']);
        const writes = doc.rules.filter((r) => r.methods!.some((m) => !reads.has(m)));
        // Azure DevOps' commitsbatch is a read whose filter travels in a POST body.
        const offenders = writes.filter((r) => !/hooks|webhooks|subscriptions|commitsbatch/.test(r.path));
        expect(offenders).toEqual([]);
      });

      it.each(cases[name])('%s %s → %s', (method, path, rule) => {
        const d = policy.decide(method, path);
        expect(d.rule, d.reason).toBe(rule);
        expect(d.allowed).toBe(rule !== null);
      });

      it('allows a realistic read of every resource kind it is for', () => {
        const allowed = cases[name].filter(([, , r]) => r !== null);
        for (const [kind, re] of Object.entries(kinds[name])) {
          expect(allowed.some(([m, p]) => m === 'GET' && re.test(p.split('?')[0]!)), kind).toBe(true);
        }
        if (name !== 'jenkins') {
          // Webhook management: list, create, update, delete.
          const hookMethods = new Set(allowed.filter(([, p]) => /hooks/.test(p)).map(([m]) => (m === 'PATCH' ? 'PUT' : m)));
          expect([...hookMethods].sort()).toEqual(['DELETE', 'GET', 'POST', 'PUT']);
        }
      });
    });
  }

  it('refuses GitLab impersonation (sudo) in the query and as a header, on every rule', () => {
    const gitlab = loadAllowPolicy('preset:gitlab', undefined);
    expect(gitlab.decide('GET', '/api/v4/projects/42').allowed).toBe(true);
    expect(gitlab.decide('GET', '/api/v4/projects/42', ['Sudo', 'root']).reason).toMatch(/closest rule "project": header "sudo" must be absent/);
    expect(gitlab.decide('GET', '/api/v4/projects/42?sudo=root').reason).toMatch(/query parameter "sudo" must be absent/);
    for (const rule of gitlab.rules) {
      expect(rule.query.get('sudo'), rule.name).toEqual({ kind: 'absent' });
      expect(rule.headers.get('sudo'), rule.name).toEqual({ kind: 'absent' });
    }
  });
});
