import { InputError } from '../common/errors';
import { validateInfrastructureConfig } from '../providers/validation';
import {
  canonicalRepositoryUrl,
  checkRepositoryEndpoint,
  classifyAddress,
  type HostLookup,
} from './repository-address';

describe('what an address is', () => {
  it.each([
    ['169.254.169.254', 'link-local'],
    ['169.254.0.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['fd00:ec2::254', 'link-local'],
    ['100.100.100.200', 'link-local'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['::ffff:a9fe:a9fe', 'link-local'],
    ['64:ff9b::169.254.169.254', 'link-local'],
    ['2002:a9fe:a9fe::1', 'link-local'],
    ['0.0.0.0', 'unroutable'],
    ['0.1.2.3', 'unroutable'],
    ['::', 'unroutable'],
    ['224.0.0.251', 'unroutable'],
    ['ff02::1', 'unroutable'],
    ['255.255.255.255', 'unroutable'],
    ['240.0.0.1', 'unroutable'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::127.0.0.1', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.0.1', 'private'],
    ['100.64.0.1', 'private'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['::ffff:10.1.2.3', 'private'],
    ['::ffff:0:10.1.2.3', 'private'],
    ['64:ff9b::10.1.2.3', 'private'],
    ['8.8.8.8', 'public'],
    ['172.32.0.1', 'public'],
    ['140.82.112.3', 'public'],
    ['2606:50c0:8000::153', 'public'],
    ['::ffff:140.82.112.3', 'public'],
    ['2002:8c52:7003::1', 'public'],
  ])('%s is %s', (address, kind) => {
    expect(classifyAddress(address)).toBe(kind);
  });
});

describe('the URL git is given', () => {
  it.each([
    ['http://0x7f000001:8080/r.git', 'http://127.0.0.1:8080/r.git', '127.0.0.1'],
    ['http://2130706433/r.git', 'http://127.0.0.1/r.git', '127.0.0.1'],
    ['http://127.1/r.git', 'http://127.0.0.1/r.git', '127.0.0.1'],
    ['git://0x7f000001/r.git', 'git://127.0.0.1/r.git', '127.0.0.1'],
    ['git://0177.0.0.1:9418/r.git', 'git://127.0.0.1:9418/r.git', '127.0.0.1'],
    ['ssh://git@2130706433:2222/r.git', 'ssh://git@127.0.0.1:2222/r.git', '127.0.0.1'],
    ['git://[::ffff:127.0.0.1]/r.git', 'git://[::ffff:7f00:1]/r.git', '::ffff:7f00:1'],
    ['https://GitHub.COM./org/r.git#frag', 'https://github.com/org/r.git', 'github.com'],
    ['ssh://git@Git.Example.com/org/r.git', 'ssh://git@git.example.com/org/r.git', 'git.example.com'],
  ])('%s becomes %s', (raw, href, host) => {
    const parsed = canonicalRepositoryUrl(raw);
    expect(parsed).toMatchObject({ ok: true, host });
    expect(parsed.ok && parsed.url.href).toBe(href);
  });

  it.each([
    'file:///etc/passwd',
    'ext::sh -c id',
    '/srv/git/repo',
    'git@github.com:org/repo.git',
    'https://user:password@github.com/org/repo.git',
    'git://-oProxyCommand=id/x',
    'ssh://-oProxyCommand=id@host/x',
    'git://a%2fb/x',
    'ssh://git@1.2.3.08/x',
    'http://host\\@127.0.0.1/x',
  ])('%s is refused before anything is resolved', async (raw) => {
    const lookup: HostLookup = () => Promise.reject(new Error('must not be resolved'));
    expect(await checkRepositoryEndpoint(raw, { allowLoopback: true, allowPrivate: true }, lookup)).toMatchObject({
      ok: false,
      rule: 'invalid',
    });
  });

  it('resolves a name once and keeps every address it had', async () => {
    const calls: string[] = [];
    const lookup: HostLookup = async (host) => {
      calls.push(host);
      return [
        { address: '140.82.112.3', family: 4 },
        { address: '2606:50c0:8000::153', family: 6 },
      ];
    };
    const check = await checkRepositoryEndpoint('https://github.com/org/repo.git', {}, lookup);
    expect(check).toMatchObject({
      ok: true,
      endpoint: { host: 'github.com', port: 443, addresses: ['140.82.112.3', '2606:50c0:8000::153'] },
    });
    expect(calls).toEqual(['github.com']);
  });
});

describe('config.repositoryNetworks of an infrastructure', () => {
  const gcp = {
    project: 'acme-dev-123',
    region: 'europe-west1',
    zones: ['europe-west1-b'],
    network: 'gitspaces',
    subnetwork: 'regions/europe-west1/subnetworks/gitspaces',
    serviceAccount: 'gitspace-vm@acme-dev-123.iam.gserviceaccount.com',
  };
  const aws = {
    region: 'eu-west-1',
    subnetId: 'subnet-0123456789abcdef0',
    securityGroupIds: ['sg-0123456789abcdef0'],
    ami: 'ami-0123456789abcdef0',
  };

  it('is accepted by every provider and absent by default', () => {
    const networks = { repositoryNetworks: { allowLoopback: true, allowPrivate: false } };
    expect(validateInfrastructureConfig('local', networks)).toEqual(networks);
    expect(validateInfrastructureConfig('gcp', { ...gcp, ...networks })).toMatchObject(networks);
    expect(validateInfrastructureConfig('aws', { ...aws, ...networks })).toMatchObject(networks);
    expect(validateInfrastructureConfig('gcp', gcp)).not.toHaveProperty('repositoryNetworks');
  });

  it.each(['local', 'gcp', 'aws'] as const)('is checked by the %s provider, with the field path', (provider) => {
    const base = { local: {}, gcp, aws }[provider];
    const attempt = () =>
      validateInfrastructureConfig(provider, {
        ...base,
        repositoryNetworks: { allowLoopback: 'yes', allowMetadata: true },
      });
    expect(attempt).toThrow(InputError);
    const paths = (() => {
      try {
        attempt();
        return [];
      } catch (error) {
        return (error as InputError).fields.map((f) => f.path).sort();
      }
    })();
    expect(paths.some((p) => p.startsWith('config.repositoryNetworks'))).toBe(true);
  });
});
