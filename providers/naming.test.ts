import { dataDiskNameFor, deriveClientToken, deriveRequestId, labelValueFor, machineNameFor } from './naming';

const GCP_NAME = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

describe('naming', () => {
  it('derives readable machine and disk names from a well-formed gitspace id', () => {
    expect(machineNameFor('gs-k3v9x2m7q1wz')).toBe('gitspace-gs-k3v9x2m7q1wz');
    expect(dataDiskNameFor('gs-k3v9x2m7q1wz')).toBe('gitspace-gs-k3v9x2m7q1wz-data');
  });

  it('keeps names valid and distinct for ids that need changing', () => {
    const ids = ['GS_Upper', 'gs_upper', 'x'.repeat(200), 'x'.repeat(201), 'a.b/c'];
    const names = ids.map(dataDiskNameFor);
    for (const name of names) {
      expect(name).toMatch(GCP_NAME);
      expect(name.length).toBeLessThanOrEqual(63);
    }
    expect(new Set(names).size).toBe(ids.length);
  });

  it('makes label values valid and one-to-one', () => {
    expect(labelValueFor('gs-abc')).toBe('gs-abc');
    const values = ['Install-1', 'install-1', 'a'.repeat(64)].map(labelValueFor);
    for (const value of values) expect(value).toMatch(/^[a-z0-9_-]{1,63}$/);
    expect(new Set(values).size).toBe(3);
  });

  it('derives a stable UUID request id per call scope', () => {
    const id = deriveRequestId('insert:vm', 'start-gs-1-run-1');
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(deriveRequestId('insert:vm', 'start-gs-1-run-1')).toBe(id);
    expect(deriveRequestId('stop:vm', 'start-gs-1-run-1')).not.toBe(id);
  });

  it('derives a client token of at most 64 ASCII characters', () => {
    const token = deriveClientToken('run-instances', 'k'.repeat(500));
    expect(token).toMatch(/^[\x21-\x7e]{1,64}$/);
    expect(deriveClientToken('run-instances', 'k'.repeat(500))).toBe(token);
  });
});
