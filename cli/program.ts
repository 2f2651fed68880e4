/** The `gitspaces` command line: its commands and options (commander), each handing over to its command function. */
// commander is an ES module: its types here, the module itself loaded with import() (this package compiles to CommonJS).
import type { Command, Option } from '@commander-js/extra-typings' with { 'resolution-mode': 'import' };
import { PACKAGE_VERSION } from '../common/package-version';
import { IDE_KINDS } from '../contracts/provider';
import { parseDuration, parseSeconds, parseStates } from './args';
import { loginCommand, logoutCommand } from './commands/auth';
import { autostopCommand, DURATION_HELP } from './commands/autostop';
import { actionCommand, createCommand, deleteCommand } from './commands/lifecycle';
import { listCommand, logsCommand, openCommand, showCommand } from './commands/inspect';
import { configSshCommand } from './commands/config-ssh';
import { sshCommand } from './commands/ssh';
import { addSshKeyCommand, listSshKeysCommand, removeSshKeyCommand } from './commands/ssh-keys';
import { completionScript, NAMES_COMMAND, SHELLS, type CompletionCommand, type CompletionSpec } from './completion';
import type { CliContext } from './context';
import { EXIT_CODES, UsageError } from './errors';

const EXIT_CODE_HELP = `
Exit codes:
  ${EXIT_CODES.ok}    done
  ${EXIT_CODES.lifecycleFailed}    the lifecycle operation failed (the error names the step and says why)
  ${EXIT_CODES.usage}    the command line was wrong (unknown option, missing argument, ambiguous name)
  ${EXIT_CODES.api}    the API refused or could not be reached, or no usable credentials
  ${EXIT_CODES.interrupted}  interrupted while waiting (the operation goes on)

Credentials: \`gitspaces login\` keeps them in $XDG_CONFIG_HOME/gitspaces/credentials.json (mode 0600);
GITSPACES_URL and GITSPACES_TOKEN override them.`;

export async function buildProgram(context: CliContext) {
  const { Command, InvalidArgumentError, Option } = await import('@commander-js/extra-typings');
  /** A value parser from cli/args.ts for commander: its UsageError becomes commander's own usage error. */
  const parser =
    <T>(parse: (value: string) => T) =>
    (value: string): T => {
      try {
        return parse(value);
      } catch (error) {
        throw new InvalidArgumentError(error instanceof UsageError ? error.message : String(error));
      }
    };
  const program = new Command('gitspaces')
    .description('Self-hosted cloud development environments, from the command line.')
    .version(PACKAGE_VERSION)
    .option('--json', 'machine-readable output on stdout (no progress there)')
    // Settings given before the commands are added are inherited by them.
    .exitOverride()
    .configureOutput({
      writeOut: (text) => context.io.stdout.write(text),
      writeErr: (text) => context.io.stderr.write(text),
    })
    .configureHelp({ showGlobalOptions: true })
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', EXIT_CODE_HELP);
  const json = (command: { optsWithGlobals(): { json?: true } }) => command.optsWithGlobals().json === true;
  const noWait = () => new Option('--no-wait', 'return once the API accepted it, without following it');

  program
    .command('login')
    .description('sign in through the browser (--web), or check an API token, and keep it for the next commands')
    .option('--url <api url>', 'the API, such as http://127.0.0.1:3000 (default: GITSPACES_URL, the last login)')
    .option('--web', 'sign in through the browser: a new API token named after this machine')
    .option('--no-browser', 'with --web: only print the link to open, on any machine')
    .option('--token <token>', 'the API token (it stays in your shell history: prefer --token-stdin)')
    .option('--token-stdin', 'read the API token from stdin')
    .action((options, command) => loginCommand(context, { ...options, json: json(command) }));
  program
    .command('logout')
    .description('remove the stored credentials')
    .action((_options, command) => logoutCommand(context, { json: json(command) }));

  program
    .command('create')
    .description('create a gitspace from a repository, start it and wait until it runs')
    .argument('<repo-url>', 'https://, http://, ssh:// or git:// URL of the repository')
    .option('--name <name>', 'its name (default: the repository name)')
    .option('--branch <branch>', 'the branch to check out (default: the repository default)')
    .option('--infrastructure <id>', 'where it runs (default: the only infrastructure)')
    .option('--machine <id or name>', 'its machine size (default: the only one of the infrastructure)')
    .addOption(new Option('--ide <kind>', 'the IDE it serves (default: terminal)').choices(IDE_KINDS))
    .option('--token-ref <name>', "a repository token by name in the runner's secret store (shared/<name> for shared)")
    .option('--idle-timeout <duration>', `stop it after this long unused: ${DURATION_HELP}`, parser(parseDuration))
    .option('--max-lifetime <duration>', `stop it after this long running: ${DURATION_HELP}`, parser(parseDuration))
    .option('--no-start', 'only create it, stopped')
    .addOption(noWait())
    .action((repositoryUrl, options, command) =>
      createCommand(context, repositoryUrl, { ...options, json: json(command) }),
    );

  program
    .command('list')
    .description('list your gitspaces (all but deleted ones)')
    .option('--state <states>', 'only these states, comma-separated (running,stopped,error,…)', parser(parseStates))
    .option('--all', 'deleted gitspaces too')
    .action((options, command) => listCommand(context, { ...options, json: json(command) }));
  program
    .command('show')
    .description("a gitspace's state, URL, repository, operation and last error")
    .argument('<gitspace>', 'name or id')
    .action((gitspace, _options, command) => showCommand(context, gitspace, { json: json(command) }));

  for (const action of ['start', 'stop', 'retry'] as const) {
    program
      .command(action)
      .description(
        {
          start: 'start a stopped gitspace and wait until it runs',
          stop: 'stop a gitspace (its disk is kept) and wait until it is stopped',
          retry: 'run the failed action of a gitspace in error again and wait for it',
        }[action],
      )
      .argument('<gitspace>', 'name or id')
      .addOption(noWait())
      .action((gitspace, options, command) =>
        actionCommand(context, action, gitspace, { ...options, json: json(command) }),
      );
  }
  program
    .command('delete')
    .description('delete a gitspace: its machine and disks (its record and events stay)')
    .argument('<gitspace>', 'name or id')
    .option('-y, --yes', 'do not ask for confirmation')
    .addOption(noWait())
    .action((gitspace, options, command) => deleteCommand(context, gitspace, { ...options, json: json(command) }));

  program
    .command('open')
    .description('open a running gitspace in the browser, with a fresh short-lived link')
    .argument('<gitspace>', 'name or id')
    .option('--print', 'only print the link')
    .action((gitspace, options, command) => openCommand(context, gitspace, { ...options, json: json(command) }));
  program
    .command('logs')
    .description("a gitspace's events: time, actor, step or state, message, errors")
    .argument('<gitspace>', 'name or id')
    .option('-f, --follow', 'keep following new events until the gitspace is deleted (or Ctrl-C)')
    .option('--timeout <seconds>', 'with --follow: stop after this many seconds', parser(parseSeconds))
    .action((gitspace, options, command) => logsCommand(context, gitspace, { ...options, json: json(command) }));

  program
    .command('ssh')
    .description('a shell, or a command, in a running gitspace over SSH through the gateway (your keys: ssh-keys)')
    .argument('<gitspace>', 'name or id')
    .argument('[command...]', 'the command to run instead of a shell, after --')
    .option('--start', 'start the gitspace first when it is stopped')
    .option('--stdio', 'carry one SSH connection on stdin and stdout: the ProxyCommand end (config-ssh writes it)')
    .addHelpText(
      'after',
      "\nIt ends with ssh's exit code: the command's, or 255 when ssh itself failed. Your key must be registered\n" +
        '(gitspaces ssh-keys add); `gitspaces config-ssh` lets plain ssh, scp and editors connect too.',
    )
    .action((gitspace, command, options) => sshCommand(context, gitspace, command, options));
  const sshKeys = program.command('ssh-keys').description('the SSH public keys that open `gitspaces ssh`');
  sshKeys
    .command('add')
    .description('register a public key (default: ~/.ssh/id_ed25519.pub, id_ecdsa.pub or id_rsa.pub)')
    .argument('[file]', 'the .pub file')
    .option('--name <name>', "the key's name (default: its comment)")
    .action((file, options, command) => addSshKeyCommand(context, file, { ...options, json: json(command) }));
  sshKeys
    .command('list')
    .description('your registered keys')
    .action((_options, command) => listSshKeysCommand(context, { json: json(command) }));
  sshKeys
    .command('remove')
    .description('remove a key: it opens no new SSH connection from then on')
    .argument('<key>', 'its id or fingerprint (SHA256:…)')
    .action((key, _options, command) => removeSshKeyCommand(context, key, { json: json(command) }));
  program
    .command('config-ssh')
    .description('write a Host gitspace-<name> for each gitspace into your OpenSSH config, for ssh, scp and editors')
    .option('--ssh-config <file>', 'the config to write (default: ~/.ssh/config)')
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--dry-run', 'only show the change')
    .action((options, command) => configSshCommand(context, { ...options, json: json(command) }));

  program
    .command('autostop')
    .description("show or change a gitspace's auto-stop: its idle timeout and maximum lifetime")
    .argument('<gitspace>', 'name or id')
    .option('--idle-timeout <duration>', DURATION_HELP, parser(parseDuration))
    .option('--max-lifetime <duration>', DURATION_HELP, parser(parseDuration))
    .action((gitspace, options, command) => autostopCommand(context, gitspace, { ...options, json: json(command) }));
  program
    .command('completion')
    .description('print a shell completion script')
    .addArgument(program.createArgument('<shell>', 'bash, zsh or fish').choices(SHELLS))
    .action((shell) => {
      context.io.stdout.write(completionScript(shell, completionSpec(program)));
    });
  program
    .command(NAMES_COMMAND, { hidden: true })
    .description('gitspace names, one per line, for shell completion')
    .action(async () => {
      const gitspaces = await (await context.connect()).listGitspaces();
      context.print([...new Set(gitspaces.filter((g) => g.state !== 'deleted').map((g) => g.name))]);
    });
  return program;
}

/** The program's commands and options as the completion scripts need them. */
export function completionSpec(program: Command<[], { json?: true }>): CompletionSpec {
  const optionsOf = (command: { options: readonly Option[] }) =>
    command.options
      .filter((option) => !option.hidden && option.long)
      .map((option) => ({
        flag: option.long!,
        description: option.description,
        takesValue: option.required || option.optional,
        ...(option.argChoices ? { choices: option.argChoices } : {}),
      }));
  const commands: CompletionCommand[] = program.commands
    .filter((command) => command.name() !== NAMES_COMMAND)
    .map((command) => {
      const [first] = command.registeredArguments;
      const argument = !first
        ? undefined
        : first.name() === 'gitspace'
          ? { gitspace: true as const }
          : first.argChoices
            ? { choices: first.argChoices }
            : { name: first.name() };
      return {
        name: command.name(),
        description: command.description(),
        options: optionsOf(command),
        ...(argument ? { argument } : {}),
      };
    });
  return {
    program: program.name(),
    commands,
    globalOptions: [
      ...optionsOf(program).filter((o) => o.flag !== '--version'),
      { flag: '--help', description: 'show help', takesValue: false },
    ],
  };
}
