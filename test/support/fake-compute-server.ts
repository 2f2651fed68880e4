/**
 * Test support: an in-memory fake of the few Compute Engine v1 REST endpoints the `gcp` provider uses (instances
 * insert/get/list/start/stop/setMetadata/delete, disks get/list/delete, zone operations get), on loopback. Zone
 * operations finish after a short delay, like the real ones, and tests can inject faults. Instances get private
 * 10.x addresses that must never be dialed.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeApiFault {
  status: number;
  reason: string;
  message: string;
}

/** Faults as the real API answers them. */
export const FAKE_FAULTS = {
  rateLimited: { status: 429, reason: 'rateLimitExceeded', message: 'Rate Limit Exceeded' },
  unavailable: { status: 503, reason: 'backendError', message: 'The service is currently unavailable.' },
  quotaExceeded: {
    status: 403,
    reason: 'quotaExceeded',
    message: "Quota 'CPUS' exceeded.  Limit: 8.0 in region europe-west1.",
  },
  forbidden: { status: 403, reason: 'forbidden', message: "Required 'compute.instances.list' permission" },
} as const satisfies Record<string, FakeApiFault>;

export interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
}

interface FakeOperation {
  name: string;
  zone: string;
  operationType: string;
  targetLink: string;
  status: 'PENDING' | 'RUNNING' | 'DONE';
  error?: { errors: { code: string; message: string }[] };
}

interface FakeDisk {
  name: string;
  zone: string;
  sizeGb: number;
  labels: Record<string, string>;
  users: string[];
  autoDelete: boolean;
}

interface FakeInstance {
  id: string;
  name: string;
  zone: string;
  machineType: string;
  status: string;
  labels: Record<string, string>;
  metadata: { fingerprint: string; items: { key: string; value: string }[] };
  disks: { deviceName: string; source: string; boot: boolean; autoDelete: boolean }[];
  networkInterfaces: { network: string; subnetwork: string; networkIP: string }[];
  serviceAccounts: unknown[];
}

export interface FakeComputeServer {
  /** `http://127.0.0.1:<port>`: what GITSPACES_GCP_COMPUTE_ENDPOINT names in an emulator run. */
  url: string;
  port: number;
  /** Every request, oldest first. */
  readonly requests: FakeRequest[];
  /** Answers the next `count` requests that `match` accepts with an API error. */
  failNext(count: number, fault: FakeApiFault, match?: (request: FakeRequest) => boolean): void;
  /** Disarms every fault not yet served. */
  clearFaults(): void;
  /** How long operations started from now on run: a test that looks at an operation in flight makes it long. */
  setOperationDelay(ms: number): void;
  /** Makes the next instance insert accepted, but its operation ends with this error and no instance. */
  failNextInsertOperation(code: string, message: string): void;
  /** Current instances and disks, for assertions. */
  instances(): FakeInstance[];
  disks(): FakeDisk[];
  /** Waits until no operation is running. */
  settle(): Promise<void>;
  close(): Promise<void>;
}

export interface FakeComputeOptions {
  port?: number;
  /** How long zone operations run (default 50 ms). */
  operationDelayMs?: number;
}

// A small machine type catalogue: anything else is an invalid machine type, as in a real zone.
const MACHINE_TYPES = /^(e2-(micro|small|medium|standard-(2|4|8|16))|n2-standard-(2|4|8|16)|n2d-standard-(2|4|8))$/;
const PREFIX = '/compute/v1/projects/';

/** Starts the fake on 127.0.0.1. */
export async function startFakeComputeServer(options: FakeComputeOptions = {}): Promise<FakeComputeServer> {
  let delay = options.operationDelayMs ?? 50;
  const instances = new Map<string, FakeInstance>();
  const disks = new Map<string, FakeDisk>();
  const operations = new Map<string, FakeOperation>();
  const byRequestId = new Map<string, FakeOperation>();
  const requests: FakeRequest[] = [];
  const armed: { remaining: number; fault: FakeApiFault; match: (r: FakeRequest) => boolean }[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let insertOperationFault: { code: string; message: string } | undefined;
  let counter = 0;
  let base = '';

  const key = (zone: string, name: string) => `${zone}/${name}`;
  const later = (fn: () => void, ms = delay) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };

  function operation(
    project: string,
    zone: string,
    type: string,
    target: string,
    requestId: string | null,
    apply: (op: FakeOperation) => void,
  ): FakeOperation {
    const scoped = requestId ? `${type}:${requestId}` : undefined;
    const known = scoped ? byRequestId.get(scoped) : undefined;
    if (known) return known; // The same request id again: the original operation, nothing applied twice.
    const op: FakeOperation = {
      name: `operation-${Date.now()}-${++counter}`,
      zone,
      operationType: type,
      targetLink: `${base}${PREFIX}${project}/zones/${zone}/${target}`,
      status: 'RUNNING',
    };
    operations.set(op.name, op);
    if (scoped) byRequestId.set(scoped, op);
    later(() => {
      apply(op);
      op.status = 'DONE';
    });
    return op;
  }

  function instanceJson(project: string, instance: FakeInstance): unknown {
    return {
      kind: 'compute#instance',
      ...instance,
      zone: `${base}${PREFIX}${project}/zones/${instance.zone}`,
      selfLink: `${base}${PREFIX}${project}/zones/${instance.zone}/instances/${instance.name}`,
    };
  }

  function diskJson(project: string, disk: FakeDisk): unknown {
    return {
      kind: 'compute#disk',
      name: disk.name,
      sizeGb: String(disk.sizeGb),
      labels: disk.labels,
      users: disk.users,
      status: 'READY',
      zone: `${base}${PREFIX}${project}/zones/${disk.zone}`,
      selfLink: `${base}${PREFIX}${project}/zones/${disk.zone}/disks/${disk.name}`,
    };
  }

  const FILTER_CLAUSE = /\(labels\.([a-z0-9_-]+) = "([^"]*)"\)/g;

  /** The one filter form the provider sends: `(labels.k = "v") (labels.k2 = "v2")`; anything else is refused. */
  function isKnownFilter(filter: string | null): boolean {
    return !filter || filter.replace(FILTER_CLAUSE, '').trim() === '';
  }

  function matchesFilter(labels: Record<string, string>, filter: string | null): boolean {
    if (!filter) return true;
    return [...filter.matchAll(FILTER_CLAUSE)].every(([, k, v]) => k !== undefined && labels[k] === v);
  }

  function handle(req: FakeRequest, send: (status: number, body: unknown) => void): void {
    const apiError = (status: number, reason: string, message: string) =>
      send(status, { error: { code: status, message, errors: [{ reason, domain: 'global', message }] } });
    const notFound = (what: string) => apiError(404, 'notFound', `The resource '${what}' was not found`);
    if (!req.path.startsWith(PREFIX)) return notFound(req.path);
    const parts = req.path.slice(PREFIX.length).split('/');
    const [project, zonesWord, zone, collection, name, verb] = parts;
    if (!project || zonesWord !== 'zones' || !zone || !collection) return notFound(req.path);
    const requestId = req.query.get('requestId');
    const route = `${req.method} ${collection}${name ? '/:name' : ''}${verb ? `/${verb}` : ''}`;
    const found = name ? instances.get(key(zone, name)) : undefined;
    const filter = req.query.get('filter');
    if (!isKnownFilter(filter)) return apiError(400, 'invalid', `Invalid list filter expression '${filter}'.`);
    const resourcePath = `projects/${project}/zones/${zone}/${collection}/${name ?? ''}`;

    switch (route) {
      case 'GET instances': {
        const matched = [...instances.values()].filter((i) => i.zone === zone && matchesFilter(i.labels, filter));
        return send(200, { kind: 'compute#instanceList', items: matched.map((i) => instanceJson(project, i)) });
      }
      case 'GET instances/:name':
        return found ? send(200, instanceJson(project, found)) : notFound(resourcePath);
      case 'POST instances': {
        const body = req.body as {
          name?: string;
          machineType?: string;
          labels?: Record<string, string>;
          metadata?: { items?: { key: string; value: string }[] };
          disks?: {
            boot?: boolean;
            autoDelete?: boolean;
            deviceName?: string;
            initializeParams?: { diskName?: string; diskSizeGb?: string | number; labels?: Record<string, string> };
          }[];
          networkInterfaces?: { network?: string; subnetwork?: string }[];
          serviceAccounts?: unknown[];
        };
        const instanceName = body.name ?? '';
        if (!/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/.test(instanceName)) {
          return apiError(400, 'invalid', `Invalid value for field 'resource.name': '${instanceName}'.`);
        }
        const type = (body.machineType ?? '').split('/').pop() ?? '';
        if (!MACHINE_TYPES.test(type)) {
          return apiError(
            400,
            'invalid',
            `Invalid value for field 'resource.machineType': '${body.machineType ?? ''}'. Machine type with name '${type}' does not exist in zone '${zone}'.`,
          );
        }
        const scoped = requestId ? byRequestId.get(`insert:${requestId}`) : undefined;
        if (!scoped && instances.has(key(zone, instanceName))) {
          return apiError(409, 'alreadyExists', `The resource '${resourcePath}${instanceName}' already exists`);
        }
        const failure = scoped ? undefined : insertOperationFault;
        insertOperationFault = undefined;
        const self = `${base}${PREFIX}${project}/zones/${zone}/instances/${instanceName}`;
        const op = operation(project, zone, 'insert', `instances/${instanceName}`, requestId, (done) => {
          const instance = instances.get(key(zone, instanceName));
          if (failure) {
            done.error = { errors: [failure] };
            return;
          }
          if (instance) instance.status = 'RUNNING';
        });
        if (!scoped && !failure) {
          const attached = (body.disks ?? []).map((d, index) => {
            const diskName = d.initializeParams?.diskName ?? (d.boot ? instanceName : `${instanceName}-${index}`);
            disks.set(key(zone, diskName), {
              name: diskName,
              zone,
              sizeGb: Number(d.initializeParams?.diskSizeGb ?? 10),
              labels: d.initializeParams?.labels ?? {},
              users: [self],
              autoDelete: d.autoDelete ?? false,
            });
            return {
              deviceName: d.deviceName ?? diskName,
              source: `${base}${PREFIX}${project}/zones/${zone}/disks/${diskName}`,
              boot: d.boot ?? false,
              autoDelete: d.autoDelete ?? false,
            };
          });
          instances.set(key(zone, instanceName), {
            id: String(1_000_000 + counter),
            name: instanceName,
            zone,
            machineType: `${base}${PREFIX}${project}/zones/${zone}/machineTypes/${type}`,
            status: 'PROVISIONING',
            labels: body.labels ?? {},
            metadata: { fingerprint: `fp-${counter}`, items: body.metadata?.items ?? [] },
            disks: attached,
            networkInterfaces: (body.networkInterfaces ?? [{}]).map((n) => ({
              network: n.network ?? 'default',
              subnetwork: n.subnetwork ?? 'default',
              networkIP: `10.128.0.${(counter % 250) + 2}`,
            })),
            serviceAccounts: body.serviceAccounts ?? [],
          });
        }
        return send(200, { kind: 'compute#operation', ...op });
      }
      case 'POST instances/:name/start':
      case 'POST instances/:name/stop':
      case 'DELETE instances/:name': {
        if (!found) return notFound(resourcePath);
        const type = verb ?? 'delete';
        const known = requestId ? byRequestId.get(`${type}:${requestId}`) : undefined;
        if (known) return send(200, { kind: 'compute#operation', ...known });
        if (type === 'start' && found.status !== 'TERMINATED') {
          return apiError(400, 'resourceNotReady', `The resource '${resourcePath}' is not ready`);
        }
        found.status = type === 'start' ? 'STAGING' : 'STOPPING';
        const op = operation(project, zone, type, `instances/${found.name}`, requestId, () => {
          if (type === 'start') found.status = 'RUNNING';
          else if (type === 'stop') found.status = 'TERMINATED';
          else {
            instances.delete(key(zone, found.name));
            for (const attached of found.disks) {
              const diskKey = key(zone, attached.source.split('/').pop() ?? '');
              if (attached.autoDelete) disks.delete(diskKey);
              else disks.get(diskKey)?.users.splice(0);
            }
          }
        });
        return send(200, { kind: 'compute#operation', ...op });
      }
      case 'POST instances/:name/setMetadata': {
        if (!found) return notFound(resourcePath);
        const body = req.body as { fingerprint?: string; items?: { key: string; value: string }[] };
        if (body.fingerprint !== found.metadata.fingerprint) {
          return apiError(412, 'conditionNotMet', 'Supplied fingerprint does not match current metadata fingerprint.');
        }
        found.metadata = { fingerprint: `fp-${++counter}`, items: body.items ?? [] };
        const op = operation(project, zone, 'setMetadata', `instances/${found.name}`, requestId, () => undefined);
        return send(200, { kind: 'compute#operation', ...op });
      }
      case 'GET disks': {
        const items = [...disks.values()].filter((d) => d.zone === zone && matchesFilter(d.labels, filter));
        return send(200, { kind: 'compute#diskList', items: items.map((d) => diskJson(project, d)) });
      }
      case 'GET disks/:name': {
        const disk = disks.get(key(zone, name ?? ''));
        return disk ? send(200, diskJson(project, disk)) : notFound(resourcePath);
      }
      case 'DELETE disks/:name': {
        const disk = disks.get(key(zone, name ?? ''));
        if (!disk) return notFound(resourcePath);
        if (disk.users.length > 0) {
          return apiError(
            400,
            'resourceInUseByAnotherResource',
            `The disk resource '${resourcePath}' is already being used`,
          );
        }
        const op = operation(project, zone, 'delete', `disks/${disk.name}`, requestId, () =>
          disks.delete(key(zone, disk.name)),
        );
        return send(200, { kind: 'compute#operation', ...op });
      }
      case 'GET operations/:name': {
        const op = operations.get(name ?? '');
        return op ? send(200, { kind: 'compute#operation', ...op }) : notFound(resourcePath);
      }
      default:
        return apiError(400, 'badRequest', `the fake does not implement ${req.method} ${req.path}`);
    }
  }

  const server = http.createServer((incoming, res) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const url = new URL(incoming.url ?? '/', base);
      const raw = Buffer.concat(chunks).toString();
      const req: FakeRequest = {
        method: incoming.method ?? 'GET',
        path: url.pathname,
        query: url.searchParams,
        body: raw ? (JSON.parse(raw) as unknown) : undefined,
      };
      requests.push(req);
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (incoming.headers.authorization === undefined) {
        send(401, {
          error: {
            code: 401,
            message: 'Request is missing required authentication credential.',
            errors: [{ reason: 'required' }],
          },
        });
        return;
      }
      const rule = armed.find((candidate) => candidate.remaining > 0 && candidate.match(req));
      if (rule) {
        rule.remaining -= 1;
        const { status, reason, message } = rule.fault;
        send(status, { error: { code: status, message, errors: [{ reason, domain: 'global', message }] } });
        return;
      }
      handle(req, send);
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  base = `http://127.0.0.1:${port}`;

  return {
    url: base,
    port,
    requests,
    setOperationDelay: (ms) => {
      delay = ms;
    },
    failNext: (count, fault, match = () => true) => armed.push({ remaining: count, fault, match }),
    clearFaults: () => {
      armed.splice(0);
    },
    failNextInsertOperation: (code, message) => {
      insertOperationFault = { code, message };
    },
    instances: () => [...instances.values()],
    disks: () => [...disks.values()],
    settle: async () => {
      while ([...operations.values()].some((op) => op.status !== 'DONE')) {
        await new Promise((resolve) => setTimeout(resolve, delay / 2 + 1));
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
