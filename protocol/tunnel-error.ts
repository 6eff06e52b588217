import { ErrorCodes, type ErrorCodeInfo, type ErrorCodeName } from './error-codes.js';

/**
 * Base class of every error Postern raises on purpose. `info` ties it to the
 * one error table; `retryable` comes from there so the reconnect loop and the
 * ingress never guess.
 */
export class TunnelError extends Error {
  readonly info: ErrorCodeInfo;

  constructor(info: ErrorCodeInfo, message?: string, options?: { cause?: unknown }) {
    super(message ?? info.message, options);
    this.name = 'TunnelError';
    this.info = info;
  }

  get code(): string {
    return this.info.code;
  }

  get retryable(): boolean {
    return this.info.retryable;
  }
}

/** A frame or handshake broke the protocol: the connection must close. */
export class ProtocolError extends TunnelError {
  constructor(message: string, info: ErrorCodeInfo = ErrorCodes.PROTOCOL, options?: { cause?: unknown }) {
    super(info, message, options);
    this.name = 'ProtocolError';
  }
}

/** Makes a TunnelError for a named code; keeps call sites short. */
export function tunnelError(name: ErrorCodeName, message?: string, cause?: unknown): TunnelError {
  return new TunnelError(ErrorCodes[name], message, cause === undefined ? undefined : { cause });
}

/** A configuration value is missing or wrong; `setting` names it. */
export class ConfigError extends Error {
  readonly setting: string;
  readonly code = 'POSTERN_ERR_CONFIG';

  constructor(setting: string, message: string) {
    super(`${setting}: ${message}`);
    this.name = 'ConfigError';
    this.setting = setting;
  }
}
