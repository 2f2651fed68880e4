import { parseGcpInfrastructureConfig, validateGcpMachineSpec, type GcpInfrastructureConfig } from './config';

const valid = {
  project: 'acme-dev-123',
  region: 'europe-west1',
  zones: ['europe-west1-b'],
  network: 'gitspaces',
  subnetwork: 'regions/europe-west1/subnetworks/gitspaces',
  serviceAccount: 'gitspace-vm@acme-dev-123.iam.gserviceaccount.com',
};

describe('gcp infrastructure config', () => {
  it('accepts a complete config and fills defaults', () => {
    const result = parseGcpInfrastructureConfig(valid);
    expect(result.ok).toBe(true);
    expect(result.ok && result.value).toMatchObject({
      ...valid,
      image: 'projects/debian-cloud/global/images/family/debian-12',
      bootDiskSizeGb: 20,
      diskType: 'pd-balanced',
      networkTags: [],
      agent: {},
    });
  });

  it('takes the agent package with its checksum, and refuses a package URL without one', () => {
    const agent = {
      packageUrl: 'https://storage.googleapis.com/acme-gitspaces-releases/gitspaces-agent-0.1.0-linux-x64.tar.gz',
      packageSha256: '0123456789abcdef'.repeat(4),
    };
    const result = parseGcpInfrastructureConfig({ ...valid, agent });
    expect(result.ok && result.value.agent).toEqual(agent);
    const unpinned = parseGcpInfrastructureConfig({ ...valid, agent: { packageUrl: agent.packageUrl } });
    expect(unpinned.ok ? [] : unpinned.problems.map((p) => p.path)).toEqual(['config.agent.packageSha256']);
  });

  it('reports every problem at once with field paths', () => {
    const result = parseGcpInfrastructureConfig({
      project: 'X',
      region: 'europe-west1',
      zones: ['europe-west1-b', 'nowhere'],
      subnetwork: '',
      serviceAccount: 'not-an-email',
    });
    expect(result.ok).toBe(false);
    const paths = result.ok ? [] : result.problems.map((p) => p.path).sort();
    expect(paths).toEqual([
      'config.network',
      'config.project',
      'config.serviceAccount',
      'config.subnetwork',
      'config.zones[1]',
    ]);
  });

  it('refuses zones of another region', () => {
    const result = parseGcpInfrastructureConfig({ ...valid, zones: ['europe-west1-b', 'us-central1-a'] });
    expect(result.ok ? [] : result.problems).toEqual([
      { path: 'config.zones[1]', message: "must be a zone of region 'europe-west1'" },
    ]);
  });
});

describe('gcp machine spec', () => {
  const parsed = parseGcpInfrastructureConfig(valid);
  const config = (parsed.ok ? parsed.value : undefined) as GcpInfrastructureConfig;

  it('accepts machine types, sizes, zones and images of Compute Engine', () => {
    expect(
      validateGcpMachineSpec(config, {
        machineType: 'n2-standard-8',
        diskSizeGb: 100,
        zone: 'europe-west1-b',
        image: 'projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64',
      }),
    ).toEqual([]);
  });

  it('names each bad field', () => {
    const problems = validateGcpMachineSpec(config, {
      machineType: 't3.large',
      diskSizeGb: 5,
      region: 'us-central1',
      zone: 'europe-west1-c',
      image: 'ami-0123456789abcdef0',
    });
    expect(problems.map((p) => p.path)).toEqual(['machineType', 'diskSizeGb', 'region', 'zone', 'image']);
    expect(problems[3]?.message).toBe("must be one of the infrastructure's zones: europe-west1-b");
  });
});
