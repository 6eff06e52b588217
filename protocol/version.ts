/**
 * Postern's release version. Kept equal to package.json's by a test, so it
 * stays a constant (no file read at run time, same in dist/ and sources).
 */
export const VERSION = '0.1.0';

/** What this build calls itself in handshakes and status. */
export const SOFTWARE = `postern/${VERSION}`;
