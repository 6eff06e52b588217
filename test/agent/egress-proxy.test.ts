import { describe, expect, it } from 'vitest';
import { noProxyMatches, proxyFor } from '../../agent/egress-proxy.js';

const wss = new URL('wss://postern.example.com/v1/tunnel');
const ws = new URL('ws://10.0.0.5:8080/v1/tunnel');

describe('proxyFor', () => {
  it('uses HTTPS_PROXY for wss and HTTP_PROXY for ws, upper or lower case', () => {
    expect(proxyFor(wss, { HTTPS_PROXY: 'http://proxy.corp:3128' })?.host).toBe('proxy.corp:3128');
    expect(proxyFor(wss, { https_proxy: 'proxy.corp:3128' })?.host).toBe('proxy.corp:3128');
    expect(proxyFor(ws, { HTTPS_PROXY: 'http://proxy.corp:3128' })).toBeUndefined();
    expect(proxyFor(ws, { HTTP_PROXY: 'http://proxy.corp:3128' })?.host).toBe('proxy.corp:3128');
  });

  it('is off without a proxy variable', () => {
    expect(proxyFor(wss, {})).toBeUndefined();
  });

  it('refuses a proxy it cannot use, naming the variable, without echoing credentials', () => {
    expect(() => proxyFor(wss, { HTTPS_PROXY: 'socks5://proxy:1080' })).toThrow(/^HTTPS_PROXY: scheme socks5: is not supported/);
    expect(() => proxyFor(ws, { HTTP_PROXY: 'http://u:pw-secret@[bad' })).toThrow(/^HTTP_PROXY: is not a URL/);
    try {
      proxyFor(ws, { HTTP_PROXY: 'http://u:pw-secret@[bad' });
    } catch (err) {
      expect((err as Error).message).not.toContain('pw-secret');
    }
  });

  it('honours NO_PROXY', () => {
    const env = { HTTPS_PROXY: 'http://proxy:3128' };
    expect(proxyFor(wss, { ...env, NO_PROXY: 'example.com' })).toBeUndefined();
    expect(proxyFor(wss, { ...env, NO_PROXY: 'other.com,.example.com' })).toBeUndefined();
    expect(proxyFor(wss, { ...env, NO_PROXY: 'ample.com' })?.host).toBe('proxy:3128');
  });
});

describe('noProxyMatches', () => {
  const cases: [string, URL, boolean][] = [
    ['*', wss, true],
    ['postern.example.com', wss, true],
    ['.example.com', wss, true],
    ['*.example.com', wss, true],
    ['example.com:443', wss, true],
    ['example.com:8443', wss, false],
    ['10.0.0.5', ws, true],
    ['10.0.0.5:8080', ws, true],
    ['10.0.0.6', ws, false],
    ['', wss, false],
  ];
  it.each(cases)('NO_PROXY=%j for %s → %s', (noProxy, url, expected) => {
    expect(noProxyMatches(url, noProxy)).toBe(expected);
  });
});
