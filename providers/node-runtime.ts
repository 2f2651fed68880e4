/**
 * The one pinned Node.js the released parts run on: the packages of `npm run package` bundle it, and the machine
 * bootstrap installs it on gitspace machines (the agent's native module, node-pty, is built for its ABI).
 *
 * Two channels carry the same official binary, each pinned here:
 * - the official tarball `node-v<version>-linux-<arch>.tar.xz` (the bootstrap downloads it), by the SHA-256 that
 *   the Node.js release's SHASUMS256.txt publishes;
 * - the npm package `node-linux-<arch>` (the packaging script fetches it with npm), by its sha512 integrity.
 * `binarySha256` is the SHA-256 of `bin/node` inside both; the packaging script checks it, so both channels are
 * known to carry the identical executable.
 */
export const NODE_RUNTIME = {
  version: '22.23.3',
  /** NODE_MODULE_VERSION of that release: what node-pty is compiled against. */
  modulesAbi: '127',
  arches: {
    x64: {
      debianArch: 'amd64',
      tarballSha256: 'df450af89261115ef9f9e3830c3eeb2cc9213b63c720b1af623cb5dcbe2e02de',
      npmIntegrity: 'sha512-qHnz5tFsHoj/WM+uRENVjWONi5hVvmwrgq8A4V76KpuVNAc4+jwK8x4gwbobE9BtHNg/AKR2583eYorLF/c7ng==',
      binarySha256: 'fde6a4bf8d0562f7751d1a2d6cb9b417c4cfe107bbcb0aa3e9a24e125e348f48',
    },
    arm64: {
      debianArch: 'arm64',
      tarballSha256: 'a44aeb94849a299b22df10b9e622ec2f605c2183501bc40590705131de7c740f',
      npmIntegrity: 'sha512-l3DAHZreylo+p9QXDtsOrjG2JXJqVzYXnAGmIQNOUNARcMppTO2cmewVQP+36tjJnSE+dzpMNtgW+c3oiDvXtA==',
      binarySha256: 'd09e299258c24f7cdf6f5d5ec185e3a56512b27a697113735dac909f1cac7b8d',
    },
  },
} as const;

export type NodeArch = keyof typeof NODE_RUNTIME.arches;

/** Where the official tarballs are published; `config.agent.nodeDistUrl` points elsewhere (a mirror or a bucket). */
export const NODE_DIST_URL = 'https://nodejs.org/dist';

/** The official tarball's file name, e.g. node-v22.23.3-linux-x64.tar.xz. */
export function nodeTarballName(arch: NodeArch, version: string = NODE_RUNTIME.version): string {
  return `node-v${version}-linux-${arch}.tar.xz`;
}
