import { DEFAULT_CODEC_PORT } from '../codec/server';
import { freeLoopbackPorts } from '../common/net';

/** The ports `npm start` listens on: the variable that moves each, and its default. */
export const STACK_PORTS = {
  api: { variable: 'GITSPACES_API_PORT', default: 3000 },
  gateway: { variable: 'GITSPACES_GATEWAY_PORT', default: 3001 },
  gatewayAdmin: { variable: 'GITSPACES_GATEWAY_ADMIN_PORT', default: 3002 },
  temporal: { variable: 'GITSPACES_TEMPORAL_PORT', default: 7233 },
  temporalUi: { variable: 'GITSPACES_TEMPORAL_UI_PORT', default: 8233 },
  codec: { variable: 'GITSPACES_CODEC_PORT', default: DEFAULT_CODEC_PORT },
} as const;

type StackPortVariable = (typeof STACK_PORTS)[keyof typeof STACK_PORTS]['variable'];

/** Free loopback ports for a whole stack (a test's or a benchmark's), as the environment that moves it onto them. */
export async function freeStackPortsEnv(): Promise<Record<StackPortVariable, string>> {
  const ports = await freeLoopbackPorts(Object.values(STACK_PORTS).map((port) => port.variable));
  return Object.fromEntries(Object.entries(ports).map(([name, port]) => [name, String(port)])) as Record<
    StackPortVariable,
    string
  >;
}
