import { pino, type DestinationStream, type LoggerOptions } from 'pino';
import { ConfigError } from './config';

/**
 * The structured logger every process's `main` passes down: pino underneath, one JSON object per line on stderr
 * (`{"level":"info","time":"…","pid":…,"hostname":"…","name":"api:worker","msg":"…",…fields}`), or a line for humans
 * with GITSPACES_LOG_FORMAT=pretty (the default when stderr is a terminal). Secrets under the usual field names are
 * replaced by `[redacted]`; errors are logged as name, message and code (their stack only at the debug level).
 */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(name: string): Logger;
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** The environment variables every process reads its logging from. */
export const LOG_LEVEL_ENV = 'GITSPACES_LOG_LEVEL';
export const LOG_FORMAT_ENV = 'GITSPACES_LOG_FORMAT';

/**
 * Field paths whose values never reach a log line (pino's `redact`): credentials by the names call sites and the
 * libraries' errors use, at the top level and one level down. Public keys (`runnerPublicKeys`) are not among them.
 */
export const REDACTED_PATHS: readonly string[] = [
  'authorization',
  'cookie',
  'token',
  'accessToken',
  'adminToken',
  'apiKey',
  'secret',
  'agentSecret',
  'routeSecret',
  'password',
  'privateKey',
  'privateKeyPem',
  'headers.authorization',
  'headers.cookie',
  'headers["set-cookie"]',
  'headers["x-gitspaces-route-secret"]',
].flatMap((path) => [path, `*.${path}`]);

export interface LogSettings {
  level: LogLevel;
  format: LogFormat;
}

/** GITSPACES_LOG_LEVEL and GITSPACES_LOG_FORMAT, checked; a main reads them with its other settings. */
export function readLogSettings(env: NodeJS.ProcessEnv = process.env): LogSettings {
  const problems: string[] = [];
  const pick = <T extends string>(name: string, allowed: readonly T[], fallback: T): T => {
    const raw = env[name]?.trim();
    if (raw === undefined || raw === '') return fallback;
    if ((allowed as readonly string[]).includes(raw)) return raw as T;
    problems.push(`${name} must be one of ${allowed.join(', ')}, got '${raw}'`);
    return fallback;
  };
  const level = pick(LOG_LEVEL_ENV, LOG_LEVELS, 'info');
  const format = pick(LOG_FORMAT_ENV, LOG_FORMATS, process.stderr.isTTY ? 'pretty' : 'json');
  if (problems.length > 0) throw new ConfigError(problems);
  return { level, format };
}

/**
 * A logger named `name` (children are `name:child`), at a level or with the settings a main read
 * ({@link readLogSettings}); what is not given comes from GITSPACES_LOG_LEVEL and GITSPACES_LOG_FORMAT. `write`
 * replaces stderr (tests read the JSON lines it gets).
 */
export function createLogger(
  name: string,
  levelOrSettings?: LogLevel | Partial<LogSettings>,
  write?: (line: string) => unknown,
): Logger {
  const given = typeof levelOrSettings === 'string' ? { level: levelOrSettings } : (levelOrSettings ?? {});
  const fromEnv = given.level !== undefined && (write || given.format) ? undefined : readLogSettings();
  const resolvedLevel = given.level ?? fromEnv!.level;
  const format = given.format ?? (write ? 'json' : fromEnv!.format);
  const sink: DestinationStream = write
    ? { write: (line: string) => void write(line) }
    : pino.destination({ fd: 2, sync: true });
  const root = pino(pinoOptions(resolvedLevel), format === 'pretty' ? prettyStream(sink) : sink);
  return wrap(root, name);
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger: Logger = createLogger('silent', 'silent', () => undefined);

function pinoOptions(level: LogLevel): LoggerOptions {
  const withStack = level === 'debug';
  return {
    level,
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
    formatters: {
      level: (label) => ({ level: label }),
      log: (fields) => serializeErrors(fields, withStack, 0) as Record<string, unknown>,
    },
  };
}

function wrap(root: pino.Logger, name: string): Logger {
  const logger = root.child({ name });
  return {
    debug: (message, fields) => (fields ? logger.debug(fields, message) : logger.debug(message)),
    info: (message, fields) => (fields ? logger.info(fields, message) : logger.info(message)),
    warn: (message, fields) => (fields ? logger.warn(fields, message) : logger.warn(message)),
    error: (message, fields) => (fields ? logger.error(fields, message) : logger.error(message)),
    // From the root, so a child's line has one `name`, not its parent's too.
    child: (child) => wrap(root, `${name}:${child}`),
  };
}

/**
 * Errors anywhere in the fields (three levels down) become `{ name, message, code }`, with `stack` at the debug level.
 * Nothing else of an error is logged: libraries' errors carry requests, headers and configs with credentials.
 */
function serializeErrors(value: unknown, withStack: boolean, depth: number): unknown {
  if (value instanceof Error) {
    const { code } = value as { code?: unknown };
    return {
      name: value.name,
      message: value.message,
      ...(typeof code === 'string' || typeof code === 'number' ? { code } : {}),
      ...(withStack && value.stack ? { stack: value.stack } : {}),
    };
  }
  if (depth >= 3 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    value.forEach((item, i) => {
      const serialized = serializeErrors(item, withStack, depth + 1);
      if (serialized !== item) (copy ??= [...value])[i] = serialized;
    });
    return copy ?? value;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  let copy: Record<string, unknown> | undefined;
  for (const [key, item] of Object.entries(value)) {
    const serialized = serializeErrors(item, withStack, depth + 1);
    if (serialized !== item) (copy ??= { ...value })[key] = serialized;
  }
  return copy ?? value;
}

/** The human format: `2026-01-01T00:00:00.000Z INFO  [api:worker] message {"fields":…}`, from pino's JSON. */
function prettyStream(sink: DestinationStream): DestinationStream {
  return {
    write(line: string) {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return void sink.write(line);
      }
      const { level, time, name, msg, pid: _pid, hostname: _hostname, ...fields } = entry;
      const extra = Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : '';
      sink.write(`${String(time)} ${String(level).toUpperCase().padEnd(5)} [${String(name)}] ${String(msg)}${extra}\n`);
    },
  };
}
