/**
 * The runner's cloud permissions (deploy/terraform/{gcp,aws}/runner-permissions.json) against the code: every cloud
 * SDK call of the runner-side code (the providers, the secret store) must be listed with the permissions it needs,
 * every listed call must still be made, and the groups the Terraform modules grant must add up to exactly what the
 * calls need. The calls are found with the TypeScript type checker, so an aliased client or a call through a helper
 * is still seen.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const ROOT = path.resolve(__dirname, '..');
const SKIP_DIRS = new Set(['node_modules', 'dist', 'deploy', 'test', 'test-artifacts', '.git', '.tools']);
const SDK_IMPORT = /from\s+['"](@google-cloud\/[^'"]+|@aws-sdk\/[^'"]+)['"]/;

type Cloud = 'gcp' | 'aws';

interface PermissionsFile {
  calls: Record<string, string[]>;
  grants: Record<string, { description: string; permissions?: string[]; actions?: string[] }>;
  noPermission: string[];
}

interface SdkCall {
  cloud: Cloud;
  /** `InstancesClient.insert` (GCP) or `ec2:RunInstances` (AWS). */
  key: string;
  at: string;
}

function readPermissions(cloud: Cloud): PermissionsFile {
  return JSON.parse(
    readFileSync(path.join(ROOT, 'deploy', 'terraform', cloud, 'runner-permissions.json'), 'utf8'),
  ) as PermissionsFile;
}

/** Runner-side source files that import a cloud SDK (tests, fakes and tooling excluded). */
function sdkSourceFiles(dir = ROOT): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.') || SKIP_DIRS.has(entry.name)) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) files.push(...sdkSourceFiles(full));
    else if (
      entry.name.endsWith('.ts') &&
      !entry.name.endsWith('.test.ts') &&
      !entry.name.endsWith('.d.ts') &&
      SDK_IMPORT.test(readFileSync(full, 'utf8'))
    ) {
      files.push(full);
    }
  }
  return files;
}

/** The package a declaration comes from: `@google-cloud/compute`, `@aws-sdk/client-ec2`, `@smithy/core`, … */
function packageOf(declaration: ts.Declaration): string | undefined {
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(declaration.getSourceFile().fileName.replace(/\\/g, '/'));
  return match?.[1];
}

/** `@aws-sdk/client-secrets-manager` → `secretsmanager` (the IAM service prefix). */
function awsServiceOf(pkg: string): string {
  return pkg.replace('@aws-sdk/client-', '').replace(/-/g, '');
}

function scanSdkCalls(files: string[]): { calls: SdkCall[]; problems: string[] } {
  const program = ts.createProgram(files, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.Node16,
    moduleResolution: ts.ModuleResolutionKind.Node16,
    esModuleInterop: true,
    skipLibCheck: true,
    noEmit: true,
    types: ['node'],
  });
  const checker = program.getTypeChecker();
  const calls: SdkCall[] = [];
  const problems: string[] = [];

  const declarationOf = (node: ts.Node): ts.Declaration | undefined => {
    let symbol = checker.getSymbolAtLocation(node);
    if (symbol && symbol.flags & ts.SymbolFlags.Alias) symbol = checker.getAliasedSymbol(symbol);
    return symbol?.declarations?.[0];
  };

  for (const file of files) {
    const source = program.getSourceFile(file);
    if (!source) throw new Error(`the type checker did not load ${file}`);
    const where = (node: ts.Node) => {
      const { line } = source.getLineAndCharacterOfPosition(node.getStart());
      return `${path.relative(ROOT, file)}:${line + 1}`;
    };
    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node)) {
        const callee = ts.isPropertyAccessExpression(node.expression) ? node.expression.name : node.expression;
        const declaration = declarationOf(callee);
        const pkg = declaration && packageOf(declaration);
        const name = ts.isIdentifier(callee) ? callee.text : callee.getText();
        if (pkg?.startsWith('@google-cloud/')) {
          // A method of a GAPIC client class: `<Class>.<method>`.
          const owner = declaration!.parent;
          const className = ts.isClassDeclaration(owner) && owner.name ? owner.name.text : '?';
          calls.push({ cloud: 'gcp', key: `${className}.${name}`, at: where(node) });
        } else if (pkg?.startsWith('@aws-sdk/client-') && /^paginate[A-Z]/.test(name)) {
          calls.push({ cloud: 'aws', key: `${awsServiceOf(pkg)}:${name.slice('paginate'.length)}`, at: where(node) });
        } else if (pkg?.startsWith('@aws-sdk/') && !/Client$/.test(name)) {
          problems.push(`${where(node)}: ${name}() from ${pkg} is neither a command nor a paginator`);
        } else if (pkg && name === 'send' && (pkg.startsWith('@smithy/') || pkg.startsWith('@aws-sdk/'))) {
          // `client.send(new XCommand(...))`: the command names the operation.
          const [argument] = node.arguments;
          const commandDeclaration =
            argument && ts.isNewExpression(argument) ? declarationOf(argument.expression) : undefined;
          const commandPkg = commandDeclaration && packageOf(commandDeclaration);
          const commandName = argument && ts.isNewExpression(argument) ? argument.expression.getText() : '';
          if (!commandPkg?.startsWith('@aws-sdk/client-') || !commandName.endsWith('Command')) {
            problems.push(`${where(node)}: send() is not given a \`new <Operation>Command(...)\` this test can read`);
          } else {
            calls.push({
              cloud: 'aws',
              key: `${awsServiceOf(commandPkg)}:${commandName.slice(0, -'Command'.length)}`,
              at: where(node),
            });
          }
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return { calls, problems };
}

const sorted = (values: Iterable<string>) => [...new Set(values)].sort();

describe('runner cloud permissions (deploy/terraform/*/runner-permissions.json)', () => {
  let scan: { calls: SdkCall[]; problems: string[] };
  let files: string[];

  beforeAll(() => {
    files = sdkSourceFiles();
    scan = scanSdkCalls(files);
  }, 120_000);

  it('finds the providers and their SDK calls (the scan is not vacuous)', () => {
    const relative = files.map((file) => path.relative(ROOT, file));
    expect(relative).toEqual(expect.arrayContaining(['providers/gcp/provider.ts', 'providers/aws/provider.ts']));
    const keys = scan.calls.map((call) => call.key);
    expect(keys).toEqual(
      expect.arrayContaining(['InstancesClient.insert', 'ec2:RunInstances', 'ec2:DescribeInstances']),
    );
    expect(scan.problems).toEqual([]);
  });

  describe.each(['gcp', 'aws'] as const)('%s', (cloud) => {
    const permissions = readPermissions(cloud);

    it('lists every SDK call the runner-side code makes', () => {
      const unlisted = scan.calls
        .filter((call) => call.cloud === cloud)
        .filter((call) => !(call.key in permissions.calls))
        .filter((call) => !permissions.noPermission.includes(call.key.split('.').pop() ?? ''))
        .map((call) => `${call.key} (${call.at})`);
      // Add each to deploy/terraform/<cloud>/runner-permissions.json with the permissions it needs, and grant them.
      expect(unlisted).toEqual([]);
    });

    it('lists no call the code no longer makes', () => {
      const made = new Set(scan.calls.filter((call) => call.cloud === cloud).map((call) => call.key));
      expect(Object.keys(permissions.calls).filter((key) => !made.has(key))).toEqual([]);
    });

    it('grants exactly the permissions the calls need', () => {
      const needed = sorted(Object.values(permissions.calls).flat());
      const granted = sorted(
        Object.values(permissions.grants).flatMap((grant) => grant.permissions ?? grant.actions ?? []),
      );
      expect(granted).toEqual(needed);
    });

    it('has the module use every grant group', () => {
      const dir = path.join(ROOT, 'deploy', 'terraform', cloud);
      const hcl = readdirSync(dir)
        .filter((name) => name.endsWith('.tf'))
        .map((name) => readFileSync(path.join(dir, name), 'utf8'))
        .join('\n');
      for (const group of Object.keys(permissions.grants)) {
        expect({ group, used: new RegExp(`grants\\.${group}\\b`).test(hcl) }).toEqual({ group, used: true });
      }
    });
  });
});
