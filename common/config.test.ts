import { ConfigError, ConfigReader } from './config';

describe('configuration problems are reported all at once', () => {
  it('a parser of its own reports under its variable, beside the other problems', () => {
    const config = new ConfigReader({ LIST: 'a,b', PORT: 'x' });
    const parsed = config.parsed('LIST', (raw) => {
      throw new Error(`cannot read '${raw}'`);
    });
    expect(parsed).toBeUndefined();
    config.port('PORT', 1);
    expect(() => config.done()).toThrow(ConfigError);
    expect(() => config.done()).toThrow(/LIST: cannot read 'a,b'[\s\S]*PORT must be a TCP port/);
    expect(new ConfigReader({ LIST: 'a' }).parsed('LIST', (raw) => raw?.split(','))).toEqual(['a']);
  });

  it("a reader of its own joins its ConfigError's problems, and lets any other error through", () => {
    const config = new ConfigReader({});
    expect(
      config.include(() => {
        throw new ConfigError(['FIRST is wrong', 'SECOND is wrong']);
      }),
    ).toBeUndefined();
    config.required('THIRD', 'needed');
    expect(() => config.done()).toThrow(/FIRST is wrong[\s\S]*SECOND is wrong[\s\S]*THIRD is required/);
    expect(() =>
      config.include(() => {
        throw new TypeError('a bug, not a setting');
      }),
    ).toThrow(TypeError);
    expect(new ConfigReader({}).include(() => 42)).toBe(42);
  });
});
