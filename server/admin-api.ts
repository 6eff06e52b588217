import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { CloseCodes, ErrorCodes } from '../protocol/error-codes.js';
import type { AuthGuard } from './auth-guard.js';
import type { ClientStats } from './client-stats.js';
import type { ClientStore } from './client-store.js';
import type { IngressApiKeys } from './ingress-api-keys.js';
import { errorBody } from './http-errors.js';
import { tokenMatches, hashToken } from './secrets.js';
import type { TunnelRegistry } from './tunnel-registry.js';
import { serverStatus, type ServerStatus } from './server-status.js';

export interface AdminApiOptions {
  adminToken: string;
  store: ClientStore;
  registry: TunnelRegistry;
  stats: ClientStats;
  startedAt: Date;
  /** Rate-limits failed admin authentications per source address. */
  guard: AuthGuard;
  /** The ingress's key cache, told when keys change. */
  apiKeys: IngressApiKeys;
}

export type { ClientStatus, ConnectionStatus, ServerStatus } from './server-status.js';

const createSchema = {
  body: {
    type: 'object',
    required: ['name'],
    additionalProperties: false,
    properties: { name: { type: 'string', minLength: 1, maxLength: 200 } },
  },
} as const;

const createKeySchema = {
  body: {
    type: ['object', 'null'],
    additionalProperties: false,
    properties: { name: { type: 'string', minLength: 1, maxLength: 200 } },
  },
} as const;

/**
 * Keys per client. Enough for one per calling service plus overlap while
 * rotating; a bound keeps the ingress's per-request comparison short.
 */
export const MAX_API_KEYS_PER_CLIENT = 20;

/**
 * The admin API: clients (create, list, revoke, rotate), their ingress API
 * keys (create, list, revoke) and status. Every route needs
 * `Authorization: Bearer <admin token>`, compared in constant time; failures
 * are rate-limited per source address (AuthGuard). Client tokens and API
 * keys appear once, in the answer that creates them.
 */
async function adminApi(app: FastifyInstance, opts: AdminApiOptions): Promise<void> {
  const { store, registry, stats, apiKeys } = opts;
  const adminHash = hashToken(opts.adminToken);

  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    if (await opts.guard.refuseIfBlocked(req, reply)) return;
    const auth = req.headers.authorization;
    const token = typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : '';
    if (!token || !tokenMatches(token, adminHash)) {
      // The path only (a query could carry anything the caller typed).
      opts.guard.failed(req, 'admin API refused: bad admin token', { method: req.method, path: req.url.split('?')[0]!.slice(0, 200) });
      await reply
        .code(401)
        .header('connection', 'close')
        .send(errorBody(ErrorCodes.UNAUTHORIZED, req.id, 'missing or wrong admin token'));
    }
  });

  app.post<{ Body: { name: string } }>('/v1/clients', { schema: createSchema }, async (req, reply) => {
    const client = store.create(req.body.name);
    req.log.info({ clientId: client.clientId, name: client.name }, 'client created');
    return reply.code(201).send({
      clientId: client.clientId,
      clientToken: client.clientToken,
      name: client.name,
      createdAt: client.createdAt,
    });
  });

  app.get('/v1/clients', async () => ({
    clients: store.list().map((c) => ({ ...c, connections: registry.connections(c.clientId).length })),
  }));

  app.delete<{ Params: { id: string } }>('/v1/clients/:id', async (req, reply) => {
    if (!store.revoke(req.params.id)) return notFound(reply, req.params.id, req.id);
    const closed = registry.closeClient(req.params.id, CloseCodes.REVOKED, 'client revoked');
    stats.forget(req.params.id);
    apiKeys.invalidate(req.params.id);
    req.log.info({ clientId: req.params.id, closedConnections: closed }, 'client revoked');
    return { clientId: req.params.id, revoked: true, closedConnections: closed };
  });

  app.post<{ Params: { id: string } }>('/v1/clients/:id/rotate', async (req, reply) => {
    const token = store.rotate(req.params.id);
    if (!token) return notFound(reply, req.params.id, req.id);
    const closed = registry.closeClient(req.params.id, CloseCodes.REVOKED, 'client token rotated');
    req.log.info({ clientId: req.params.id, closedConnections: closed }, 'client token rotated');
    return { clientId: req.params.id, clientToken: token, closedConnections: closed };
  });

  app.post<{ Params: { id: string }; Body: { name?: string } | null }>(
    '/v1/clients/:id/api-keys',
    { schema: createKeySchema },
    async (req, reply) => {
      const { id } = req.params;
      if (!store.get(id)) return notFound(reply, id, req.id);
      if (store.listApiKeys(id).length >= MAX_API_KEYS_PER_CLIENT) {
        const info = ErrorCodes.BAD_REQUEST;
        return reply
          .code(info.status)
          .send(errorBody(info, req.id, `the client already has ${MAX_API_KEYS_PER_CLIENT} API keys (the limit); revoke one first`));
      }
      const key = store.createApiKey(id, req.body?.name ?? 'api key');
      if (!key) return notFound(reply, id, req.id);
      apiKeys.invalidate(id);
      req.log.info({ clientId: id, keyId: key.keyId, name: key.name }, 'API key created');
      return reply.code(201).send({ clientId: id, keyId: key.keyId, name: key.name, apiKey: key.apiKey, createdAt: key.createdAt });
    },
  );

  app.get<{ Params: { id: string } }>('/v1/clients/:id/api-keys', async (req, reply) => {
    const { id } = req.params;
    if (!store.get(id)) return notFound(reply, id, req.id);
    return { clientId: id, apiKeys: store.listApiKeys(id).map(({ keyId, name, createdAt }) => ({ keyId, name, createdAt })) };
  });

  app.delete<{ Params: { id: string; keyId: string } }>('/v1/clients/:id/api-keys/:keyId', async (req, reply) => {
    const { id, keyId } = req.params;
    if (!store.get(id)) return notFound(reply, id, req.id);
    const revoked = store.revokeApiKey(id, keyId);
    // Also when nothing was deleted: the cache must never be the only holder of a key.
    apiKeys.invalidate(id);
    if (!revoked) {
      const info = ErrorCodes.UNKNOWN_API_KEY;
      return reply
        .code(info.status)
        .send(errorBody(info, req.id, `client has no API key ${JSON.stringify(keyId.slice(0, 64))}`));
    }
    req.log.info({ clientId: id, keyId }, 'API key revoked');
    return { clientId: id, keyId, revoked: true };
  });

  app.get('/v1/status', async (): Promise<ServerStatus> => serverStatus({ store, registry, stats, startedAt: opts.startedAt }));
}

function notFound(reply: FastifyReply, id: string, requestId: string): FastifyReply {
  const info = ErrorCodes.UNKNOWN_CLIENT;
  return reply.code(info.status).send(errorBody(info, requestId, `no client ${JSON.stringify(id.slice(0, 64))}`));
}

export default fp(adminApi, { name: 'postern-admin-api', encapsulate: true });
