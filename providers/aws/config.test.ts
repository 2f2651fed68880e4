import { parseAwsInfrastructureConfig, validateAwsMachineSpec, type AwsInfrastructureConfig } from './config';

const valid = {
  region: 'eu-west-1',
  subnetId: 'subnet-0123456789abcdef0',
  securityGroupIds: ['sg-0123456789abcdef0'],
  ami: 'ami-0123456789abcdef0',
};

describe('aws infrastructure config', () => {
  it('accepts a complete config and fills defaults', () => {
    const result = parseAwsInfrastructureConfig(valid);
    expect(result).toEqual({ ok: true, value: { ...valid, volumeType: 'gp3', agent: {} } });
  });

  it('reports every problem at once with field paths', () => {
    const result = parseAwsInfrastructureConfig({
      subnetId: 'subnet-nope',
      securityGroupIds: ['sg-0123456789abcdef0', 'default'],
      ami: 'ami-0123456789abcdef0',
      amiLookup: { owners: [], namePattern: 'x*' },
      agent: { packageUrl: 'not a url' },
      surprise: true,
    });
    expect(result.ok).toBe(false);
    const paths = result.ok ? [] : result.problems.map((p) => p.path).sort();
    expect(paths).toEqual([
      'config',
      'config.agent.packageSha256',
      'config.agent.packageUrl',
      'config.amiLookup.owners',
      'config.region',
      'config.securityGroupIds[1]',
      'config.subnetId',
    ]);
  });

  it('takes the agent package with its checksum, and refuses a package URL without one', () => {
    const agent = {
      packageUrl: 'https://gitspaces-releases.s3.eu-west-1.amazonaws.com/gitspaces-agent-0.1.0-linux-x64.tar.gz',
      packageSha256: '0123456789abcdef'.repeat(4),
      nodeDistUrl: 'https://gitspaces-releases.s3.eu-west-1.amazonaws.com/node',
    };
    expect(parseAwsInfrastructureConfig({ ...valid, agent })).toEqual({
      ok: true,
      value: { ...valid, volumeType: 'gp3', agent },
    });
    const { packageSha256: _sha, ...unpinned } = agent;
    const result = parseAwsInfrastructureConfig({ ...valid, agent: unpinned });
    expect(result.ok ? [] : result.problems.map((p) => p.path)).toEqual(['config.agent.packageSha256']);
  });

  it('needs exactly one of ami and amiLookup', () => {
    const { ami: _ami, ...withoutAmi } = valid;
    const result = parseAwsInfrastructureConfig(withoutAmi);
    expect(result.ok ? [] : result.problems).toEqual([
      { path: 'config.ami', message: 'set exactly one of ami and amiLookup' },
    ]);
  });
});

describe('aws machine spec', () => {
  const config = { ...valid, volumeType: 'gp3', agent: {} } as AwsInfrastructureConfig;

  it('accepts instance types, sizes and AMIs of EC2', () => {
    expect(
      validateAwsMachineSpec(config, { machineType: 'm7g.2xlarge', diskSizeGb: 100, region: 'eu-west-1' }),
    ).toEqual([]);
  });

  it('names each bad field', () => {
    const problems = validateAwsMachineSpec(config, {
      machineType: 'e2-standard-4',
      diskSizeGb: 0,
      region: 'us-east-1',
      zone: 'eu-west-1b',
      image: 'projects/debian-cloud/global/images/family/debian-12',
    });
    expect(problems.map((p) => p.path)).toEqual(['machineType', 'diskSizeGb', 'region', 'zone', 'image']);
    expect(problems[0]?.message).toContain("for example 't3.large'");
  });
});
