#!/usr/bin/env node
/**
 * Entry point of the `postern` bin. Checks the Node.js version before any
 * module that needs a newer one (node:sqlite) is loaded, so an old runtime
 * gets a sentence instead of ERR_UNKNOWN_BUILTIN_MODULE.
 */
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 13)) {
  process.stderr.write(
    `postern: Node.js ${process.versions.node} is too old; Postern needs Node.js 22.13 or newer (24 recommended).\n` +
      '  In a checkout, run it through npm scripts or npx, which use the Node 24 that `npm ci` installed.\n',
  );
  process.exit(1);
}
await import('./main.js');
