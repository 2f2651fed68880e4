import { spawn, type ChildProcess } from 'node:child_process';
import { CreateSecurityGroupCommand, CreateSubnetCommand, CreateVpcCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { freeLoopbackPort } from '../../common/net';
import type { Fault } from './fault-proxy';

/** A moto server on loopback, started for a test file and stopped by its own process group id. */
export interface MotoServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** Forgets every resource moto holds (between tests). */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export interface MotoOptions {
  /** Extra environment for moto (for example `MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION`). */
  env?: Record<string, string>;
  startTimeoutMs?: number;
}

/**
 * Starts `python3 -m moto.server` on 127.0.0.1 with a free port and waits until it answers. moto is a test
 * requirement (requirements-test.txt); nothing is downloaded here.
 */
export async function startMoto(options: MotoOptions = {}): Promise<MotoServer> {
  const port = await freeLoopbackPort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], {
    // Its own process group, so stop() can end moto and anything it forked by pid, never by name.
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto exited with code ${child.exitCode}: ${stderr}`);
    if (await answers(`${url}/moto-api/`)) break;
    if (Date.now() > deadline) {
      killGroup(child);
      throw new Error(`moto did not answer on ${url} in time: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  return {
    url,
    port,
    reset: async () => {
      const response = await fetch(`${url}/moto-api/reset`, { method: 'POST' });
      if (!response.ok) throw new Error(`moto reset answered ${response.status}`);
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        killGroup(child);
        await exited;
      }
    },
  };
}

/**
 * Points every AWS SDK client made afterwards in this process at `endpoint` (moto, or a fault proxy before it) through
 * the SDK's standard AWS_ENDPOINT_URL_EC2, with dummy credentials and no metadata service or shared files: nothing may
 * leave loopback. Returns a function that restores the environment.
 */
export function useEc2Emulator(endpoint: string): () => void {
  const saved = { ...process.env };
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: '/nonexistent/aws-config',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
    AWS_ENDPOINT_URL_EC2: endpoint,
  });
  delete process.env.AWS_PROFILE;
  delete process.env.AWS_SESSION_TOKEN;
  return () => {
    process.env = saved;
  };
}

/** A VPC, a subnet in the region's first zone and a security group: what an `aws` infrastructure config names. */
export async function createEmulatedNetwork(
  ec2: EC2Client,
  region: string,
): Promise<{ subnetId: string; securityGroupId: string }> {
  const vpc = await ec2.send(new CreateVpcCommand({ CidrBlock: '10.20.0.0/16' }));
  const subnet = await ec2.send(
    new CreateSubnetCommand({ VpcId: vpc.Vpc?.VpcId, CidrBlock: '10.20.1.0/24', AvailabilityZone: `${region}a` }),
  );
  const group = await ec2.send(
    new CreateSecurityGroupCommand({ VpcId: vpc.Vpc?.VpcId, GroupName: 'gitspaces', Description: 'agent port' }),
  );
  return { subnetId: subnet.Subnet?.SubnetId ?? '', securityGroupId: group.GroupId ?? '' };
}

/** An EC2 error answer (its query-protocol XML), for a fault proxy in front of moto. */
export function ec2ErrorAnswer(code: string, status: number): Fault {
  return {
    status,
    body: `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>${code}</Code><Message>injected ${code}</Message></Error></Errors><RequestID>r-1</RequestID></Response>`,
  };
}

/** Matches the proxied EC2 requests of one API action (`RunInstances`, …). */
export const ec2Action = (name: string) => (request: { body: string }) => request.body.includes(`Action=${name}&`);

async function answers(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await response.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    // Already gone.
  }
}
