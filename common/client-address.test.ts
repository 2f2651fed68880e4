import { InvalidTrustedProxyError, TrustedProxies } from './client-address';

describe('trusted proxies', () => {
  it.each(['bogus', '10.0.0.0/33', 'fd00::/129', '10.0.0.1/x', '10.0.0.0/', '10.0.0.1/8/8', 'localhost'])(
    'refuses %s as an entry',
    (entry) => {
      expect(() => TrustedProxies.parse(`127.0.0.1, ${entry}`)).toThrow(InvalidTrustedProxyError);
    },
  );

  it('trusts what is listed, IPv4 as a dual-stack socket reports it too, and nothing else', () => {
    const trusted = TrustedProxies.parse(' 10.0.0.0/8 , fd00::/8,192.0.2.7,');
    expect(trusted.entries).toEqual(['10.0.0.0/8', 'fd00::/8', '192.0.2.7']);
    for (const address of ['10.1.2.3', '::ffff:10.1.2.3', 'fd00::1', '192.0.2.7'])
      expect(trusted.trusts(address)).toBe(true);
    for (const address of ['11.0.0.1', '192.0.2.8', 'fe80::1', '', undefined, 'not-an-ip']) {
      expect(trusted.trusts(address)).toBe(false);
    }
    expect(TrustedProxies.parse(undefined).none).toBe(true);
    expect(TrustedProxies.parse(' , ').none).toBe(true);
  });

  it('finds the client behind trusted proxies, from the right, and believes no header from anyone else', () => {
    const trusted = TrustedProxies.parse('10.0.0.0/8');
    // From a trusted proxy: the nearest hop that is not itself a proxy; what the client wrote to the left is ignored.
    expect(trusted.clientOf('10.0.0.1', '1.1.1.1, 203.0.113.9, 10.0.0.2')).toBe('203.0.113.9');
    // A hop that is not an address: the proxy is the best we know.
    expect(trusted.clientOf('10.0.0.1', 'garbage')).toBe('10.0.0.1');
    // From anyone else, the header is not read at all.
    expect(trusted.clientOf('198.51.100.4', '203.0.113.9')).toBe('198.51.100.4');
  });
});
