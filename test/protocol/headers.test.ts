import { describe, expect, it } from 'vitest';
import { headerValue, stripHopByHop } from '../../protocol/headers.js';

describe('stripHopByHop', () => {
  it.each([
    'connection',
    'keep-alive',
    'transfer-encoding',
    'te',
    'trailer',
    'upgrade',
    'host',
    'proxy-connection',
    'proxy-authenticate',
    'proxy-authorization',
    'http2-settings',
  ])('removes %s', (name) => {
    expect(stripHopByHop(['accept', '*/*', name, 'x', 'x-b', '2'])).toStrictEqual(['accept', '*/*', 'x-b', '2']);
  });

  it('matches hop-by-hop names case-insensitively and keeps the end-to-end header casing', () => {
    const raw = ['Host', 'a', 'Transfer-Encoding', 'chunked', 'TE', 'trailers', 'Content-Type', 'text/plain', 'UPGRADE', 'h2c'];
    expect(stripHopByHop(raw)).toStrictEqual(['Content-Type', 'text/plain']);
  });

  it('removes the headers named in Connection, case-insensitively and with spaces', () => {
    const raw = ['Connection', 'close, X-Private ,  x-trace', 'x-private', 'secret', 'X-Trace', '1', 'x-keep', 'yes'];
    expect(stripHopByHop(raw)).toStrictEqual(['x-keep', 'yes']);
  });

  it('removes headers named in several Connection headers', () => {
    const raw = ['connection', 'x-a', 'x-a', '1', 'CONNECTION', 'x-b', 'x-b', '2', 'x-c', '3'];
    expect(stripHopByHop(raw)).toStrictEqual(['x-c', '3']);
  });

  it('removes a Connection-named header that appears before the Connection header', () => {
    expect(stripHopByHop(['x-a', '1', 'connection', 'x-a'])).toStrictEqual([]);
  });

  it('ignores empty tokens in Connection', () => {
    expect(stripHopByHop(['connection', ', ,', 'x-a', '1'])).toStrictEqual(['x-a', '1']);
  });

  it('removes names in drop', () => {
    const raw = ['authorization', 'Bearer t', 'x-postern-client', 'c1', 'accept', '*/*'];
    expect(stripHopByHop(raw, new Set(['authorization', 'x-postern-client']))).toStrictEqual(['accept', '*/*']);
  });

  it('keeps repeated headers, all of them, in their order', () => {
    const raw = ['set-cookie', 'a=1', 'connection', 'keep-alive', 'x-a', '1', 'set-cookie', 'b=2', 'Set-Cookie', 'c=3'];
    expect(stripHopByHop(raw)).toStrictEqual(['set-cookie', 'a=1', 'x-a', '1', 'set-cookie', 'b=2', 'Set-Cookie', 'c=3']);
  });

  it('keeps headers that only start like a hop-by-hop name', () => {
    const raw = ['hostname', 'h', 'te-x', '1', 'upgrade-insecure-requests', '1', 'keep-alive-x', '1'];
    expect(stripHopByHop(raw)).toStrictEqual(raw);
  });

  it('returns a new list and leaves the input alone', () => {
    const raw = ['host', 'a', 'x-a', '1'];
    const out = stripHopByHop(raw);
    expect(out).not.toBe(raw);
    expect(raw).toStrictEqual(['host', 'a', 'x-a', '1']);
  });

  it('returns an empty list for an empty list', () => {
    expect(stripHopByHop([])).toStrictEqual([]);
  });
});

describe('headerValue', () => {
  const list = ['Content-Type', 'text/html', 'set-cookie', 'a=1', 'Set-Cookie', 'b=2', 'x-empty', ''];

  it('finds a header case-insensitively', () => {
    expect(headerValue(list, 'content-type')).toBe('text/html');
    expect(headerValue(list, 'CONTENT-TYPE')).toBe('text/html');
  });

  it('returns the first of repeated headers', () => {
    expect(headerValue(list, 'set-cookie')).toBe('a=1');
  });

  it('returns an empty value as the empty string, not undefined', () => {
    expect(headerValue(list, 'x-empty')).toBe('');
  });

  it('returns undefined for a missing header', () => {
    expect(headerValue(list, 'location')).toBeUndefined();
    expect(headerValue([], 'location')).toBeUndefined();
  });

  it('does not match a value that equals the name', () => {
    expect(headerValue(['x-a', 'location'], 'location')).toBeUndefined();
  });
});
