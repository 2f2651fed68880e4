import { ConfigError } from './config';
import { createLogger, readLogSettings } from './logger';

/** The pino-backed logger: one JSON object a line, names of children, levels, redaction, errors without their insides. */
describe('logger', () => {
  const capture = (level: 'debug' | 'info' | 'warn' = 'info') => {
    const lines: string[] = [];
    const logger = createLogger('api', level, (line) => lines.push(line));
    return { logger, entries: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>), lines };
  };

  it('writes one JSON object a line with level, time, name, message and fields; children are name:child', () => {
    const { logger, entries, lines } = capture();
    logger.info('control plane listening', { url: 'http://127.0.0.1:3000' });
    logger.child('worker').child('events').warn('slow');
    logger.debug('not at info');
    expect(lines.every((line) => line.endsWith('\n') && !line.slice(0, -1).includes('\n'))).toBe(true);
    expect(entries()).toEqual([
      expect.objectContaining({
        level: 'info',
        name: 'api',
        msg: 'control plane listening',
        url: 'http://127.0.0.1:3000',
      }),
      expect.objectContaining({ level: 'warn', name: 'api:worker:events', msg: 'slow' }),
    ]);
    expect(new Date(entries()[0]!.time as string).toISOString()).toBe(entries()[0]!.time);
  });

  it('never writes credentials under their usual names, at the top or one level down', () => {
    const { logger, lines } = capture();
    logger.warn('request failed', {
      authorization: 'Bearer sekret-1',
      token: 'sekret-2',
      headers: { authorization: 'Bearer sekret-3', cookie: 'gitspaces_access=sekret-4' },
      request: { secret: 'sekret-5', password: 'sekret-6' },
      runnerPublicKeys: ['public-key-stays'],
    });
    const text = lines.join('');
    expect(text).not.toMatch(/sekret/);
    expect(text).toContain('[redacted]');
    expect(text).toContain('public-key-stays');
  });

  it('logs errors as name, message and code only, with the stack at the debug level', () => {
    const error = Object.assign(new Error('connect ECONNREFUSED'), {
      code: 'ECONNREFUSED',
      config: { headers: { Authorization: 'Bearer inside-the-error' } },
    });
    const info = capture('info');
    info.logger.error('call failed', { error, nested: { causes: [new TypeError('bad')] } });
    expect(info.entries()[0]).toMatchObject({
      error: { name: 'Error', message: 'connect ECONNREFUSED', code: 'ECONNREFUSED' },
      nested: { causes: [{ name: 'TypeError', message: 'bad' }] },
    });
    expect(info.lines.join('')).not.toContain('inside-the-error');
    expect(info.entries()[0]!.error).not.toHaveProperty('stack');
    const debug = capture('debug');
    debug.logger.error('call failed', { error });
    expect((debug.entries()[0]!.error as { stack: string }).stack).toContain('connect ECONNREFUSED');
  });

  it('reads GITSPACES_LOG_LEVEL and GITSPACES_LOG_FORMAT, and names a wrong value', () => {
    expect(readLogSettings({ GITSPACES_LOG_LEVEL: 'debug', GITSPACES_LOG_FORMAT: 'json' })).toEqual({
      level: 'debug',
      format: 'json',
    });
    expect(readLogSettings({ GITSPACES_LOG_FORMAT: 'pretty' }).level).toBe('info');
    expect(() => readLogSettings({ GITSPACES_LOG_LEVEL: 'loud', GITSPACES_LOG_FORMAT: 'xml' })).toThrow(ConfigError);
    expect(() => readLogSettings({ GITSPACES_LOG_LEVEL: 'loud' })).toThrow(
      "GITSPACES_LOG_LEVEL must be one of debug, info, warn, error, silent, got 'loud'",
    );
  });

  it('writes a line for humans with the pretty format', () => {
    const lines: string[] = [];
    const logger = createLogger('gateway', { level: 'info', format: 'pretty' }, (line) => lines.push(line));
    logger.info('gateway listening', { publicUrl: 'http://127.0.0.1:3001', token: 'sekret' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO {2}\[gateway\] gateway listening \{"publicUrl":"http:\/\/127\.0\.0\.1:3001","token":"\[redacted\]"\}\n$/,
    );
  });
});
