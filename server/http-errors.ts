import type { ServerResponse } from 'node:http';
import type { ErrorCodeInfo } from '../protocol/error-codes.js';
import { REQUEST_ID_HEADER } from '../protocol/headers.js';

/** Postern's JSON error body: slug from the one error table, a message for people, the request id. */
export interface ErrorBody {
  error: string;
  message: string;
  requestId: string;
}

/**
 * The body of every error Postern answers itself (ingress, admin API,
 * tunnel endpoint, status page): the slug always from the error table.
 */
export function errorBody(info: ErrorCodeInfo, requestId: string, message?: string): ErrorBody {
  return { error: info.error, message: message ?? info.message, requestId };
}

/**
 * Answers with Postern's JSON error body. The status and slug come from the
 * one error table (protocol/error-codes.ts); `message` must never contain a
 * secret.
 */
export function sendError(res: ServerResponse, info: ErrorCodeInfo, requestId: string, message?: string): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(errorBody(info, requestId, message));
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    [REQUEST_ID_HEADER]: requestId,
  };
  // Tell well-behaved callers when trying again makes sense.
  if (info.status === 503 || info.status === 429) headers['retry-after'] = '1';
  res.writeHead(info.status, headers);
  res.end(body);
}
