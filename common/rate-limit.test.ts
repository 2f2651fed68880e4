import { TokenBuckets, clientAddressKey } from './rate-limit';

describe('token buckets', () => {
  it('allows a burst of the per-minute allowance, then one more each 60/N seconds', () => {
    let now = 0;
    const buckets = new TokenBuckets({ max: 6, windowMs: 60_000, now: () => now });
    expect(Array.from({ length: 6 }, () => buckets.take('a'))).toEqual([0, 0, 0, 0, 0, 0]);
    expect(buckets.take('a')).toBe(10);
    now += 9_000;
    expect(buckets.take('a')).toBe(1);
    now += 1_000;
    expect(buckets.take('a')).toBe(0);
    expect(buckets.take('b')).toBe(0);
    buckets.refund('a');
    expect(buckets.take('a')).toBe(0);
  });

  it('tells the wait without spending', () => {
    let now = 0;
    const buckets = new TokenBuckets({ max: 2, windowMs: 1_000, now: () => now });
    expect(buckets.wait('a')).toBe(0);
    expect([buckets.take('a'), buckets.take('a'), buckets.wait('a'), buckets.wait('a')]).toEqual([0, 0, 1, 1]);
    now += 500;
    expect([buckets.wait('a'), buckets.take('a'), buckets.wait('a')]).toEqual([0, 0, 1]);
  });

  it('keeps at most maxKeys buckets, forgetting the least recently used (a forgotten bucket is a full one)', () => {
    const buckets = new TokenBuckets({ max: 1, windowMs: 60_000, maxKeys: 2, now: () => 0 });
    expect(buckets.take('a')).toBe(0);
    expect(buckets.take('b')).toBe(0);
    expect(buckets.take('a')).toBe(60);
    expect(buckets.take('c')).toBe(0); // forgets b, the least recently used
    expect(buckets.take('a')).toBe(60);
    expect(buckets.take('b')).toBe(0);
  });
});

describe('client address keys', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1'],
    ['::ffff:10.0.0.1', '10.0.0.1'],
    ['::FFFF:10.0.0.1', '10.0.0.1'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2:ffff::9', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    [undefined, 'unknown'],
  ])('limits %s as %s', (address, key) => {
    expect(clientAddressKey(address)).toBe(key);
  });
});
